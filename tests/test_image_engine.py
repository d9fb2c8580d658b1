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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions import build_image
from tests.conftest import ROOT
from tests.support.optional import missing
from tests.test_docker_files import compose_command

# The first test may build the images (up to 30 minutes cold): a longer limit than the default.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]
# A uid the image does not know, as a contributor's host uid is; the fresh copy belongs to it.
OTHER_UID = 1234
# The tests `docker compose run --rm tests` runs here: those that need what the dev image adds
# (git, the emoji font, hadolint and compose) and that write into the mounted checkout; DVC as
# another uid is checked through `dev` below. The whole gate (`nox -s tests`, 4 to 10 minutes
# on 2 cores) is what the service runs by default.
IN_CONTAINER_TESTS = (
    "tests/test_export_summary.py", "tests/test_docker_files.py", "tests/test_no_binaries.py",
    "tests/test_synthetic_data.py", "tests/test_build_image.py",
)  # fmt: skip

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
        missing(problem)


def build_context(
    target: Path, *, with_inputs: bool = True, dotenv: bool = True, link: bool = True
) -> Path:
    """A copy of what `docker build .` sends: tracked files, the build inputs, and a `.env`
    holding a dummy key, as a careless developer might have. Without the inputs and the
    `.env`, a fresh clone of the working tree."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    inputs = ROOT / "docker" / "build-inputs"
    extra = [p.relative_to(ROOT).as_posix() for p in inputs.rglob("*") if p.is_file()]
    if not with_inputs:
        extra = []
    for name in dict.fromkeys(filter(None, [*files, *extra])):
        source, copy = ROOT / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                if not link:
                    raise OSError("a copy of its own")
                copy.hardlink_to(source)
            except OSError:
                shutil.copy2(source, copy)
    if dotenv:
        (target / ".env").write_text("".join(f"{k}={v}\n" for k, v in DUMMY.items()), "utf-8")
    return target


def compose_run(
    project: Path, config: Path, *args: str, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` on a project with its own and the host-network compose files."""
    return subprocess.run(
        [*compose_command(config), "--project-directory", str(project),
         "-f", str(project / "docker-compose.yml"),
         "-f", str(project / "docker-compose.host-network.yml"), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The runtime image built by compose (BuildKit, the layers build-image cached) from a
    context holding dummy keys in the environment and in `.env`."""
    context = build_context(tmp_path_factory.mktemp("context"))
    env = {**os.environ, **DUMMY, "IMAGE_TAG": TAG}
    result = compose_run(
        context, tmp_path_factory.mktemp("docker-config"), "--progress", "plain", "build",
        "--build-arg", "VCS_REF=test", "train", env=env, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield IMAGE
    # A later module's build of this tag untags this one: leave nothing dangling behind.
    for command in build_image.prune_commands():
        subprocess.run(command, capture_output=True, check=False)


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


@pytest.fixture(scope="module")
def fresh(engine: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the project (no data/, models/ or wandb/, no build inputs) owned by a
    uid the image does not know, and the environment a contributor sets for it."""
    if not hasattr(os, "getuid"):
        pytest.skip("bind-mount ownership is a Linux matter")
    project = build_context(tmp_path_factory.mktemp("fresh") / "clone", with_inputs=False,
                            dotenv=False, link=False)  # fmt: skip
    git = ["git", "-c", "user.name=Contributor", "-c", "user.email=c@example.org"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh clone"]):
        subprocess.run([*git, *step], cwd=project, check=True)
    uid = OTHER_UID if os.getuid() == 0 else os.getuid()
    if os.getuid() == 0:
        for path in [project, *project.rglob("*")]:
            os.lchown(path, uid, uid)
    env = {
        **{k: v for k, v in os.environ.items() if k not in DUMMY and k != "IMAGE_TAG"},
        "HOST_UID": str(uid), "HOST_GID": str(uid)
    }  # fmt: skip
    return project, env


def test_compose_tests_service_passes_on_a_fresh_copy(
    fresh: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The README's contributor path: `docker compose run --rm tests` on a fresh clone, as a
    uid the image does not know (git, DVC, the emoji font, reports written into the clone)."""
    project, env = fresh
    result = compose_run(
        project, tmp_path / "cfg", "run", "--rm", "-T", "tests",
        "nox", "--no-venv", "-s", "tests", "--", *IN_CONTAINER_TESTS, "--no-cov", env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert " passed" in output and " failed" not in output and " error" not in output
    junit = project / "reports" / "junit-linux.xml"
    assert junit.is_file() and junit.stat().st_uid == int(env["HOST_UID"])


def test_train_writes_weights_and_runs_as_the_host_uid(
    fresh: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`train` on a fresh copy as HOST_UID: the engine creates data/, models/ and wandb/ as
    root; the `folders` service hands them over; data comes from data.dvc's record (missing
    here, so regenerated with a notice); runs land in wandb/ itself."""
    project, env = fresh
    result = compose_run(
        project, tmp_path / "cfg", "run", "--rm", "-T", "train",
        "nox", "--no-venv", "-s", "train-tracked", "--", "--smoke", "--no-progress", env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "data.dvc" in output  # the record reached the container
    uid = int(env["HOST_UID"])
    weights = sorted((project / "models").glob("*.pt"))
    assert weights and all(w.stat().st_uid == uid and w.stat().st_size > 0 for w in weights)
    runs = list((project / "wandb").glob("offline-run-*"))
    assert runs and all(run.stat().st_uid == uid for run in runs)
    assert not (project / "wandb" / "wandb").exists()
    assert (project / "data").stat().st_uid == uid


def test_train_refuses_data_that_differ_from_the_record(
    fresh: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """data.dvc reaches the container and decides what it trains on: edited data stop it."""
    project, env = fresh
    copy = tmp_path / "edited"
    shutil.copytree(project, copy, symlinks=True)
    shutil.rmtree(copy / "models", ignore_errors=True)
    (copy / "data").mkdir(exist_ok=True)
    (copy / "data" / "edited.txt").write_text("not the recorded data\n", encoding="utf-8")
    if os.getuid() == 0:
        for path in [copy, *copy.rglob("*")]:
            os.lchown(path, int(env["HOST_UID"]), int(env["HOST_GID"]))
    result = compose_run(
        copy, tmp_path / "cfg", "run", "--rm", "-T", "train",
        "nox", "--no-venv", "-s", "train-tracked", "--", "--smoke", env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data/ differs from the version data.dvc records" in output
    assert not list((copy / "models").glob("*.pt"))


def test_dev_runs_dvc_as_a_uid_the_image_does_not_know(
    fresh: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, env = fresh
    result = compose_run(
        project, tmp_path / "cfg", "run", "--rm", "-T", "dev", "sh", "-c",
        "getent passwd $(id -u) || echo 'no passwd entry'; dvc status", env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    if env["HOST_UID"] == str(OTHER_UID):
        assert "no passwd entry" in output
    assert "getpwuid" not in output and "ERROR" not in output


def image_ids(names: list[str]) -> list[str]:
    return [
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", name],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for name in names
    ]  # fmt: skip


def test_rebuilds_keep_image_ids_and_leave_nothing_dangling(
    engine: None, nox_cmd: list[str], child_env: dict[str, str], tmp_path: Path
) -> None:
    """Two `nox -s build-image` runs on a copy of the project: the second builds the same
    image IDs, and no build leaves a dangling image behind."""
    project = build_context(tmp_path / "project", with_inputs=False, dotenv=False)
    names = ["gradient-lab:latest", "gradient-lab:dev", "gradient-lab:tests",
             "gradient-lab:folders"]  # fmt: skip
    ids = []
    for _ in range(2):
        result = subprocess.run(
            [*nox_cmd, "--no-venv", "-f", str(project / "noxfile.py"), "-s", "build-image"],
            cwd=project, env=child_env, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        ids.append(image_ids(names))
        dangling = subprocess.run(
            ["docker", "images", "-q", "-f", "dangling=true"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert dangling == []
    assert ids[0] == ids[1]


def test_a_cpu_wheelhouse_cannot_satisfy_a_cuda_build(
    fresh: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`docker compose build` itself (no session) refuses a CPU torch for a CUDA variant."""
    project, env = fresh
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    wheels = copy / "docker" / "build-inputs" / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"stand-in")
    result = compose_run(
        copy, tmp_path / "cfg", "--progress", "plain", "build", "--build-arg",
        "TORCH_VARIANT=cu128", "train", env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "build-image: the wheelhouse holds torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl,"
        " a cpu build of torch, not the cu128 build asked for" in output
    )


def test_an_unreachable_torch_index_fails_in_one_sentence(
    fresh: tuple[Path, dict[str, str]], nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    """`nox -s build-image -- --cuda cu128` with an index that never answers (a TEST-NET
    address) stops at the index probe with one sentence, not after pip's retries."""
    project, _ = fresh
    env = {k: v for k, v in child_env.items() if k != "BUILD_IMAGE_WHEELHOUSE"}
    start = time.monotonic()
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-f", str(project / "noxfile.py"), "-s", "build-image", "--",
         "--cuda", "cu128", "--torch-index", "http://192.0.2.1/whl/cu128"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode != 0
    sentence = (
        "PyTorch's wheel index http://192.0.2.1/whl/cu128 cannot be reached from the build, "
        "so no cu128 torch can be had"
    )
    assert f"Session build-image aborted: {sentence}" in output, output[-3000:]
    print(f"unreachable index: failed after {elapsed:.0f} s")


def test_docker_stop_gives_sigterm_to_a_process_below_the_command(
    image: str, tmp_path: Path
) -> None:
    """tini (PID 1, `-g`) passes `docker stop`'s SIGTERM to the command's whole process group:
    a Python process started by a shell gets it. The shell waits for it, as nox must for the
    training script (tini ends the container when its own child ends)."""
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o777)
    handler = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        "    pathlib.Path('/workspace/models/got-sigterm').write_text('143')\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "pathlib.Path('/workspace/models/ready').write_text('')\n"
        "time.sleep(120)\n"
    )
    name = f"gradient-lab-stop-{os.getpid()}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "host", "--name", name,
         "--volume", f"{models}:/workspace/models", image,
         "sh", "-c", f"trap '' TERM; python -c {shlex.quote(handler)}; echo exited"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    try:
        for _ in range(300):
            if (models / "ready").exists():
                break
            time.sleep(0.1)
        assert (models / "ready").exists()
        subprocess.run(["docker", "stop", "-t", "20", name], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert (models / "got-sigterm").read_text(encoding="utf-8") == "143"
