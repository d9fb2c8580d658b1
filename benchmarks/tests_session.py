"""What the full test gate costs: two commits side by side, cold and warm, in one run.

Each commit is cloned fresh from this repository. In each clone `nox -s tests -- -m "not
docker"` (the gate as CI's Linux leg runs it) runs twice: cold (the first run: venv created,
packages installed, no schedule record) and warm (the same clone again). The runs alternate
between the commits (baseline cold, new cold, baseline warm, new warm), so both see the same
machine. For each run it prints wall seconds and CPU-seconds: user + system time of nox and
every process below it. On Linux this process adopts the orphans of that tree (a child
subreaper) and reaps them, so a daemon a test leaves behind is counted too. CPU-seconds stay
comparable on a busy machine; wall time does not. Per test file, the CPU-seconds and wall
time come from the gate's own record (tests/support/schedule.py: each file's process time and
the children it waited for).

    python benchmarks/tests_session.py --baseline REF [--new REF]   (--new: HEAD)
    python benchmarks/tests_session.py --tiers [--runs N]   the fast tier against the gate

The clones take the commits, not uncommitted changes. The environment is this one's: run it
as CI runs the gate (uv told where CPU torch lives, SAFETY_DB_DIR for the security tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project's modules are not on the path

from benchmarks.process_kinds import ProcessKinds  # noqa: E402

NOX = [sys.executable, "-m", "nox"]
GATE = ["-s", "tests", "--", "-m", "not docker"]
RECORD = Path(".pytest_cache", "v", "gradient-lab", "seconds-per-file")
JUNIT = Path("reports", f"junit-{sys.platform}.xml")
LONG_TEST_S = 60.0

FAST_AIM_S = 20.0
PARALLEL_AIM = 0.5
CPU_AIM = 0.5  # the new gate's CPU-seconds against the baseline's
TOTAL = re.compile(r"^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # FORCE_COLOR, as CI sets it
OUTCOMES = re.compile(r"=+ (.*\b(?:passed|failed)\b.*) in [\d.]+s")


# --- process-tree accounting ----------------------------------------------------------------


def adopt_orphans() -> bool:
    """Linux: make this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER),
    so their CPU time reaches RUSAGE_CHILDREN once reaped. Elsewhere: False."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # noqa: PLC0415 - Linux only

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


def children_cpu() -> float:
    import resource  # noqa: PLC0415 - POSIX only; the benchmark says so on Windows

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def adopted() -> list[int]:
    """This process's children that it did not start itself: adopted orphans (Linux /proc)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.append(int(stat.parent.name))
    return found


def reap_orphans(grace_s: float = 20.0) -> int:
    """Wait for adopted orphans to end (then stop those still running); how many were stopped."""
    deadline, stopped, stop_with = time.monotonic() + grace_s, set(), signal.SIGTERM
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return len(stopped)
        if pid:
            continue
        if time.monotonic() > deadline:
            for orphan in adopted():
                os.kill(orphan, stop_with)
                stopped.add(orphan)
            deadline, stop_with = time.monotonic() + 5.0, signal.SIGKILL
        time.sleep(0.1)


@dataclass
class Run:
    wall: float
    cpu: float
    outcome: str
    coverage: str
    files: dict[str, list[float]] = field(default_factory=dict)  # file: [wall, tests, cpu]
    long_tests: list[tuple[float, str]] = field(default_factory=list)  # over LONG_TEST_S
    kinds: list[tuple[str, float, int]] = field(default_factory=list)  # label, CPU-s, processes
    orphans_stopped: int = 0


def run_gate(clone: Path, log: Path) -> Run:
    """One `nox -s tests` in the clone: its wall time, the CPU time of its whole process tree,
    its outcome line and coverage total, and the gate's per-file record."""
    cpu, start = children_cpu(), time.perf_counter()
    with log.open("w", encoding="utf-8") as out, ProcessKinds() as kinds:
        result = subprocess.run([*NOX, *GATE], cwd=clone, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        stopped = reap_orphans()
    text = ANSI.sub("", log.read_text(encoding="utf-8", errors="replace"))
    if result.returncode != 0:
        sys.exit(f"the gate failed in {clone} (log: {log}):\n{text[-4000:]}")
    found_total, found_outcome = TOTAL.findall(text), OUTCOMES.findall(text)
    record = clone / RECORD
    return Run(
        wall=wall,
        cpu=children_cpu() - cpu,
        outcome=found_outcome[-1] if found_outcome else "no summary line",
        coverage=f"{found_total[-1]} %" if found_total else "not reported",
        files=json.loads(record.read_text(encoding="utf-8")) if record.exists() else {},
        long_tests=long_tests(clone / JUNIT),
        kinds=kinds.by_kind(),
        orphans_stopped=stopped,
    )


def long_tests(junit: Path) -> list[tuple[float, str]]:
    """Tests that took over LONG_TEST_S wall (set-up included), longest first: the JUnit report."""
    if not junit.exists():
        return []
    found = [(float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}")
             for case in ET.parse(junit).getroot().iter("testcase")]  # fmt: skip
    return sorted((entry for entry in found if entry[0] > LONG_TEST_S), reverse=True)


# --- two commits side by side ----------------------------------------------------------------


def clone_at(ref: str, folder: Path) -> str:
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=folder, check=True)
    head = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    return head[:72]


