#!/bin/sh
# Install the project's dependencies and pyproject dependency groups, pinned by the lock, into
# /opt/venv (ROOT /), or only the files of what that venv lacks, under another ROOT (pip's --root:
# the dev image's layer).   sh install-groups.sh ROOT GROUP...
set -eu
root="$1"; shift
python3 -c 'import sys, tomllib
print(*tomllib.load(sys.stdin.buffer)["project"]["dependencies"], sep="\n")' \
    <pyproject.toml >project.txt
torch_source="$(python3 torch_build.py source)"
/opt/pip/bin/pip install --quiet "pip>=25.1"  # it reads dependency groups
# shellcheck disable=SC2046,SC2086 # one word per option
/opt/pip/bin/pip --python /opt/venv/bin/python install --quiet --root "$root" --no-compile \
    --no-warn-script-location $torch_source $(printf -- '--group %s ' "$@") -r project.txt \
    --constraint requirements.lock.txt
site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
cd "$root$site"
# What an image never runs: packages' tests and C headers (type stubs stay: mypy reads them),
# torch's tools and test library, botocore's models of services other than S3 and sign-in, and
# the symbols of shared libraries, but auditwheel's `<package>.libs/` (numpy's OpenBLAS breaks).
find . -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
find . -mindepth 2 -type f -name '*.h' -delete
rm -rf torch/test torch/include torch/lib/libtorchbind_test.so
find . -path './torch/bin/*' ! -name torch_shm_manager -delete
find . -path './botocore/data/*' -prune -type d ! -name s3 ! -name sts ! -name sso \
    ! -name sso-oidc -exec rm -rf {} +
find . -name '*.so*' -type f ! -path '*.libs/*' -exec strip --strip-unneeded {} +
# Bytecode stays (a non-root user cannot write __pycache__) and names each file's final place.
/opt/venv/bin/python -m compileall -q -j 0 -x '/torch/testing/_internal/py312' -d "$site" .
