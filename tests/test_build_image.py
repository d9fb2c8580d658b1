"""The `build-image` session without an engine: options, commands, build inputs, fail-closed.

The Docker files themselves (hadolint, compose, .dockerignore) are checked in
test_docker_files.py; builds and runs on a real engine in test_image_engine.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions import build_image
from sessions.build_image import OptionError, Options
from tests.conftest import ROOT, RecordingSession, without_coverage
from tests.support.optional import missing
from tests.support.platforms import skip_on

SHA = "0123456789abcdef0123456789abcdef01234567"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_default_options() -> None:
    # Without the machine's defaults (BUILD_IMAGE_*), which .ci/run sets for its engine.
    assert build_image.parse_options([], environ={}) == Options()


def test_options_are_parsed(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM, encoding="utf-8")
    options = build_image.parse_options(
        ["--tag", "v1", "--tag", "exp.2", "--cuda", "cu128", "--no-cache",
         "--extra-ca", str(ca), "--wheelhouse", str(tmp_path), "--network", "host",
         "--torch-index", "https://mirror.example/whl"]
    )  # fmt: skip
    assert options == Options(
        tags=("v1", "exp.2"), cuda="cu128", no_cache=True, extra_ca=ca,
        wheelhouse=tmp_path, network="host", torch_index="https://mirror.example/whl",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cuda", "12.8"], "CUDA variant such as cu128"),
        (["--cuda", "cuda"], "CUDA variant"),
        (["--tag", "a/b"], "not a valid image tag"),
        (["--tag", ""], "not a valid image tag"),
        (["--extra-ca", "/no/such/ca.pem"], "is not a file"),
        (["--wheelhouse", "/no/such/folder"], "is not a folder"),
        (["--colour"], "unrecognized arguments"),
        (["--tag"], "expected one argument"),
        (["--network", "bridge"], "--network takes `host`"),
    ],
)
def test_bad_options_raise_a_clear_error(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        build_image.parse_options(argv)


def test_help_lists_every_option() -> None:
    text = build_image.usage()
    for option in ("--tag", "--cuda", "--no-cache", "--extra-ca", "--wheelhouse", "--network",
                   "--torch-index"):  # fmt: skip
        assert option in text


def test_tags_are_commit_and_latest_then_extras() -> None:
    options = Options(tags=("paper",))
    assert build_image.image_tags(options, SHA) == [
        "gradient-lab:0123456789ab", "gradient-lab:latest", "gradient-lab:paper",
    ]  # fmt: skip
    assert build_image.image_tags(Options(), f"{SHA}-dirty")[0] == "gradient-lab:0123456789ab-dirty"
    assert build_image.image_tags(Options(), None) == ["gradient-lab:latest"]


def test_cuda_images_get_their_own_tags() -> None:
    tags = build_image.image_tags(Options(cuda="cu128"), SHA)
    assert tags == ["gradient-lab:0123456789ab-cu128", "gradient-lab:latest-cu128"]


def build_args(command: list[str]) -> dict[str, str]:
    values = [command[i + 1] for i, arg in enumerate(command) if arg == "--build-arg"]
    return dict(value.split("=", 1) for value in values)


COMPOSE = ["docker", "compose"]


def test_compose_builds_the_runtime_image_with_labels_then_the_other_services() -> None:
    runtime, helpers = build_image.compose_builds(COMPOSE, Options(), SHA, "2026-01-02T03:04:05Z")
    assert runtime[:2] == COMPOSE and runtime[-1] == "train"
    assert runtime[runtime.index("--file") + 1] == str(ROOT / "docker-compose.yml")
    assert "docker-compose.host-network.yml" not in " ".join(runtime)
    assert runtime[runtime.index("--progress") + 1] == "plain"
    assert build_args(runtime) == {"VCS_REF": SHA, "VCS_DATE": "2026-01-02T03:04:05Z"}
    assert helpers[-3:] == ["folders", "dev", "tests"]
    # Built exactly as a plain `docker compose build` builds them: same images, same cache.
    assert build_args(helpers) == {} and "--no-cache" not in helpers


def test_compose_builds_every_image_the_compose_file_uses(tmp_path: Path) -> None:
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    built = {build_image.RUNTIME_SERVICE, *build_image.HELPER_SERVICES}
    assert built == {name for name, s in services.items() if "gpu" not in s.get("profiles", [])}
    for name in built:
        assert services[name]["build"]["target"] == build_image.TARGETS[name]
        image = services[name]["image"].replace("${IMAGE_TAG:-latest}", "latest")
        assert image == build_image.service_image(name, Options())


def test_compose_build_options(tmp_path: Path) -> None:
    options = Options(no_cache=True, network="host", torch_index="https://mirror.example/whl")
    runtime, helpers = build_image.compose_builds(COMPOSE, options, None, None, root=tmp_path)
    for command in (runtime, helpers):
        assert "--no-cache" in command
        assert str(tmp_path / "docker-compose.host-network.yml") in command
        assert build_args(command)["TORCH_INDEX_URL"] == "https://mirror.example/whl"
    assert build_args(runtime)["VCS_REF"] == "unknown"


def test_cuda_builds_only_the_gpu_service_with_its_variant() -> None:
    (command,) = build_image.compose_builds(COMPOSE, Options(cuda="cu130"), SHA, None)
    assert command[command.index("--profile") + 1] == "gpu"
    assert command[-1] == "train-gpu"
    env = build_image.compose_env(Options(cuda="cu130"), {"IMAGE_TAG": "x", "PATH": "/bin"})
    assert env == {"TORCH_VARIANT": "cu130", "PATH": "/bin", "DOCKER_BUILDKIT": "1"}
    assert (
        build_image.service_image("train-gpu", Options(cuda="cu130")) == "gradient-lab:latest-cu130"
    )
    env = build_image.compose_env(Options(), {"TORCH_VARIANT": "cu128"})
    assert env == {"DOCKER_BUILDKIT": "1"}


def test_compose_builds_with_buildkit_whatever_the_environment_says() -> None:
    """Compose takes the legacy builder where DOCKER_BUILDKIT=0: the session never lets it."""
    env = build_image.compose_env(Options(), {"DOCKER_BUILDKIT": "0", "PATH": "/bin"})
    assert env["DOCKER_BUILDKIT"] == "1"


def test_build_args_name_real_dockerfile_args() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for options in (Options(cuda="cu128"), Options(torch_index="https://mirror.example/whl")):
        for command in build_image.compose_builds(COMPOSE, options, SHA, "now"):
            for name in build_args(command):
                assert f"ARG {name}=" in dockerfile, name


def test_no_build_time_in_any_build_argument() -> None:
    """A rebuild of the same commit must give the same image ID."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "BUILD_DATE" not in dockerfile
    assert "--build-arg" not in " ".join(
        build_image.compose_builds(COMPOSE, Options(), None, None)[1]
    )