def file_table(title: str, base: Run, new: Run) -> None:
    print(f"\nper file, {title} (CPU-seconds and wall from the gate's record), baseline -> new")
    print(f"  {'file':40s} {'tests':>9s} {'CPU-s':>15s} {'wall s':>15s}")
    names = sorted(base.files.keys() | new.files.keys(),
                   key=lambda name: -(base.files.get(name) or [0, 0, 0])[2])  # fmt: skip
    for name in names:
        old, now = base.files.get(name), new.files.get(name)
        tests = f"{old[1] if old else '-':>4} {now[1] if now else '-':>4}"
        cpu = f"{old[2] if old else 0:6.1f} {now[2] if now else 0:6.1f}"
        wall = f"{old[0] if old else 0:6.1f} {now[0] if now else 0:6.1f}"
        print(f"  {name.removeprefix('tests/'):40s} {tests:>9s}  {cpu:>14s}  {wall:>14s}")


def kinds_table(base: Run, new: Run, rows: int = 20) -> None:
    """The kinds of process that took the most CPU in the warm runs (sampled: a floor)."""
    print("\nper kind of process, warm (sampled from /proc: a floor), baseline -> new")
    print(f"  {'process':44s} {'count':>11s} {'CPU-s':>15s}")
    old = {name: (cpu, count) for name, cpu, count in base.kinds}
    now = {name: (cpu, count) for name, cpu, count in new.kinds}
    for name in sorted(old.keys() | now.keys(), key=lambda n: -(old.get(n) or (0, 0))[0])[:rows]:
        (a, m), (b, n) = old.get(name, (0.0, 0)), now.get(name, (0.0, 0))
        print(f"  {name:44s} {m:5d} {n:5d}  {a:6.1f} {b:6.1f}")


