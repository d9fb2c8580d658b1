"""How long an online run takes to fail, to the one sentence, next to an offline run's whole life.

Runs `experiments/tiny_regression.py --steps 10` three times as a user would start it: offline
(the baseline: start, train, finish), online without any API key, and online with a key and a
server that does not answer (a closed port on loopback as WANDB_BASE_URL, the library's default
init timeout). Prints seconds from start to exit, the ratio to the offline run, and the sentence;
first, the floor under all three: a Python that only imports torch, wandb and gradient_lab.

    python -m benchmarks.online_failures
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def timed(scratch: Path, **env: str) -> tuple[float, int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    base |= {"HOME": str(scratch / "home"), "NETRC": str(scratch / "no-netrc"),
             "WANDB_CONFIG_DIR": str(scratch / "cfg"), "WANDB_DATA_DIR": str(scratch / "data"),
             "WANDB_DIR": str(scratch / "runs")}  # fmt: skip
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "experiments.tiny_regression", "--steps", "10",
         "--models-dir", str(scratch / "models")],
        cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return time.perf_counter() - began, result.returncode, result.stderr.strip()


def import_floor() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, wandb, gradient_lab"], check=True)
    return time.perf_counter() - began


def main() -> int:
    floor = import_floor()
    print(f"{'imports only (the floor)':<28} exit 0  {floor:6.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        cases = {
            "offline (baseline)": {"WANDB_MODE": "offline"},
            "online, no API key": {"WANDB_MODE": "online"},
            "online, server unreachable": {"WANDB_MODE": "online", "WANDB_API_KEY": "0" * 40,
                                           "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}"},
        }  # fmt: skip
        results = {name: timed(scratch, **env) for name, env in cases.items()}
    baseline = results["offline (baseline)"][0]
    for name, (seconds, code, stderr) in results.items():
        print(f"{name:<28} exit {code}  {seconds:6.1f} s  ({seconds / baseline:.2f}x offline, "
              f"{seconds - floor:.1f} s after the imports)")  # fmt: skip
        if stderr:
            print(f"    {stderr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