def test_smoke_runs_imports_as_image_user_then_trains_as_host_user(tmp_path: Path) -> None:
    imports, train = build_image.smoke_commands("img:1", tmp_path, "1001:1002", "host", "cu128")
    assert imports[:5] == ["docker", "run", "--rm", "--network", "host"]
    assert "--user" not in imports and imports[-5:-3] == ["img:1", "python"]
    assert "import os, sys, torch, wandb, dvc.api" in imports[-2]
    assert imports[-1] == "cu128"
    assert train[train.index("--volume") + 1] == f"{tmp_path.resolve()}:/workspace/models"
    assert train[train.index("--user") + 1] == "1001:1002"
    assert train[-len(build_image.SMOKE_TRAIN) :] == list(build_image.SMOKE_TRAIN)
    assert "/workspace/models" in build_image.SMOKE_TRAIN


@pytest.mark.parametrize(("variant", "cuda", "passes"), [
    ("cpu", None, True), ("cu128", "12.8", True), ("cu130", "13.0", True),
    ("cu128", None, False), ("cpu", "12.8", False),
])  # fmt: skip
def test_smoke_imports_assert_the_torch_build(variant: str, cuda: str | None, passes: bool) -> None:
    """The smoke check's torch assertion, run against a stand-in torch module."""
    import types

    fake = types.SimpleNamespace(__version__="2.13.0", version=types.SimpleNamespace(cuda=cuda))
    code = build_image.SMOKE_IMPORTS.replace("import os, sys, torch, wandb, dvc.api", "import os")
    code = code.replace("assert os.getuid() != 0, 'the image runs as root'\n", "")
    code = code.replace("wandb={wandb.__version__}", "")
    namespace = {"torch": fake, "sys": types.SimpleNamespace(argv=["-c", variant])}
    if passes:
        exec(code, namespace)
    else:
        with pytest.raises(AssertionError, match=f"not the {variant} build"):
            exec(code, namespace)


