"""The library used from another repository, as the README tells a new user to: one install
command into a new venv, the README's lines in a small CNN script, plain runs and torchrun.

The venv is built once per module. Its third-party packages come from the venv running these
tests: those the project's dependencies bring (torch, wandb, ... and theirs, nothing else), put
on its path by a `.pth` file. So the README's command, still run verbatim into that venv,
installs only the project: a non-editable copy in the new venv's site-packages, which the
scripts import (checked), while the test venv is left as it was (checked). The lock is given to
pip through PIP_CONSTRAINT, the versions CI tested.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import venv
from importlib.metadata import Distribution, distribution, distributions
from pathlib import Path
from typing import Any

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT
from tests.support.jobs import Job
from tests.support.platforms import skip_on
from tests.support.wandb_runs import history, inspect, run_dirs, run_id

# A test starts up to three trainings one after another (the first test also builds the venv):
# give them time on a busy machine.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    # The workspace links the checkout in (Windows needs a privilege for that), and torchrun's
    # rendezvous store needs libuv, which torch's Windows builds lack.
    skip_on("win32", reason="symbolic link and torchrun rendezvous"),
]

SCRIPT = Path(__file__).parent / "foreign_project" / "train_cnn.py"
LM = Path(__file__).parent / "foreign_project" / "train_tiny_lm.py"


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


def site_packages(prefix: Path | None = None) -> list[Path]:
    """The folders packages install to: this venv's, or those of the venv at `prefix`."""
    where = None if prefix is None else {"base": str(prefix), "platbase": str(prefix)}
    paths = sysconfig.get_paths(vars=where)
    return list(dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib")))


def brought_by(requirements: list[str]) -> list[Distribution]:
    """The distributions installed here that pip would install for `requirements` into an empty
    venv: each requirement whose markers hold, then theirs (with the extras asked for)."""
    shared = {
        canonicalize_name(d.name): d for d in distributions(path=list(map(str, site_packages())))
    }
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(text), "") for text in requirements]
    while todo:
        requirement, extra = todo.pop()
        name = canonicalize_name(requirement.name)
        if name not in shared or (
            requirement.marker and not requirement.marker.evaluate({"extra": extra})
        ):
            continue
        for wanted in {"", *requirement.extras} - {w for n, w in seen if n == name}:
            seen.add((name, wanted))
            todo += [(Requirement(text), wanted) for text in shared[name].requires or []]
    return [shared[name] for name in sorted({name for name, _ in seen})]


