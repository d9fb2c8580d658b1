"""The image on a real Docker engine: no credential in any layer; compose runs the workspace.

Marked `docker`. They skip only when no engine is configured (no DOCKER_HOST and nothing at the
default socket); with DOCKER_HOST set, an engine that does not answer is a failure. The build
reuses the layers `nox -s build-image` cached, and whatever it left in docker/build-inputs/.
Builds and runs use the host network, which every Linux engine offers and engines without a
bridge network (CI sandboxes) need.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions import build_image
from tests.conftest import ROOT
from tests.test_docker_files import compose_command

# The first test builds the image (up to 30 minutes cold): a longer limit than the default.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]

TAG = "pytest"
IMAGE = f"{build_image.IMAGE}:{TAG}"
DUMMY = {
    "WANDB_API_KEY": "dummy-wandb-key-5f0c2a71e9",
    "AWS_ACCESS_KEY_ID": "AKIADUMMY5F0C2A71E9",
    "AWS_SECRET_ACCESS_KEY": "dummy-aws-secret-5f0c2a71e9",
}


@pytest.fixture(scope="module")
def engine() -> None:
    if sys.platform == "win32" and not os.environ.get("DOCKER_HOST"):
        # Windows runners' engine runs Windows containers; the image is a Linux image.
        pytest.skip("the image is built and tested on Linux engines")
    problem = build_image.engine_problem()
    if problem is not None:
        if os.environ.get("DOCKER_HOST"):
            pytest.fail(problem)
        pytest.skip(f"no Docker engine configured: {problem}")


def reuse_options() -> build_image.Options:
    """Options matching what the last `nox -s build-image` left in the build inputs, so its
    cached layers are reused (a wheelhouse there means no PyTorch index)."""
    wheels = build_image.BUILD_INPUTS / "wheels"
    has_wheels = wheels.is_dir() and any(wheels.glob("*.whl"))
    return build_image.Options(network="host", wheelhouse=wheels if has_wheels else None)


def build_context(target: Path) -> Path:
    """A copy of what `docker build .` sends: tracked files, the build inputs, and a `.env`
    holding a dummy key, as a careless developer might have."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    inputs = ROOT / "docker" / "build-inputs"
    extra = [p.relative_to(ROOT).as_posix() for p in inputs.rglob("*") if p.is_file()]
    for name in dict.fromkeys(filter(None, [*files, *extra])):
        source, copy = ROOT / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                copy.hardlink_to(source)
            except OSError:
                shutil.copy2(source, copy)
    (target / ".env").write_text("".join(f"{k}={v}\n" for k, v in DUMMY.items()), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Dockerfile built with dummy keys in the environment and in `.env`."""
    context = build_context(tmp_path_factory.mktemp("context"))
    options = reuse_options()
    command = build_image.build_command(options, None, "test", context=context, tags=[IMAGE])
    result = subprocess.run(
        command, env={**os.environ, **DUMMY}, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield IMAGE


def test_no_credential_in_history_config_or_any_layer(image: str) -> None:
    history = subprocess.run(
        ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
    ).stdout
    inspect = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
    ).stdout
    assert "org.opencontainers.image.revision" in inspect  # the inspection really looked
    secrets = [value.encode() for value in DUMMY.values()]
    for text in (history, inspect):
        assert not any(secret.decode() in text for secret in secrets)

    # Every byte of every layer: `docker save` streams the image as a tar of layer tars.
    seen = 0
    tail = b""
    longest = max(map(len, secrets))
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
        assert save.stdout is not None
        while chunk := save.stdout.read(1 << 22):
            window = tail + chunk
            assert not any(secret in window for secret in secrets)
            tail = window[-longest:]
            seen += len(chunk)
    assert save.returncode == 0
    assert seen > 100_000_000  # torch is in there: the scan covered the real layers


def test_image_runs_as_non_root_with_empty_credentials(image: str) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", image, "sh", "-c",
         "id -u; env | grep -E '^(WANDB_API_KEY|AWS_)' || true"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    uid, *credentials = result.stdout.split()
    assert uid != "0"
    assert credentials == []


def test_compose_runs_train_and_weights_reach_the_host(image: str, tmp_path: Path) -> None:
    """`docker compose run --rm train` with the project's compose files: one training step
    writes into the host's models/ volume; a key given in the environment reaches it."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("docker-compose.yml", "docker-compose.host-network.yml"):
        shutil.copy2(ROOT / name, project / name)
    (project / "models").mkdir()
    user = build_image.host_user() or "1000:1000"
    uid, gid = user.split(":")
    env = {
        **os.environ, "IMAGE_TAG": TAG, "HOST_UID": uid, "HOST_GID": gid,
        "WANDB_API_KEY": DUMMY["WANDB_API_KEY"],
    }  # fmt: skip
    smoke = shlex.join(build_image.SMOKE_TRAIN)
    check_key = "import os; assert os.environ['WANDB_API_KEY'] == " + repr(DUMMY["WANDB_API_KEY"])
    result = subprocess.run(
        [*compose_command(tmp_path / "docker-config"), "--project-directory", str(project),
         "-f", str(project / "docker-compose.yml"),
         "-f", str(project / "docker-compose.host-network.yml"),
         "run", "--rm", "--no-deps", "train",
         "sh", "-c", f"{smoke} && python -c {shlex.quote(check_key)}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Weights: /workspace/models/{build_image.SMOKE_WEIGHTS}" in result.stdout
    weights = project / "models" / build_image.SMOKE_WEIGHTS
    assert weights.is_file() and weights.stat().st_size > 0
    if hasattr(os, "getuid"):
        assert weights.stat().st_uid == int(uid)
