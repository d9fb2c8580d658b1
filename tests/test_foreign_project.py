"""The library used from another repository, as the README tells a new user to: one install
command into an empty venv, the README's lines in a small CNN script, plain runs and torchrun.

The venv is built once per module (installing torch takes a while); the lock is given to pip
through PIP_CONSTRAINT so the README's command runs verbatim with the versions CI tested.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import ROOT
from tests.support.platforms import skip_on
from tests.support.wandb_runs import history, inspect, run_dirs

# Building the venv (torch included) happens in the first test: give it time on a busy machine.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    # The workspace links the checkout in (Windows needs a privilege for that), and torchrun's
    # rendezvous store needs libuv, which torch's Windows builds lack.
    skip_on("win32", reason="symbolic link and torchrun rendezvous"),
]

SCRIPT = Path(__file__).parent / "foreign_project" / "train_cnn.py"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("Track your own script") :]


def readme_install_command() -> list[str]:
    """The install command as the README prints it (the first `python -m pip install` line)."""
    line = next(line.strip() for line in readme_section().splitlines()
                if line.strip().startswith("python -m pip install"))  # fmt: skip
    return shlex.split(line.split("#")[0])


def readme_tracking_lines() -> list[str]:
    """The README snippet's lines that use the library."""
    block = readme_section().split("```python", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.splitlines()
            if "track" in line]  # fmt: skip


def bin_dir(env_dir: Path) -> Path:
    return env_dir / ("Scripts" if sys.platform == "win32" else "bin")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, package_index: None) -> dict[str, Path]:
    """A folder holding `gradient-lab` (this checkout), `my-project` (a git repository with
    the CNN script, committed) and `venv` (empty, then the README's install command)."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "gradient-lab").symlink_to(ROOT, target_is_directory=True)
    project = root / "my-project"
    project.mkdir()
    shutil.copy(SCRIPT, project / SCRIPT.name)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org"]
    for args in (["init", "-q"], ["add", SCRIPT.name], ["commit", "-q", "-m", "a CNN"]):
        subprocess.run([*git, *args], cwd=project, check=True, capture_output=True)
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = bin_dir(root / "venv") / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COVERAGE"))}
    env["PIP_CONSTRAINT"] = str(ROOT / "requirements.lock.txt")
    command = readme_install_command()
    assert command[:4] == ["python", "-m", "pip", "install"], command
    result = subprocess.run([str(python), *command[1:]], cwd=project, env=env,
                            capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"root": root, "project": project, "bin": bin_dir(root / "venv")}


def foreign_env(tmp_path: Path) -> dict[str, str]:
    """No PYTHONPATH, no coverage, no W&B settings but offline mode and private folders."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "COVERAGE", "WANDB_"))}  # fmt: skip
    return env | {"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                  "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
                  "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
                  "WANDB_DATA_DIR": str(tmp_path / "wandb-data")}  # fmt: skip


def load_net() -> Any:
    spec = importlib.util.spec_from_file_location("train_cnn", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net()


def test_the_script_uses_the_readme_lines_verbatim() -> None:
    source = SCRIPT.read_text(encoding="utf-8")
    lines = readme_tracking_lines()
    assert len(lines) >= 4, lines
    for line in lines:
        assert line in source, line


def test_a_script_in_another_repository_records_that_repository_and_keeps_runs_beside_it(
    workspace: dict[str, Path], tmp_path: Path
) -> None:
    project = workspace["project"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    result = subprocess.run(
        [str(workspace["bin"] / "python"), SCRIPT.name, "--steps", "40",
         "--unfreeze-stem-at", "20", "--freeze-conv-at", "30"],
        cwd=project, env=foreign_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "WARNING" not in result.stderr  # no alarm
    (run_dir,) = run_dirs(project)
    assert f"W&B run (offline): {run_dir.relative_to(project)}" in result.stdout
    run = inspect(run_dir)
    provenance = run["config"]["provenance"]
    assert (provenance["git_commit"], provenance["git_repository"]) == (head, "my-project")
    assert provenance["git_dirty"] is False and provenance["data_version"] == "untracked"
    assert run["config"]["accumulate"] == 2  # an argparse.Namespace config
    assert run["summary"]["gradients/health"] == "healthy"
    rows = {row["_step"]: row for row in history(run_dir) if "loss" in row}
    assert sorted(rows) == [9, 19, 29, 39]
    layers = {step: {k.removeprefix("grad_norm/") for k in row if k.startswith("grad_norm/")}
              for step, row in rows.items()}  # fmt: skip
    # The stem is frozen until step 20, the conv layer from step 30: each only while trained.
    assert layers[9] == layers[19] == {"conv", "norm", "head", "first_to_last"}
    assert layers[29] == {"stem", "conv", "norm", "head", "first_to_last"}
    assert layers[39] == {"stem", "norm", "head", "first_to_last"}
    assert rows[9]["lr/group0"] == pytest.approx(0.05) and rows[9]["lr/group1"] == pytest.approx(
        0.005
    )
    assert rows[39]["lr/group0"] == pytest.approx(0.05 / 8)
    weights = project / "models" / "my-experiment.pt"
    load_net().load_state_dict(torch.load(weights, weights_only=True))
    assert (run_dir / "artifacts" / "my-experiment.pt").read_bytes() == weights.read_bytes()
    assert not any((workspace["root"] / "gradient-lab").glob("wandb/offline-run-*my*"))


def test_torchrun_launches_of_the_script_make_one_run_each(
    workspace: dict[str, Path], tmp_path: Path
) -> None:
    project = workspace["project"]
    torchrun = workspace["bin"] / "torchrun"
    before: set[Path] = set(run_dirs(project))
    for launch in range(5):
        result = subprocess.run(
            [str(torchrun), "--standalone", "--nproc_per_node=2", SCRIPT.name, "--steps", "10"],
            cwd=project, env=foreign_env(tmp_path), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"launch {launch}: {result.stderr[-3000:]}"
        new = set(run_dirs(project)) - before
        assert len(new) == 1, f"launch {launch} made {len(new)} runs"
        before |= new
        (run_dir,) = new
        assert result.stdout.count("W&B run (offline)") == 1
        run = inspect(run_dir)
        assert run["config"]["distributed"] == {"world_size": 2, "backend": "gloo"}
        keys = {k for row in history(run_dir) for k in row}
        assert "grad_norm/conv" in keys and not [k for k in keys if "module." in k]
        weights = torch.load(project / "models" / "my-experiment.pt", weights_only=True)
        load_net().load_state_dict(weights)
        assert not list((project / "models").glob(".*partial"))