def share_test_packages(env_dir: Path) -> None:
    """Gives the new venv, after its own site-packages, the packages this venv holds that the
    project's dependencies bring (theirs included): linked into one folder that a `.pth` file
    names. pip then finds torch, wandb and the rest installed, and the README's command adds
    only the project, which comes first on the path; an import the project does not declare
    still fails, as in an empty venv. A `.pth` line adds a folder, not the `.pth` files in it.
    The commands of torch and wandb (`torchrun`, `wandb`) go into the venv's bin as pip would
    write them had it installed those there: their entry points, started by the venv's Python."""
    folder = env_dir / "test-venv-packages"
    folder.mkdir()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dist in brought_by(project["dependencies"]):
        home = Path(str(dist.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in dist.files or []} - {"..", "__pycache__"}
        for top in tops - {link.name for link in folder.iterdir()}:
            (folder / top).symlink_to(home / top)
    (site_packages(env_dir)[0] / "test-venv-packages.pth").write_text(f"{folder}\n", "utf-8")
    for name in ("torch", "wandb"):
        for entry in distribution(name).entry_points.select(group="console_scripts"):
            script = bin_dir(env_dir) / entry.name
            script.write_text(f"#!{bin_dir(env_dir) / 'python'}\nimport sys\n"
                              f"from {entry.module} import {entry.attr}\n"
                              f"if __name__ == '__main__':\n    sys.exit({entry.attr}())\n",
                              encoding="utf-8")  # fmt: skip
            script.chmod(0o755)


def installed(folders: list[Path]) -> dict[Path, int]:
    """Each distribution installed in `folders`, with the time its metadata was written."""
    return {path: path.stat().st_mtime_ns
            for folder in folders for path in folder.glob("*.dist-info")}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, package_index: None) -> dict[str, Path]:
    """A folder holding `gradient-lab` (this checkout), `my-project` (a git repository with
    the CNN and language model scripts, committed) and `venv` (new, sharing this venv's
    packages, then the README's install command)."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "gradient-lab").symlink_to(ROOT, target_is_directory=True)
    project = root / "my-project"
    project.mkdir()
    for script in (SCRIPT, LM):
        shutil.copy(script, project / script.name)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "a CNN and an LM"]):
        subprocess.run([*git, *args], cwd=project, check=True, capture_output=True)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    share_test_packages(env_dir)
    python = bin_dir(env_dir) / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COVERAGE"))}
    env["PIP_CONSTRAINT"] = str(ROOT / "requirements.lock.txt")
    command = readme_install_command()
    assert command[:4] == ["python", "-m", "pip", "install"], command
    before = installed(site_packages())
    result = subprocess.run([str(python), *command[1:]], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert installed(site_packages()) == before, "pip changed the venv running the tests"
    where = "import gradient_lab; print(gradient_lab.__file__)"
    found = subprocess.run([str(python), "-c", where], cwd=project, env=env, capture_output=True,
                           text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(found).is_relative_to(site_packages(env_dir)[0]), found  # the installed copy
    return {"root": root, "project": project, "bin": bin_dir(env_dir)}


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
    """Two launches: the second one beside the first one's run and weights. The script's way
    with a frozen layer (frozen after DDP wraps the model, unfrozen at step 5) trains it in
    step on both ranks, so the check that stops a job whose ranks differ lets it through
    (test_distributed has the job that it stops)."""
    project = workspace["project"]
    torchrun = workspace["bin"] / "torchrun"
    before: set[Path] = set(run_dirs(project))
    net = load_net()
    for launch in range(2):
        result = subprocess.run(
            [str(torchrun), "--standalone", "--nproc_per_node=2", SCRIPT.name, "--steps", "10",
             "--unfreeze-stem-at", "5"],
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
        net.load_state_dict(weights)
        assert not list((project / "models").glob(".*partial"))


def run_lm(
    workspace: dict[str, Path], folder: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The language model script, started from `folder` beside the project (its runs and
    checkpoint go there; the project's own tree stays clean)."""
    folder.mkdir(exist_ok=True)
    return subprocess.run(
        [str(workspace["bin"] / "python"), str(workspace["project"] / LM.name), *args],
        cwd=folder, env=foreign_env(folder), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_weight_tied_language_model_is_measured_once_and_evaluated_at_its_own_steps(
    workspace: dict[str, Path],
) -> None:
    """Tied embeddings, AdamW with two groups, warm-up and cosine decay, clipping, bf16
    autocast; 55 steps logged every 10, evaluation every 25 (steps 24 and 49)."""
    folder = workspace["root"] / "tied"
    result = run_lm(workspace, folder, "--steps", "55")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    (run_dir,) = run_dirs(folder)
    run, rows = inspect(run_dir), history(run_dir)
    assert run["config"]["provenance"]["git_repository"] == "my-project"
    # Metrics at their own cadence, at exactly their steps; the last five steps are not lost.
    assert {r["_step"] for r in rows if "val/loss" in r} == {24, 49}
    assert {r["_step"] for r in rows if "loss" in r} == {9, 19, 29, 39, 49, 54}
    last = rows[-1]
    assert last["_step"] == 54 and {"lr/decay", "lr/no_decay", "grad_norm_before_clip"} <= set(last)
    assert last["lr/decay"] == pytest.approx(run["summary"]["lr/no_decay"])
    # One tensor, one series: the tied weight is tok_emb's, not also lm_head's.
    keys = {k for row in rows for k in row}
    assert "grad_norm/tok_emb" in keys and not [k for k in keys if "lm_head" in k]
    assert "gradients/tok_emb.weight.bins" in keys  # its histogram, once
    ratios = [r["grad_norm/first_to_last"] for r in rows if "grad_norm/first_to_last" in r]
    assert len(ratios) == 5 and all(r != pytest.approx(1.0) for r in ratios)
    assert run["summary"]["gradients/health"] in {"healthy", "vanishing", "exploding"}
    # The update ratio of each watch_every (20) steps' optimizer step, in that step's row.
    assert {r["_step"] for r in rows if "update_ratio/mlp.0" in r} == {19, 39}
    assert all(r["nonfinite/total"] == 0 for r in rows if "loss" in r and r["_step"] != 54)


@pytest.mark.parametrize(
    ("clip", "where"),
    [("0", "mlp.0"), ("1.0", "every layer")],
    ids=["unclipped", "clipped"],
)
def test_a_nan_gradient_is_named_with_its_step_and_layer(
    workspace: dict[str, Path], clip: str, where: str
) -> None:
    """NaN planted in three values of mlp.0's gradient at step 19. Clipped, it reaches every
    layer through the total norm, and the summary says so rather than name the first."""
    folder = workspace["root"] / f"nan-{clip}"
    result = run_lm(workspace, folder, "--steps", "30", "--nan-at", "19", "--clip", clip)
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(folder)
    summary = inspect(run_dir)["summary"]
    assert (
        summary["gradients/nonfinite/first_step"],
        summary["gradients/nonfinite/first_layer"],
    ) == (
        19,
        where,
    )
    assert summary["gradients/health"] == "nonfinite"
    row = next(r for r in history(run_dir) if r["_step"] == 19)
    assert row["nonfinite/mlp.0"] == (3 if clip == "0" else 544)  # mlp.0: 32x16 + 32 values
    assert row["nonfinite/total"] == sum(v for k, v in row.items() if k.startswith("nonfinite/")
                                         and k != "nonfinite/total")  # fmt: skip
    assert "grad_norm/first_to_last" not in row
    assert "WARNING: non-finite gradients at step 19" in result.stderr


def test_ctrl_c_to_the_process_group_stops_the_run_and_the_checkpoint_resumes_it(
    workspace: dict[str, Path],
) -> None:
    """Ctrl-C reaches the script and W&B's service process together, as in a terminal. The
    run closes stopped with exit code 130; `--resume` continues the same run to the end, with
    the losses an unbroken run has; the closing message's `wandb sync` names both folders."""
    folder = workspace["root"] / "stop"
    folder.mkdir()
    python, script = str(workspace["bin"] / "python"), str(workspace["project"] / LM.name)
    args = ["--steps", "100", "--seconds-per-step", "0.05"]
    job = Job([python, script, *args], cwd=folder, env=foreign_env(folder))
    job.wait_for("step 24: val/loss")
    job.signal_group(signal.SIGINT)
    code, output = job.finish()
    # Ended as Ctrl-C ends a Python script: a KeyboardInterrupt, exit status 130.
    assert code == 130, output
    assert output.rstrip().endswith("KeyboardInterrupt"), output
    (stopped,) = run_dirs(folder)
    line = next(line for line in output.splitlines() if line.startswith("Stopped by"))
    assert line.startswith("Stopped by Ctrl-C (SIGINT) at step ") and stopped.name in line
    assert "checkpoint saved to checkpoint.pt" in line
    run = inspect(stopped)
    assert run["summary"]["stopped_by"] == "Ctrl-C (SIGINT)"
    assert run["exit_code"] == 130, run
    at = run["summary"]["stopped_at_step"]
    assert {r["_step"] for r in history(stopped) if "loss" in r} >= {9, 19}
    resumed = run_lm(workspace, folder, *args, "--resume", "checkpoint.pt")
    assert resumed.returncode == 0, resumed.stderr
    first, second = run_dirs(folder)
    assert first == stopped and run_id(second) == run_id(stopped)
    later = history(second)
    assert min(r["_step"] for r in later) >= at and later[-1]["_step"] == 99
    # The same losses as a run that was never stopped: model, optimizer, schedule and random
    # state all came back.
    unbroken = run_lm(workspace, workspace["root"] / "unbroken", "--steps", "100")
    assert unbroken.returncode == 0, unbroken.stderr
    assert resumed.stdout.splitlines()[-3] == unbroken.stdout.splitlines()[-3]  # step 99's
    # The message names both folders in one command, and W&B's sync reads both.
    sync = shlex.split(resumed.stderr.split("upload them all with: ", 1)[1].splitlines()[0])
    assert sync[1:] == ["sync", str(first.relative_to(folder)), str(second.relative_to(folder))]
    dry = subprocess.run([*sync, "--dry-run"], cwd=folder, env=foreign_env(folder),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "Would sync 2 run(s)" in dry.stdout + dry.stderr
    assert all(f"{d.name}/run-" in dry.stdout + dry.stderr for d in (first, second))
