"""How long a warm `nox -s security` takes, against its two scanners run bare.

The baseline is what the gate cannot avoid: one bandit scan and one safety check of the same
inputs, run directly from the session's venv. The ratio is the gate's own overhead (nox start-up,
the SARIF scan, the lock export, report checks). Needs a warm venv (`nox -s security` once)
and, to stay offline, SAFETY_DB_DIR pointing at a local database.

    SAFETY_DB_DIR=<folder> python benchmarks/security_session.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessions import security  # noqa: E402 - needs the repository on sys.path first
from sessions.project import LOCK  # noqa: E402

ROUNDS = 2


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    venv_bin = ROOT / ".nox" / "security" / ("Scripts" if os.name == "nt" else "bin")
    bandit, safety = (shutil.which(name, path=str(venv_bin)) for name in ("bandit", "safety"))
    if bandit is None or safety is None:
        sys.exit("Run `nox -s security` once first: its venv has the scanners.")
    database = os.environ.get(security.DB_ENV)
    targets, severity = security.bandit_settings(ROOT / "pyproject.toml")
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(security.lock_requirements(LOCK)), encoding="utf-8")
        bandit_cmd = [bandit, "-q", "-c", "pyproject.toml", "-r", *targets, "--severity-level",
                      severity, "-f", "json", "-o", str(Path(tmp) / "b.json")]  # fmt: skip
        safety_cmd = [
            safety,
            "check",
            "-r",
            str(requirements),
            "--save-json",
            str(Path(tmp) / "s.json"),
        ]
        safety_env = None
        if database:
            safety_cmd[2:2] = ["--db", database]
            safety_env = {**os.environ, **security.offline_env()}
        bare = min(timed(bandit_cmd) + timed(safety_cmd, safety_env) for _ in range(ROUNDS))
    session = min(
        timed([sys.executable, "-m", "nox", "-R", "-s", "security"]) for _ in range(ROUNDS)
    )
    where = database or "online"
    print(f"database: {where}; best of {ROUNDS} rounds")
    print(f"bare scanners (bandit + safety): {bare:.1f} s")
    print(f"warm `nox -R -s security`:       {session:.1f} s")
    print(f"ratio session / bare scanners:   {session / bare:.2f}x")


if __name__ == "__main__":
    main()
