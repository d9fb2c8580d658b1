# The PyTorch workspace image: `nox -s build-image` builds, tags and smoke-tests it.
# Plain `docker build .` works too; every input below is optional.
#
# Build arguments:
#   BASE_IMAGE         Python base image (default python:3.11-slim-bookworm)
#   TORCH_VARIANT      cpu (default) or a CUDA build of the locked torch, e.g. cu128 or cu130:
#                      selects https://download.pytorch.org/whl/<variant>. A CUDA image is
#                      several GB larger and needs the NVIDIA container toolkit to use the GPU.
#   TORCH_INDEX_URL    where that torch build comes from; empty = only PyPI and the wheelhouse
#   DEPENDENCY_GROUPS  pyproject dependency groups installed, pinned by requirements.lock.txt
#   VCS_REF, BUILD_DATE, SOURCE_URL   OCI labels (revision, created, source)
# Optional build inputs, placed in docker/build-inputs/ (ignored by git, see its README):
#   ca.crt             extra CA certificates pip trusts (TLS-intercepting proxies)
#   wheels/*.whl       a local wheelhouse pip prefers (air-gapped machines, a local torch)
# Secrets never enter a layer: W&B and AWS keys reach containers at run time only.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
ARG DEPENDENCY_GROUPS="data runner"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
# The dependency layer: rebuilt only when the lock, pyproject or the build inputs change.
COPY docker/build-inputs/ inputs/
COPY pyproject.toml requirements.lock.txt ./
# pip >= 25.1 reads pyproject dependency groups. Bytecode is kept (a non-root user cannot
# write __pycache__; imports would take twice as long); tests, headers and tools are pruned.
RUN set -eu; \
    python3 -m venv /opt/venv; \
    if [ -s inputs/ca.crt ]; then \
        cat "$(/opt/venv/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')" \
            inputs/ca.crt > /build/ca-bundle.pem; \
        export PIP_CERT=/build/ca-bundle.pem; \
    fi; \
    set -- --find-links inputs/wheels; \
    if [ -n "${TORCH_INDEX_URL}" ]; then set -- "$@" --extra-index-url "${TORCH_INDEX_URL}"; fi; \
    /opt/venv/bin/python -m pip install --quiet "$@" "pip>=25.1"; \
    for group in ${DEPENDENCY_GROUPS}; do set -- "$@" --group "$group"; done; \
    /opt/venv/bin/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > project-requirements.txt; \
    /opt/venv/bin/python -m pip install --quiet "$@" -r project-requirements.txt --constraint requirements.lock.txt; \
    /opt/venv/bin/python -m pip uninstall --quiet --yes pip; \
    torch_dir="$(/opt/venv/bin/python -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])')"; \
    rm -rf "$torch_dir/test" "$torch_dir/include"; \
    find "$torch_dir/bin" -mindepth 1 ! -name torch_shm_manager -delete; \
    /opt/venv/bin/python -c 'import torch, wandb, dvc.api'

FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WANDB_DIR=/workspace/wandb \
    DVC_NO_ANALYTICS=1
# The non-root user owns the workspace; data, weights and W&B runs are mount points.
RUN useradd --create-home --uid 1000 --user-group researcher \
    && mkdir -p /workspace/data /workspace/models /workspace/wandb \
    && chown -R researcher:researcher /workspace
COPY --from=build /opt/venv /opt/venv
# The library (src/gradient_lab) is importable from the workspace's source, as an editable
# install would make it: its dependencies are in the venv already.
RUN echo /workspace/src > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/gradient_lab.pth"
WORKDIR /workspace
# The source comes last, so a code-only change rebuilds in seconds.
COPY --chown=1000:1000 noxfile.py pyproject.toml requirements.lock.txt ./
COPY --chown=1000:1000 sessions/ sessions/
COPY --chown=1000:1000 experiments/ experiments/
COPY --chown=1000:1000 src/ src/
USER 1000:1000
VOLUME ["/workspace/data", "/workspace/models", "/workspace/wandb"]
CMD ["nox", "--no-venv", "-s", "train-tracked"]

# Labels that change with every commit or build go last, after every cached layer.
ARG SOURCE_URL=https://github.com/gradient-lab/gradient-lab
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="gradient-lab" \
      org.opencontainers.image.description="PyTorch workspace: torch, wandb and dvc[s3] in a venv" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}"