def test_a_wheelhouse_never_satisfies_a_cuda_request_with_a_cpu_wheel(tmp_path: Path) -> None:
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    with pytest.raises(OptionError, match=r"a cpu build of torch, not the cu128 build asked for"):
        build_image.parse_options(["--cuda", "cu128", "--wheelhouse", str(tmp_path)])
    assert build_image.parse_options(["--wheelhouse", str(tmp_path)]).variant == "cpu"
    pypi = tmp_path / "pypi"
    pypi.mkdir()
    (pypi / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    with pytest.raises(OptionError, match="a pypi build of torch, not the cpu build"):
        build_image.parse_options(["--wheelhouse", str(pypi)])


@pytest.mark.slow
def test_build_failure_is_reported_in_one_sentence(tmp_path: Path) -> None:
    script = "print('#9 1.0 build-image: the index cannot be reached.'); raise SystemExit(1)"
    assert build_image.run_build([sys.executable, "-c", script]) == "The index cannot be reached."
    assert build_image.run_build([sys.executable, "-c", "raise SystemExit(2)"]) == (
        build_image.BUILD_FAILED
    )
    assert build_image.run_build([sys.executable, "-c", "print('ok')"]) is None


def test_smoke_without_host_user_or_network(tmp_path: Path) -> None:
    _, train = build_image.smoke_commands("img", tmp_path, None, None)
    assert "--network" not in build_image.dev_smoke_command("img", None)
    assert "--user" not in train and "--network" not in train


@pytest.mark.slow
def test_smoke_training_step_really_trains(tmp_path: Path) -> None:
    """The smoke command trains the demo and saves loadable weights (run here, not in Docker)."""
    import torch

    swap = {"/workspace/models": tmp_path / "models", "/tmp": tmp_path, "/tmp/data": tmp_path / "d"}
    command = [sys.executable, *(str(swap.get(arg, arg)) for arg in build_image.SMOKE_TRAIN[1:])]
    # Unmeasured: the demo's lines are measured by the tests that train it through the session.
    env = without_coverage(os.environ) | {
        "WANDB_DATA_DIR": str(tmp_path / "wd"),
        "WANDB_CACHE_DIR": str(tmp_path),
        "WANDB_CONFIG_DIR": str(tmp_path / "cfg"),
        "WANDB_SILENT": "true",
    }
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    weights = tmp_path / "models" / build_image.SMOKE_WEIGHTS
    assert f"Weights: {weights}" in result.stdout
    state = torch.load(weights, weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())


def test_host_user_is_numeric_uid_gid() -> None:
    user = build_image.host_user()
    if user is not None:
        uid, gid = user.split(":")
        assert uid.isdigit() and gid.isdigit()


def test_build_inputs_are_filled_then_emptied(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "README.md").write_text("keep", encoding="utf-8")
    ca = tmp_path / "corp.pem"
    ca.write_text(PEM, encoding="utf-8")
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    (wheelhouse / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (wheelhouse / "notes.txt").write_text("not a wheel", encoding="utf-8")

    build_image.prepare_build_inputs(Options(extra_ca=ca, wheelhouse=wheelhouse), folder)
    assert (folder / "ca.crt").read_text(encoding="utf-8") == PEM
    assert [p.name for p in (folder / "wheels").iterdir()] == ["pkg-1.0-py3-none-any.whl"]

    build_image.prepare_build_inputs(Options(), folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "wheels"]
    assert not any((folder / "wheels").iterdir())


def test_build_inputs_reject_what_pip_cannot_use(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello", encoding="utf-8")
    with pytest.raises(OptionError, match="no PEM certificate"):
        build_image.prepare_build_inputs(Options(extra_ca=not_pem), tmp_path / "a")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OptionError, match=r"no \.whl files"):
        build_image.prepare_build_inputs(Options(wheelhouse=empty), tmp_path / "b")


@pytest.mark.slow
def test_git_revision_is_the_checked_out_commit() -> None:
    revision = build_image.git_revision()
    assert revision is not None
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert revision.removesuffix("-dirty") == head


@pytest.mark.slow
def test_git_revision_outside_a_repository(tmp_path: Path) -> None:
    assert build_image.git_revision(tmp_path) is None


def test_human_size() -> None:
    assert build_image.human_size(1_070_000_000) == "1.07 GB"
    assert build_image.human_size(215_000_000) == "215 MB"


@pytest.mark.slow
@skip_on("darwin", reason="GitHub's macOS runners have no docker client")
def test_no_engine_is_one_sentence(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path / 'missing.sock'}")
    problem = build_image.engine_problem(env)
    if problem == build_image.NO_CLIENT:
        missing(
            "no docker client is installed (Docker Engine or Docker Desktop: "
            "https://docs.docker.com/get-docker/)"
        )
    assert problem == build_image.NO_ENGINE.format(where=f" at {env['DOCKER_HOST']}")
    assert problem.count(". ") == 0 and problem.endswith(".")


def test_no_client_is_one_sentence(tmp_path: Path) -> None:
    assert build_image.engine_problem({"PATH": str(tmp_path)}) == build_image.NO_CLIENT


def stand_in_docker(folder: Path, body: str, path: str) -> str:
    """PATH with, first, a `docker` client that runs BODY (a shell script) whatever it is
    asked: an engine or a client that cannot be had here, such as a Windows engine."""
    docker = folder / "docker"
    docker.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    docker.chmod(0o755)
    return f"{folder}{os.pathsep}{path}"


@pytest.mark.slow
@skip_on("win32", reason="the stand-in docker client is a shell script")
def test_an_engine_without_buildkit_stops_the_session_in_one_sentence(
    tmp_path: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    """A Windows engine (Docker Desktop on Windows containers) builds without BuildKit: the
    session says what to use instead, before it builds anything."""
    env = {k: v for k, v in child_env.items() if k != "DOCKER_HOST"}
    env["PATH"] = stand_in_docker(tmp_path, "echo windows", env["PATH"])
    command = [*nox_cmd, "--no-venv", "-s", "build-image"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    sentence = build_image.NO_BUILDKIT.format(where="", system="windows")
    assert f"Session build-image aborted: {sentence}" in output, output
    assert sentence.count(". ") == 0 and sentence.endswith(".")


@pytest.mark.slow
@skip_on("win32", reason="the stand-in docker client is a shell script")
def test_without_compose_v2_the_build_stops_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client without the Compose plugin where the `image` group has no binary (macOS,
    Windows): no other builder, one sentence saying what to install."""
    monkeypatch.setenv("PATH", stand_in_docker(tmp_path, "exit 1", os.environ["PATH"]))
    monkeypatch.setattr(sys, "platform", "darwin")
    session = RecordingSession(tmp_path)
    with pytest.raises(RuntimeError) as stopped:
        build_image.build(session, Options(), None)
    assert str(stopped.value) == build_image.NO_COMPOSE
    assert session.runs == [] and session.installs == []
    assert build_image.NO_COMPOSE.count(". ") == 0


@pytest.mark.slow
def test_session_fails_closed_without_an_engine(
    tmp_path: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    env = dict(child_env, DOCKER_HOST=f"unix://{tmp_path / 'missing.sock'}")
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "build-image"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "No Docker engine answers at unix://" in output or "`docker` command" in output


@pytest.mark.slow
def test_session_rejects_bad_options_before_building(
    nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "build-image", "--", "--cuda", "12.8"],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "build-image: --cuda takes a CUDA variant such as cu128" in output
    assert "nox -s build-image -- --help" in output


def test_environment_sets_option_defaults_and_options_win(tmp_path: Path) -> None:
    environ = {"BUILD_IMAGE_NETWORK": "host", "BUILD_IMAGE_WHEELHOUSE": str(tmp_path)}
    options = build_image.parse_options([], environ)
    assert options.network == "host" and options.wheelhouse == tmp_path
    with pytest.raises(OptionError, match="--network takes `host`"):
        build_image.parse_options(["--network", "none"], environ)
    with pytest.raises(OptionError, match="is not a file"):
        build_image.parse_options([], {"BUILD_IMAGE_EXTRA_CA": str(tmp_path / "absent.pem")})
