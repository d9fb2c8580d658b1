"""The platform rules, held on Linux: each side that Windows or macOS would take, simulated
here (no such machine runs here), and the guard that keeps POSIX-only calls in their branches.

Simulated: the separator in tools' output (os.sep), the `zipfile` host byte (sys.platform),
Windows' Popen options, and its read-only and held files (test_files.py). mypy checks each
platform's side of every `sys.platform` test (test_lint.py).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc_data.hashfile.build import build
from dvc_data.hashfile.db.local import LocalHashFileDB
from dvc_objects.fs.local import LocalFileSystem

from gradient_lab import synthetic_data
from sessions import platform_rules
from sessions.files import tool_path
from sessions.project import ROOT
from sessions.security.secrets import secret_findings
from tests.conftest import without_coverage
from tests.support import data_cli, platforms


@pytest.mark.parametrize("system", ["linux", "win32", "darwin"])
def test_generated_data_are_the_bytes_data_dvc_records_on_every_system(
    system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zipfile records the OS that wrote an archive (0 on Windows): DVC would see other bytes.
    monkeypatch.setattr(sys, "platform", system)
    synthetic_data.generate(tmp_path / "data")
    # DVC's own hash of the folder (what `dvc add` would record), by its library, here.
    fs = LocalFileSystem()
    odb = LocalHashFileDB(fs, str(tmp_path / "cache"))
    _, _, built = build(odb, str(tmp_path / "data"), fs, "md5", dry_run=True)
    recorded = yaml.safe_load((ROOT / "data.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert built.hash_info.value == recorded


@pytest.mark.parametrize(
    ("printed", "expected"),
    [("data\\", "data"), ("models\\demo.pt", "models/demo.pt"), (".\\experiments\\login.py",
     "experiments/login.py")],
)  # fmt: skip
def test_tool_paths_printed_with_windows_separators_read_as_the_repository_path(
    printed: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tool_path(printed.replace("\\", "/")) == expected
    monkeypatch.setattr(os, "sep", "\\")
    assert tool_path(printed) == expected


def test_secret_findings_name_files_by_repository_path_under_windows_separators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # detect-secrets keys its results by os.path.relpath: `experiments\\login.py` on Windows.
    monkeypatch.setattr(os, "sep", "\\")
    report = {"results": {"experiments\\login.py": [{"type": "Secret Keyword",
              "hashed_secret": "ab", "line_number": 3}]}}  # fmt: skip
    (finding,) = secret_findings(report)
    assert finding.path == "experiments/login.py"


def test_a_push_in_its_own_process_group_starts_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Windows, Popen raises ValueError for preexec_fn and ignores start_new_session.
    started: list[dict[str, Any]] = []

    def popen(args: list[str], **options: Any) -> None:
        started.append(options)

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(subprocess, "Popen", popen)
    data_cli.start_push(tmp_path, {}, "-j", "1")
    (options,) = started
    assert not set(options) & set(platform_rules.POSIX_KEYWORDS), options
    assert options["creationflags"] & 0x200  # CREATE_NEW_PROCESS_GROUP


def test_skips_as_another_system_only_on_linux_and_only_adding_skips() -> None:
    assert platforms.skipping_as({}, "linux") == "linux"
    assert platforms.skipping_as({platforms.SKIP_AS: "win32"}, "linux") == "win32"
    assert platforms.skipping_as({platforms.SKIP_AS: "linux"}, "win32") == "win32"
    assert platforms.skipping_as({platforms.SKIP_AS: "linux"}, "darwin") == "darwin"


def test_every_platform_skip_goes_through_skip_on() -> None:
    # So that TESTS_SKIP_AS counts and times the other legs' tests here, skip for skip.
    platform_skip = re.compile(r"skipif\(\s*(?:not\s+)?(?:sys\.platform|os\.name|Path\(./proc)")
    raw = [
        path.name
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if platform_skip.search(path.read_text(encoding="utf-8"))
    ]
    assert raw == []


# --- the guard in lint ------------------------------------------------------------------------

PLANTED = {
    "os.killpg(pid, 2)": "os.killpg is POSIX-only",
    "os.setsid()": "os.setsid is POSIX-only",
    "uid = os.getuid()": "os.getuid is POSIX-only",
    "signal.signal(signal.SIGHUP, handler)": "signal.SIGHUP is POSIX-only",
    "import fcntl": "fcntl is a POSIX-only module",
    "from resource import getrusage": "resource is a POSIX-only module",
    "subprocess.run(['x'], preexec_fn=f)": "preexec_fn= is POSIX-only",
    "Popen(['x'], start_new_session=True)": "start_new_session= is POSIX-only",
    "subprocess.run(['x'], user='nobody')": "user= is POSIX-only",
}


@pytest.mark.parametrize("line", sorted(PLANTED))
def test_guard_names_a_posix_only_call_outside_a_platform_branch(line: str) -> None:
    ((number, why),) = platform_rules.violations(ast.parse(f"x = 1\n{line}\n"))
    assert number == 2
    assert why.startswith(PLANTED[line])


@pytest.mark.parametrize(
    "branch",
    [
        'if sys.platform != "win32":\n    {line}\nelse:\n    pass',
        'if sys.platform == "win32":\n    pass\nelse:\n    {line}',
        'if os.name == "posix":\n    {line}',
        'if hasattr(os, "killpg"):\n    {line}',
    ],
)
def test_guard_allows_a_posix_only_call_in_a_platform_branch(branch: str) -> None:
    for line in PLANTED:
        source = branch.format(
            line=line, expr=line.split("=")[-1].strip() if "import" not in line else "0"
        )
        assert list(platform_rules.violations(ast.parse(source))) == [], source


def test_guard_allows_a_posix_only_call_in_a_conditional_expression() -> None:
    source = 'uid = os.getuid() if sys.platform != "win32" else None\n'
    assert list(platform_rules.violations(ast.parse(source))) == []


def test_guard_leaves_portable_calls_alone() -> None:
    source = (
        "os.kill(pid, signal.SIGTERM)\nsignal.signal(signal.SIGINT, h)\n"
        "getuid = getattr(os, 'getuid', None)\nsubprocess.run(['x'], cwd='.', env={})\n"
        "make(user='x')\n"
    )
    assert list(platform_rules.violations(ast.parse(source))) == []


def test_the_code_ci_runs_everywhere_passes_the_guard() -> None:
    assert platform_rules.problems(ROOT) == []


def test_guard_reports_file_and_line_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "stop.py").write_text(
        "import os\n\nos.killpg(1, 9)\n", encoding="utf-8"
    )
    assert platform_rules.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "sessions/stop.py:3: os.killpg is POSIX-only "
        "(Windows has no POSIX process groups or sessions)"
    )
    assert "1 POSIX-only use(s) outside a platform branch" in err


@pytest.mark.slow
@platforms.skip_on("win32", "darwin", reason="TESTS_SKIP_AS simulates the others on Linux")
def test_tests_skip_as_applies_the_windows_skips_to_a_real_run(child_env: dict[str, str]) -> None:
    # As the README runs it (through pytest's own door): the tests of a script in another
    # repository link the checkout in and launch torchrun, and are skipped, every one, on Windows.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--no-cov", "-n", "0",
               "-q", "-rs", "tests/test_foreign_project.py"]  # fmt: skip
    env = without_coverage(child_env) | {platforms.SKIP_AS: "win32"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " skipped" in summary and "passed" not in summary, result.stdout
    assert "symbolic link and torchrun rendezvous (on win32)" in result.stdout
