#!/bin/sh
# Install pyproject dependency groups into /opt/venv, pinned by requirements.lock.txt. Runs in
# the build stage's working folder: pyproject.toml, the lock, docker/build-inputs/ as inputs/.
#
#   install-groups.sh GROUP...
#
# The project's own dependencies ([project] dependencies in pyproject.toml) come along.
# TORCH_VARIANT (cpu, cu128, ...) is the torch build the image must hold, TORCH_INDEX_URL where
# it comes from. A torch wheel in the wheelhouse is used only when it is that build; an index
# that cannot be reached fails in one sentence instead of pip retrying it for every package.
# Packages' bundled test suites are dropped; bytecode is kept (a non-root user cannot write
# __pycache__, so imports would take twice as long).
set -eu

fail() {
    echo "build-image: $*" >&2
    exit 1
}

python=/opt/venv/bin/python
# Installing into an existing venv adds files only: what changed after this mark is the delta.
touch /build/installed-before
# pip lives in a venv of its own and installs into /opt/venv from outside (`--python`), so
# neither pip nor setuptools ends up in the image.
if [ ! -x /opt/pip/bin/pip ]; then
    python3 -m venv /opt/pip
    pip_upgrade=1
fi
[ -x "$python" ] || python3 -m venv --without-pip /opt/venv
# A cache mount (BuildKit) keeps downloads between builds; without one pip keeps nothing.
[ -d /root/.cache/pip ] || export PIP_NO_CACHE_DIR=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_RETRIES=2 PIP_TIMEOUT=20
pip() { /opt/pip/bin/python -m pip "$@"; }

if [ -s inputs/ca.crt ]; then
    certifi="$(/opt/pip/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')"
    cat "$certifi" inputs/ca.crt >/build/ca-bundle.pem
    export PIP_CERT=/build/ca-bundle.pem SSL_CERT_FILE=/build/ca-bundle.pem
fi

groups=""
for group in "$@"; do groups="$groups --group $group"; done
# The project's own dependencies ([project] dependencies: what the library needs).
/opt/pip/bin/python -c '
import tomllib
with open("pyproject.toml", "rb") as file:
    print(*tomllib.load(file)["project"]["dependencies"], sep="\n")
' >/build/project-requirements.txt
set -- --find-links inputs/wheels
wheel="$(find inputs/wheels -maxdepth 1 -name 'torch-*.whl' 2>/dev/null | sort | tail -n 1)"
if [ -n "$wheel" ]; then
    # torch-2.13.0+cpu-cp311-...whl: the build follows the "+" (none: PyPI's own build).
    build="$(basename "$wheel" | cut -d- -f2 | sed -n 's/^[^+]*+//p')"
    if [ "${build:-pypi}" != "$TORCH_VARIANT" ]; then
        fail "the wheelhouse holds $(basename "$wheel"), a ${build:-PyPI} build of torch," \
            "not the $TORCH_VARIANT build asked for: put the $TORCH_VARIANT torch wheel" \
            "there or build without the wheelhouse."
    fi
elif [ -n "$TORCH_INDEX_URL" ]; then
    # One quick probe instead of pip retrying an unreachable index for every package.
    if ! /opt/pip/bin/python -c '
import os, ssl, sys, urllib.request
context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
url = sys.argv[1].rstrip("/") + "/torch/"
try:
    urllib.request.urlopen(url, timeout=20, context=context).close()
except Exception as error:
    sys.exit(f"{url}: {error}")
' "$TORCH_INDEX_URL"; then
        fail "PyTorch's wheel index $TORCH_INDEX_URL cannot be reached from the build, so" \
            "no $TORCH_VARIANT torch can be had: allow that host, set TORCH_INDEX_URL to a" \
            "mirror, or give a wheelhouse holding the $TORCH_VARIANT torch wheel."
    fi
    set -- "$@" --extra-index-url "$TORCH_INDEX_URL"
fi

# pip >= 25.1 reads pyproject dependency groups.
if [ -n "${pip_upgrade:-}" ]; then pip install --quiet "$@" "pip>=25.1"; fi
# shellcheck disable=SC2086 # one option per group
pip --python "$python" install --quiet "$@" -r /build/project-requirements.txt $groups \
    --constraint requirements.lock.txt

# The torch build must be the one asked for (PyPI's Linux torch is itself a CUDA build).
"$python" -c '
import sys, torch
variant = sys.argv[1]
expected = None if variant == "cpu" else f"{variant[2:-1]}.{variant[-1]}"
if torch.version.cuda != expected:
    sys.exit(
        f"build-image: pip installed torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"not the {variant} build asked for."
    )
' "$TORCH_VARIANT"

# What an image never runs: packages' own test suites and C headers (type stubs stay: mypy
# reads them), torch's tools and test library, botocore's models of AWS services other than S3
# and sign-in, and the symbols of shared libraries. Libraries that auditwheel vendored into
# `<package>.libs/` keep theirs: stripping those breaks numpy's OpenBLAS.
site="$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
find "$site" -mindepth 2 -name '*.h' -type f -delete
rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/lib/libtorchbind_test.so"
find "$site/torch/bin" -mindepth 1 ! -name torch_shm_manager -delete
if [ -d "$site/botocore/data" ]; then
    find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} +
fi
find "$site" -name '*.so*' -type f ! -path '*.libs/*' -cnewer /build/installed-before \
    -exec strip --strip-unneeded {} +
