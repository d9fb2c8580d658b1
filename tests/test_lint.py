"""The `lint` gate fails on each kind of planted fault and names it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sessions.project import CI_PLATFORMS
from tests.conftest import measured_in

PLATFORMS = ("linux", "win32", "darwin")
# An ANSI escape sequence that sets a text style or colour.
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")

CLEAN = '''"""A clean module."""


def double(x: int) -> int:
    return 2 * x
'''

FAULTS = {
    "unused-import": ('"""Planted."""\n\nimport os\n\n\ndef f() -> int:\n    return 1\n', "F401"),
    "bad-format": (
        '"""Planted."""\n\n\ndef f( x:int)->int:\n    return x\n',
        "would be reformatted",
    ),
    "wrong-return": ('"""Planted."""\n\n\ndef f() -> int:\n    return "one"\n', "return-value"),
    # The platform rules, which only Windows' and macOS' CI legs would otherwise find.
    "posix-only-call": (
        '"""Planted."""\n\nimport os\n\n\ndef f() -> None:\n    os.killpg(0, 2)\n',
        "os.killpg is POSIX-only",
    ),
    "windows-unreachable": (
        '"""Planted."""\n\nimport sys\n\n\ndef f() -> int:\n'
        '    if not sys.platform.startswith("linux"):\n        return 0\n    return 1\n',
        "Statement is unreachable",
    ),
}


@pytest.fixture(scope="module")
def mypy_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for this file's copies: the first run checks torch's and the standard
    library's types for each platform, the others recheck the copy's own files (by content:
    a copy's paths differ, its hashes do not). It lives in pytest's cache (`.pytest_cache/`),
    so the next run of these tests starts warm; mypy's incremental checks rerun whatever
    changed, the planted files included. Without pytest's cache (`-p no:cacheprovider`), a
    temporary folder."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("mypy-cache")
    return Path(cache.mkdir("lint-mypy-cache"))


def lint_project(project: Path, module: str, nox_cmd: list[str], env: dict[str, str]) -> str:
    # In sessions/: every check covers it, and the platform rules are about the code CI runs.
    (project / "sessions" / "planted.py").write_text(module, encoding="utf-8")
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "lint"],
        cwd=project, env=measured_in(project, env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # Under CI=true the tools colour their findings: what is read is the text.
    output = ANSI_STYLE.sub("", result.stdout + result.stderr)
    return output if result.returncode == 0 else f"FAILED\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_fault_fails_and_is_named(
    fault: str, project_copy: Path, nox_cmd: list[str], child_env: dict[str, str], mypy_cache: Path
) -> None:
    module, marker = FAULTS[fault]
    output = lint_project(
        project_copy, module, nox_cmd, child_env | {"MYPY_CACHE_DIR": str(mypy_cache)}
    )
    assert output.startswith("FAILED"), output
    assert marker in output and "planted.py" in output


@pytest.mark.slow
def test_clean_code_passes(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str], mypy_cache: Path
) -> None:
    output = lint_project(
        project_copy, CLEAN, nox_cmd, child_env | {"MYPY_CACHE_DIR": str(mypy_cache)}
    )
    assert not output.startswith("FAILED"), output
    assert "nox > actionlint" in output and "nox > zizmor" in output, output
    for platform in PLATFORMS:
        assert f"mypy --platform={platform}" in output, output


# A checkout pinned to its commit, as every action in the workflows is.
PINNED_CHECKOUT = re.compile(r"uses: actions/checkout@[0-9a-f]{40} # v[\d.]+")


@pytest.mark.slow
def test_action_pinned_to_a_tag_fails_and_is_named(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str], mypy_cache: Path
) -> None:
    workflow = project_copy / ".github" / "workflows" / "ci.yml"
    text = workflow.read_text(encoding="utf-8")
    pinned = PINNED_CHECKOUT.search(text)
    assert pinned, f"no pinned actions/checkout in {workflow}"
    workflow.write_text(text.replace(pinned[0], "uses: actions/checkout@v4", 1), encoding="utf-8")
    line = text.count("\n", 0, pinned.start()) + 1
    output = lint_project(
        project_copy, CLEAN, nox_cmd, child_env | {"MYPY_CACHE_DIR": str(mypy_cache)}
    )
    assert output.startswith("FAILED"), output
    assert "error[unpinned-uses]: unpinned action reference" in output, output
    assert f"ci.yml:{line}:" in output and "actions/checkout@v4" in output, output


@pytest.mark.slow
def test_unquoted_variable_in_a_workflow_script_fails_shellcheck(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str], mypy_cache: Path
) -> None:
    # actionlint runs shellcheck on `run:` scripts only when it finds one: this proves it does.
    planted = project_copy / ".github" / "workflows" / "planted.yml"
    planted.write_text(
        "on: push\npermissions: {}\njobs:\n  planted:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo $RUNNER_TEMP\n",
        encoding="utf-8",
    )
    output = lint_project(
        project_copy, CLEAN, nox_cmd, child_env | {"MYPY_CACHE_DIR": str(mypy_cache)}
    )
    assert output.startswith("FAILED"), output
    assert "planted.yml:7:" in output and "SC2086" in output, output


def test_lint_checks_each_system_the_ci_matrix_runs_on() -> None:
    assert sorted(CI_PLATFORMS.values()) == sorted(PLATFORMS)


def test_fix_applies_ruff_fixes_and_formatting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MYPY_CACHE_DIR", raising=False)
    from sessions import lint
    from tests.conftest import RecordingSession

    session = RecordingSession(tmp_path, venv_backend="none", posargs=["--fix"])
    lint.run(session)  # type: ignore[arg-type]
    mypy = [("mypy", f"--platform={p}", f"--cache-dir={Path('.mypy_cache', p)}") for p in PLATFORMS]
    assert session.runs == [
        ("ruff", "check", "--fix", "."),
        ("ruff", "format", "."),
        ("python", "-m", "sessions.platform_rules"),
        ("zizmor", "--offline", "--quiet", ".github"),
        ("shellcheck", "--version"),
        ("actionlint", "-oneline"),
        *mypy,
    ]