def ctrl_c_back() -> None:
    """Started as a background job (`... &`), this process and the gates it runs would inherit
    an ignored SIGINT, which the interrupt tests rightly fail on: Ctrl-C must reach them."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def compare(baseline: str, new: str, keep: Path | None) -> None:
    if not hasattr(os, "getloadavg"):
        sys.exit("CPU-seconds of a process tree are measured with POSIX accounting: run on Linux.")
    ctrl_c_back()
    subreaper = adopt_orphans()
    work = Path(keep or tempfile.mkdtemp(prefix="gate-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    refs = {"baseline": baseline, "new": new}
    heads = {name: clone_at(ref, work / name) for name, ref in refs.items()}
    print(f"cores: {os.cpu_count()}  load before: {os.getloadavg()[0]:.2f}  "
          f"orphans counted: {'yes (child subreaper)' if subreaper else 'no'}")  # fmt: skip
    for name, head in heads.items():
        print(f"  {name:8s} {refs[name]} = {head}")
    runs: dict[tuple[str, str], Run] = {}
    for phase in ("cold", "warm"):
        for name in refs:
            run = run_gate(work / name, work / f"{name}-{phase}.log")
            runs[name, phase] = run
            print(f"  {phase} {name:8s} {run.wall:7.1f} s wall {run.cpu:8.1f} CPU-s  "
                  f"{run.outcome}, coverage {run.coverage}  load {os.getloadavg()[0]:.2f}"
                  + (f"  ({run.orphans_stopped} leftover processes stopped)"
                     if run.orphans_stopped else ""), flush=True)  # fmt: skip
    print(f"\n{'':6s} {'':8s} {'wall s':>8s} {'CPU-s':>8s} {'CPU new/baseline':>18s}")
    for phase in ("cold", "warm"):
        base, now = runs["baseline", phase], runs["new", phase]
        for name, run in (("baseline", base), ("new", now)):
            ratio = f"{now.cpu / base.cpu:17.2f}x" if name == "new" else ""
            print(f"{phase:6s} {name:8s} {run.wall:8.1f} {run.cpu:8.1f} {ratio:>18s}")
    warm = runs["new", "warm"].cpu / runs["baseline", "warm"].cpu
    cold = runs["new", "cold"].cpu / runs["baseline", "cold"].cpu
    verdict = "met" if max(warm, cold) <= CPU_AIM else "NOT met"
    print(f"aim: new CPU-seconds <= {CPU_AIM}x the baseline's, cold and warm: {verdict}")
    for name in refs:
        over = runs[name, "warm"].long_tests
        print(f"{name} warm: {len(over)} test(s) over {LONG_TEST_S:.0f} s wall"
              + "".join(f"\n  {seconds:6.1f} s  {test}" for seconds, test in over))  # fmt: skip
    kinds_table(runs["baseline", "warm"], runs["new", "warm"])
    file_table("warm", runs["baseline", "warm"], runs["new", "warm"])
    file_table("cold", runs["baseline", "cold"], runs["new", "cold"])
    print(f"\nlogs: {work}")


# --- the fast tier against the gate (one commit: this checkout) ------------------------------


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds a command took and its output; a failing command stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return seconds, result.stdout


def tiers(runs: int) -> None:
    """Warm `nox -s tests-fast`, `nox -s tests` and `nox -s tests -- -n 0`, interleaved."""
    timed([*NOX, "-s", "tests-fast", "--", "--collect-only", "-q", "--no-cov"], ROOT)
    timed([*NOX, "-s", "tests", "--", "--collect-only", "-q", "--no-cov", "-n", "0"], ROOT)
    commands = {
        "fast tier   nox -s tests-fast": [*NOX, "-s", "tests-fast"],
        "full gate   nox -s tests": [*NOX, "-s", "tests"],
        "serial gate nox -s tests -- -n 0": [*NOX, "-s", "tests", "--", "-n", "0"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            took, _ = timed(command, ROOT)
            seconds[name].append(took)
            print(f"  {name:34s} {took:7.1f} s", flush=True)
    fast, full, serial = (statistics.median(values) for values in seconds.values())
    print(f"fast tier                         : {fast:7.1f} s   (aim <= {FAST_AIM_S:.0f} s)")
    print(f"full gate / serial gate           : {full / serial:7.2f}x  (aim <= {PARALLEL_AIM}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="the commit to compare against (e.g. main)")
    parser.add_argument("--new", default="HEAD", help="the commit measured against it")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (logs)")
    parser.add_argument("--tiers", action="store_true", help="fast tier against the gate")
    parser.add_argument("--runs", type=int, default=1, help="with --tiers: runs of each")
    args = parser.parse_args()
    if args.tiers:
        tiers(args.runs)
    elif args.baseline:
        compare(args.baseline, args.new, args.keep)
    else:
        parser.error("give --baseline REF (two commits side by side) or --tiers")


if __name__ == "__main__":
    main()
