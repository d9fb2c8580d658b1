"""`docker stop` on a training started with `docker compose run train`: the stop is clean.

The engine sends SIGTERM to the container's PID 1 and kills it after its grace period. Whether
PID 1 is nox itself (exec-form CMD) or an init that passes the signal to nox or to its whole
process group (`init: true`), the training must stop at a step boundary, save its checkpoint
into the host's models/ volume and close its W&B run in the host's wandb/ volume, and the
container must exit 143. Uses the image and engine fixtures of the engine tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import torch

from sessions import build_image
from tests.conftest import ROOT
from tests.support.wandb_runs import inspect, run_dirs
from tests.test_docker_files import compose_command
from tests.test_image_engine import TAG, engine, image  # noqa: F401 - fixtures

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRAIN = ["--activation", "relu", "--width", "32", "--samples", "512", "--epochs", "100000",
         "--log-every", "5", "--no-progress"]  # fmt: skip


# PID 1 as the project's compose file has it, and an init that signals the process group.
INIT_SIGNALS_GROUP = """services:
  train:
    init: true
    environment:
      TINI_KILL_PROCESS_GROUP: "1"
"""


@pytest.mark.parametrize("pid1", ["as-configured", "init-signals-group"])
def test_docker_stop_saves_the_checkpoint_on_the_host_volume(
    image: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    pid1: str,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    files = ["docker-compose.yml", "docker-compose.host-network.yml"]
    for name in files:
        shutil.copy2(ROOT / name, project / name)
    if pid1 == "init-signals-group":
        (project / "init.yml").write_text(INIT_SIGNALS_GROUP, encoding="utf-8")
        files.append("init.yml")
    for folder in ("data", "models", "wandb"):
        (project / folder).mkdir()
    uid, gid = (build_image.host_user() or "1000:1000").split(":")
    env = {**os.environ, "IMAGE_TAG": TAG, "HOST_UID": uid, "HOST_GID": gid}
    env = {k: v for k, v in env.items() if not k.startswith("WANDB_")}
    container = f"stop-test-{uuid.uuid4().hex[:8]}"
    compose = [*compose_command(tmp_path / "docker-config"), "--project-directory", str(project)]
    for name in files:
        compose += ["-f", str(project / name)]
    # The service's own command (nox -s train-tracked), with a long run's options.
    run = subprocess.Popen(
        [*compose, "run", "--rm", "--no-deps", "--name", container, "train",
         "nox", "--no-venv", "-s", "train-tracked", "--", *TRAIN],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        logs = project / "wandb"  # the host's wandb/ holds the runs themselves
        while not any(f.stat().st_size >= 64 * 1024 for f in logs.glob("*/*.wandb")):
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "the container never started training"
            time.sleep(0.1)
        began = time.monotonic()
        stop = subprocess.run(["docker", "stop", container], capture_output=True, text=True)
        stopped_in = time.monotonic() - began
        output, _ = run.communicate(timeout=60)
        print(f"docker stop ({pid1}): {stopped_in:.2f} s")
    finally:
        if run.poll() is None:
            subprocess.run(["docker", "kill", container], capture_output=True)
            run.kill()
    assert stop.returncode == 0, stop.stderr
    assert run.returncode == 143, output
    assert stopped_in < 10, f"the engine had to kill the container ({stopped_in:.1f} s)"
    assert "Stopped by SIGTERM at step " in output
    assert "Resume: nox --no-venv -s train-tracked -- " in output
    checkpoint = project / "models" / "vanishing-gradients.ckpt"
    assert torch.load(checkpoint, weights_only=True)["gradient_lab"]["next_step"] > 0
    (run_dir,) = run_dirs(project)
    assert inspect(run_dir)["exit_code"] == 143
