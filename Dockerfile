# The PyTorch workspace images: `nox -s build-image` builds, tags and smoke-tests both, through
# `docker compose build`, as `docker compose run` would build them. BuildKit only (cache and bind
# mounts), with the engine's own Dockerfile frontend: no `# syntax=` line, which would pull one.
#
# Targets:
#   runtime  (the default) the gradient_lab library with its dependencies (torch, wandb, ...),
#            dvc[s3] and nox in a venv, and the training scripts; trains as a non-root user
#   dev      runtime + the test group, git and an emoji font: what `nox -s tests` needs
#   folders  a one-shot helper that hands fresh bind-mounted folders to the host's user
#
# Build arguments:
#   BASE_IMAGE         Python base image (default python:3.11-slim-bookworm)
#   TORCH_VARIANT      cpu (default) or a CUDA build of the locked torch, e.g. cu128 or cu130:
#                      the build checks that torch.version.cuda is that version. A CUDA image is
#                      several GB larger and needs the NVIDIA container toolkit to use the GPU.
#   TORCH_INDEX_URL    where that torch build comes from (default PyTorch's index for the variant)
#   DEPENDENCY_GROUPS  pyproject dependency groups of the runtime image (besides the project's
#                      own dependencies), pinned by the lock
#   DEV_GROUPS         the groups the dev image adds
#   VCS_REF, VCS_DATE, SOURCE_URL   OCI labels (revision, its commit time, source)
# Optional build inputs, placed in docker/build-inputs/ (ignored by git, see its README):
#   ca.crt             extra CA certificates pip trusts (TLS-intercepting proxies)
#   wheels/*.whl       a local wheelhouse pip prefers (air-gapped machines, a local torch); a
#                      torch wheel there must be the TORCH_VARIANT build
# Secrets never enter a layer: W&B and AWS keys reach containers at run time only. Nothing in a
# layer depends on the build time, so a rebuild of the same source gives the same image ID.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# binutils strips the venv's shared libraries; it stays in this stage. Debian's stable packages
# are not pinned: their security updates replace the old versions in the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# The optional build inputs are mounted where pip needs them: the extra CA joins this stage's
# system bundle, the local wheels are pip's first choice. pip has a venv of its own and installs
# into /opt/venv from outside, so neither pip nor setuptools reaches the image.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_FIND_LINKS=/inputs/wheels \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_RETRIES=2 PIP_TIMEOUT=20
RUN --mount=type=bind,source=docker/build-inputs,target=/inputs \
    if [ -s /inputs/ca.crt ]; then cat /inputs/ca.crt >>"$PIP_CERT"; fi \
    && python3 -m venv /opt/pip \
    && python3 -m venv --without-pip /opt/venv
WORKDIR /build
# The dependency layer: rebuilt only when the lock, pyproject or the build inputs change.
COPY docker/install-groups.sh docker/torch_build.py pyproject.toml requirements.lock.txt ./
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
ARG DEPENDENCY_GROUPS="data runner"
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=bind,source=docker/build-inputs,target=/inputs \
    sh install-groups.sh / ${DEPENDENCY_GROUPS} \
    && /opt/venv/bin/python torch_build.py check \
    && /opt/venv/bin/python -c 'import wandb, dvc.api'

# The dev image's packages: installed under /opt/dev (pip's --root), which receives only what
# /opt/venv lacks, so the dev image adds them as one layer.
FROM build AS build-dev
ARG DEV_GROUPS="test"
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=bind,source=docker/build-inputs,target=/inputs \
    sh install-groups.sh /opt/dev ${DEV_GROUPS}

FROM ${BASE_IMAGE} AS folders
COPY docker/own-folders.sh /usr/local/bin/own-folders
LABEL org.opencontainers.image.title="gradient-lab"
CMD ["own-folders", "/workspace/data", "/workspace/models", "/workspace/wandb"]

FROM ${BASE_IMAGE} AS runtime
# tini is PID 1: it passes `docker stop`'s SIGTERM (and Ctrl-C) on to the whole process group,
# nox and the training script alike, and reaps what they leave.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# Any uid may run the image (compose passes the host's): USER and HOME are set for tools that
# look the user up (DVC, git), the entry point moves HOME when it is not writable, and the
# workspace is writable like /tmp for scratch (W&B, DVC's state). Data, weights and W&B runs
# are bind mounts; the `folders` target hands fresh ones to the host's uid.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DVC_NO_ANALYTICS=1 \
    USER=researcher \
    LOGNAME=researcher \
    HOME=/home/researcher
RUN useradd --create-home --uid 1000 --user-group researcher \
    && mkdir -p /workspace/data /workspace/models /workspace/wandb /workspace/.dvc \
    && chown researcher:researcher /workspace/data /workspace/models /workspace/wandb \
    && chmod 1777 /workspace /workspace/.dvc
COPY docker/entrypoint.sh /usr/local/bin/workspace-entrypoint
COPY --from=build /opt/venv /opt/venv
# The library (src/gradient_lab) is importable from the workspace's source, as an editable
# install makes it: its dependencies are in the venv, and in the dev image a change to the
# mounted checkout's src/ takes effect without a rebuild.
RUN echo /workspace/src > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/gradient_lab.pth"
WORKDIR /workspace
# The source comes last, so a code-only change rebuilds in seconds. data.dvc is the record of
# the data set training uses; the image has no git repository, so DVC runs without one.
COPY noxfile.py pyproject.toml requirements.lock.txt data.dvc ./
COPY .dvc/config .dvc/
RUN printf '[core]\n    no_scm = true\n' > .dvc/config.local
COPY src/ src/
COPY sessions/ sessions/
COPY experiments/ experiments/
USER 1000:1000
ENTRYPOINT ["tini", "-g", "--", "workspace-entrypoint"]
CMD ["nox", "--no-venv", "-s", "train-tracked"]

# Labels that change with every commit go last, after every cached layer.
ARG SOURCE_URL=https://github.com/gradient-lab/gradient-lab
ARG VCS_REF=unknown
ARG VCS_DATE=unknown
LABEL org.opencontainers.image.title="gradient-lab" \
      org.opencontainers.image.description="PyTorch workspace: torch, wandb and dvc[s3] in a venv" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${VCS_DATE}"

FROM runtime AS dev
USER 0
# git for the tests that make repositories, an emoji font for the PDF export's tests.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git fonts-noto-color-emoji \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system safe.directory /workspace
COPY --from=build-dev /opt/dev/opt/venv/ /opt/venv/
USER 1000:1000
CMD ["bash"]

# `docker build .` builds the runtime image.
FROM runtime AS default
