"""Where things live in this repository: the one place that knows the layout."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock.txt"
# The security scanners' own lock: their venv must install whatever the main lock pins.
SCANNER_LOCK = ROOT / "security-scanners.lock.txt"
# Everything CI uploads (JUnit, coverage, scan reports) goes here; git ignores it.
REPORTS = ROOT / "reports"
# Built documents and other generated files; git ignores it.
BUILD = ROOT / "build"
# The session summary that `export-summary` publishes (Rule 4).
SUMMARY = ROOT / "SESSION_SUMMARY.md"
# The CI matrix's runners and the `sys.platform` each reports: lint type-checks for each, and
# the coverage job combines one data file from each (reports/.coverage.<platform>).
CI_PLATFORMS = {"ubuntu-latest": "linux", "windows-latest": "win32", "macos-latest": "darwin"}
# The Python every session runs on; `tests` also runs on the newer ones requires-python admits
# and PyTorch publishes wheels for (`nox -s tests-3.13` where that Python is installed).
PYTHON = "3.11"
TESTS_PYTHONS = [PYTHON, "3.12", "3.13", "3.14"]
