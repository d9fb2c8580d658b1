"""How long a warm `nox -s security` takes, against its scanners run bare one after another.

The baseline is what the gate cannot avoid: one bandit scan, one safety check and one
detect-secrets scan of the same inputs, run directly from the session's venv. The ratio is the
gate's own cost or saving (nox start-up, the SARIF scan and the nosec audit, the lock export,
report checks, against running the scanners side by side). Needs a warm venv
(`nox -s security` once) and, to stay offline, SAFETY_DB_DIR pointing at a local database.

    SAFETY_DB_DIR=<folder> python benchmarks/security_session.py [--compare OTHER_CHECKOUT]

`--compare` also times a warm `nox -R -s security` in another checkout (e.g. an older commit,
its venv warmed the same way), in the same run, and prints this gate's time against it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessions.security import bandit as security_bandit  # noqa: E402
from sessions.security import safety as security_safety  # noqa: E402
from sessions.security import secrets as security_secrets  # noqa: E402
from sessions.security import session as security  # noqa: E402

ROUNDS = 3


def timed(command: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def bare_commands(tmp: Path) -> list[tuple[list[str], dict[str, str] | None]]:
    venv_bin = ROOT / ".nox" / "security" / ("Scripts" if os.name == "nt" else "bin")
    tools = {name: shutil.which(name, path=str(venv_bin)) for name in ("bandit", "safety")}
    tools["detect-secrets"] = shutil.which("detect-secrets", path=str(venv_bin))
    git = shutil.which("git")
    if None in tools.values() or git is None:
        sys.exit("Run `nox -s security` once first: its venv has the scanners.")
    bandit, safety, detect = (str(tool) for tool in tools.values())
    targets, _ = security_bandit.bandit_settings(ROOT / "pyproject.toml")
    pins = {
        pin for lock in security.SCANNED_LOCKS for pin in security_safety.lock_requirements(lock)
    }
    requirements = tmp / "requirements.txt"
    requirements.write_text("\n".join(sorted(pins)), encoding="utf-8")
    files = security_secrets.scanned_files(Path(git), ROOT)
    bandit_cmd = [bandit, "-q", "-c", "pyproject.toml", "--ignore-nosec", "-r", *targets,
                  "-f", "json", "-o", str(tmp / "b.json")]  # fmt: skip
    safety_cmd = [safety, "check", "-r", str(requirements), "--save-json", str(tmp / "s.json")]
    safety_env = None
    if database := os.environ.get(security.DB_ENV):
        safety_cmd[2:2] = ["--db", database]
        safety_env = {**os.environ, **security_safety.offline_env()}
    secrets_cmd = [detect, "scan", "-n", "--disable-filter", security_secrets.ALLOWLIST_FILTER]
    return [(bandit_cmd, None), (safety_cmd, safety_env), ([*secrets_cmd, *files], None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another checkout with a warm security venv")
    args = parser.parse_args()
    gate = [sys.executable, "-m", "nox", "-R", "-s", "security"]
    bare, session, other = [], [], []
    # Rounds interleave the measurements, so a machine whose load drifts skews none of them.
    with tempfile.TemporaryDirectory() as tmp:
        commands = bare_commands(Path(tmp))
        for _ in range(ROUNDS):
            bare.append(sum(timed(command, env=env) for command, env in commands))
            session.append(timed(gate))
            if args.compare:
                other.append(timed(gate, cwd=args.compare.resolve()))
    print(f"database: {os.environ.get(security.DB_ENV) or 'online'}; best of {ROUNDS} rounds")
    print(f"bare scanners (bandit + safety + detect-secrets): {min(bare):.1f} s")
    print(f"warm `nox -R -s security`:                        {min(session):.1f} s")
    print(f"ratio session / bare scanners:                    {min(session) / min(bare):.2f}x")
    if args.compare:
        print(f"warm `nox -R -s security` in {args.compare}: {min(other):.1f} s")
        print(f"ratio this gate / that gate:                      {min(session) / min(other):.2f}x")


if __name__ == "__main__":
    main()
