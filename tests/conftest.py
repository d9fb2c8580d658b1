"""Shared fixtures: paths, a clean environment for child processes, copies of the project.

The tiers (markers `slow` and `docker`), the check that unmarked tests stay inside this
process, and the hermetic check live in tests/support/tiers.py; how a parallel run orders files and
shares the cores, in tests/support/schedule.py. Both are registered here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import schedule, tiers
from tests.support.optional import missing
from tests.support.project_copy import build_template, copy_of

ROOT = tiers.ROOT


def pytest_configure(config: pytest.Config) -> None:
    # The children the tests start keep the bytecode they compile (in the copies' and this
    # checkout's __pycache__, ignored by git, DVC and Docker), as Python does by default: a
    # machine-wide PYTHONDONTWRITEBYTECODE would make each of several hundred children compile
    # this project's modules again (about 0.8 CPU-seconds for a training run).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if config.pluginmanager.register(tiers, "tiers") is None:  # blocked with -p no:tiers
        raise pytest.UsageError(
            "tests/support/tiers.py cannot be switched off: it checks every run."
        )
    config.pluginmanager.register(schedule.Schedule(), "schedule")


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read what tools print as text. CI's FORCE_COLOR (ci.yml's env, which .ci/run
    applies too) colours the log for people; children started by a test must print plainly, as
    they do for a user whose output is not a terminal. (NO_COLOR is no way out: nox refuses
    to start with both set.)"""
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture(autouse=True)
def children_measure_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that a test starts in another folder (the checkout's parent, a temporary one)
    inherits the run's coverage settings; with `source = ["."]` it would list every file under
    that folder, under names the report cannot find (`<checkout>/noxfile.py`). Every child
    measures what it runs of this checkout instead, as measured_in says; a test whose child
    works in a copy gives it measured_in(copy, ...)."""
    if "COVERAGE_PROCESS_CONFIG" in os.environ:
        settings = measured_in(ROOT, os.environ)["COVERAGE_PROCESS_CONFIG"]
        monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", settings)


@pytest.fixture(scope="session")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skips a test that installs packages from an index when pip cannot fetch from one here
    (no network to the index, or a TLS-intercepting proxy whose CA this machine lacks): asked
    for real, by a fresh venv's pip (as the tests' installs use) downloading a small wheel."""
    root = tmp_path_factory.mktemp("index-probe")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = root / "venv" / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    probe = [str(python), "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--dest", str(root / "wheels"), "hatchling>=1.27"]  # fmt: skip
    result = subprocess.run(probe, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        lines = (result.stderr + result.stdout).strip().splitlines() or ["(no output)"]
        why = next((line for line in lines if "Could not fetch URL" in line), lines[-1])
        missing(f"pip cannot fetch packages from its index here: {why.strip()}")


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as a fresh clone of the working tree has it, built once per process."""
    return build_template(tmp_path_factory.mktemp("project-template") / "project")


@pytest.fixture
def project_copy(project_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the project (a git repository) to plant faults in or run
    nested nox sessions in: tmp_path / "project"."""
    return copy_of(project_template, tmp_path / "project")


def measured_in(project: Path, env: Mapping[str, str]) -> dict[str, str]:
    """env for a child that works in `project` (this checkout, or a copy of it, as its working
    directory), measured by this run's coverage. Coverage's subprocess patch hands children
    the run's settings in COVERAGE_PROCESS_CONFIG; here they measure the files under
    `project`, stored relative to it (`relative_files`), so a copy's files count as the
    checkout's. `include` rather than `source`: a child does not list the files it never ran
    (a tool that runs in another folder would list them under paths the report cannot find);
    the gate's own process does that."""
    env = without_coverage(env) | {k: v for k, v in os.environ.items() if k.startswith("COVERAGE")}
    if "COVERAGE_PROCESS_CONFIG" in env:
        from coverage.config import CoverageConfig

        settings = CoverageConfig.deserialize(env["COVERAGE_PROCESS_CONFIG"])
        settings.source = None
        settings.run_include = [str(project.resolve() / "*")]
        env["COVERAGE_PROCESS_CONFIG"] = settings.serialize()
    return env


def without_coverage(env: Mapping[str, str]) -> dict[str, str]:
    """For a child that measures itself (a nested pytest-cov run) or runs code outside the
    project (DVC's throw-away repositories, another project), whose files the gate cannot
    report; or a training launch that runs no line other tests do not measure: under
    coverage's tracer, importing torch alone takes 2 to 3 CPU-seconds more."""
    return {k: v for k, v in env.items() if not k.startswith("COVERAGE")}


@pytest.fixture
def child_env() -> Iterator[dict[str, str]]:
    """An environment for a nested nox run in this checkout, measured by this run's coverage;
    in a copy, measured_in(copy, child_env); a nested pytest run, without_coverage(child_env)."""
    env = measured_in(ROOT, os.environ)
    # Nested `nox --no-venv` finds pytest and coverage on PATH: this interpreter's scripts.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    yield env


@pytest.fixture
def nox_cmd() -> list[str]:
    return [sys.executable, "-m", "nox"]


@dataclass
class FakeVirtualenv:
    location: str


@dataclass
class RecordingSession:
    """Stands in for nox.Session in unit tests: records what the session would run."""

    location: Path
    posargs: list[str] = field(default_factory=list)
    venv_backend: str = "virtualenv"
    name: str = "fake"
    installs: list[tuple[str, ...]] = field(default_factory=list)
    runs: list[tuple[str, ...]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def virtualenv(self) -> FakeVirtualenv:
        return FakeVirtualenv(str(self.location))

    def install(self, *args: str, **_: object) -> None:
        self.installs.append(args)

    def run(self, *args: str, **_: object) -> None:
        self.runs.append(args)

    def log(self, message: str, *_: object) -> None:
        self.logs.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str) -> None:
        raise RuntimeError(message)


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh offline W&B environment in a temporary folder; torn down after the test."""
    import wandb

    runs = tmp_path / "runs"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(runs))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # Artifacts are staged under the W&B data/cache folders: keep them out of $HOME.
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    wandb.teardown()
    yield runs
    wandb.teardown()


@pytest.fixture(scope="session")
def dvc_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Git + DVC repositories built once per run: "empty", and "tracked" (data/ pushed)."""
    from tests.support.dvc_repo import build_repo

    return {
        kind: build_repo(tmp_path_factory.mktemp(f"dvc-{kind}"), tracked=kind == "tracked")
        for kind in ("empty", "tracked")
    }
