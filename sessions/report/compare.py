"""What changed between a git ref and the working tree, as DVC itself reports it.

The ref is resolved by git (default: the merge base with `main`; in GitHub Actions, the commit
the run's event names), stale train stages are retrained with `dvc repro` (DVC's lock decides
which), and the comparison is DVC's own `params diff`, `metrics diff` and `plots diff` output:
nothing here recomputes what DVC knows.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessions.data.dvc import DataError, Result, dvc, dvc_env, json_report
from sessions.data.session import DATA_DIR, ensure_training_data
from sessions.report import ReportError

DEFAULT_BASE = "main"
# Where the train stages keep what the report compares (dvc.yaml, `cache: false`, in git).
METRICS_DIR = "metrics"
PLOTS_DIR = "plots"
# `dvc status` entries that mean a stage's recorded results no longer follow from its inputs.
# Outputs alone (weights missing from a fresh clone) are not a reason to retrain: the metrics
# and plots the report reads are in git.
STALE_MARKS = ("changed command", "changed deps", "always changed")
# Training is bit-exact on one machine with one seed. On another CPU (its SIMD kernels, its
# reduction order, its thread count) the same code gives per-layer gradient norms that differ
# in the 7th significant digit. Numbers within this relative tolerance are the same result; a
# change to the code, data or parameters moves them by far more.
REL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Revision:
    """The commit the working tree is compared with."""

    name: str  # as given (`main`, `HEAD~1`), or how it was found
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:8]


@dataclass
class Comparison:
    """DVC's three diffs between `base` and the working tree, and which stages were retrained."""

    base: Revision
    retrained: list[str]
    notes: list[str] = field(default_factory=list)  # one sentence each, said in the report
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # "file:key" -> old/new
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # "file:key" -> old/new/diff
    # plots file -> "old" / "new" -> the rows DVC read (without its `rev` column)
    plots: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether any parameter, metric or per-step row differs (numbers beyond REL_TOLERANCE)."""
        moved = any(not same(v.get("old"), v.get("new")) for v in self.metrics.values())
        series = any(not same(sides.get("old"), sides.get("new")) for sides in self.plots.values())
        return bool(self.params) or moved or series


def same(old: Any, new: Any) -> bool:
    """Whether two values DVC read are one result: numbers within REL_TOLERANCE of each other,
    lists and mappings item by item, anything else equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same(old[key], new[key]) for key in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(map(same, old, new))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new)):
        both_nan = math.isnan(old) and math.isnan(new)
        return both_nan or math.isclose(old, new, rel_tol=REL_TOLERANCE)
    return bool(old == new)


# How `dvc plots diff` names the working tree's rows.
WORKSPACE = "workspace"


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, encoding="utf-8", check=False
    )


def resolve(root: Path, ref: str | None) -> Revision:
    """The commit to compare with: `ref`, or the merge base of HEAD with `main`."""
    if ref is None:
        base = next(
            (found for name in (DEFAULT_BASE, f"origin/{DEFAULT_BASE}")
             if (found := git(root, "merge-base", "HEAD", name)).returncode == 0),
            None,
        )  # fmt: skip
        if base is None:
            raise ReportError(
                f"There is no branch {DEFAULT_BASE} (nor origin/{DEFAULT_BASE}) to compare with: "
                "name the commit, e.g. `nox -s report -- HEAD~1`."
            )
        sha, name = base.stdout.strip(), f"the merge base with {DEFAULT_BASE}"
    else:
        found = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if found.returncode != 0:
            raise ReportError(
                f"{ref!r} is not a commit, branch or tag of this repository: name one that "
                "`git log` shows (e.g. main, HEAD~1, a commit id)."
            )
        sha, name = found.stdout.strip(), ref
    subject = git(root, "log", "-1", "--format=%s", sha).stdout.strip()
    return Revision(name, sha, subject)


def choose(
    root: Path, ref: str | None, env: Mapping[str, str], *, echo: Callable[[str], object] = print
) -> Revision:
    """`ref`; without one, `resolve`'s default, but in a GitHub Actions run (`env` says) the
    commit its event names. A pull request's checkout is GitHub's merge of it into its base
    branch: their merge base is the base as merged, even after the branch moved on. A push:
    what the branch pointed at before it. A commit the clone lacks (a new branch's push names
    forty zeros, a force push's is gone) gives HEAD^, with a notice."""
    event = env.get("GITHUB_EVENT_NAME") if env.get("GITHUB_ACTIONS") == "true" else None
    if ref is not None or event not in ("pull_request", "push"):
        return resolve(root, ref)
    if event == "pull_request":
        branch = env.get("GITHUB_BASE_REF") or DEFAULT_BASE
        sha = git(root, "merge-base", "HEAD", f"origin/{branch}").stdout.strip()
        if not sha:
            raise ReportError(
                f"This clone has no merge base of HEAD and origin/{branch}: check out the whole "
                "history (actions/checkout with `fetch-depth: 0`)."
            )
        name = f"the pull request's base ({branch})"
    else:
        path = env.get("GITHUB_EVENT_PATH", "")
        try:
            sha = str(json.loads(Path(path).read_text(encoding="utf-8")).get("before") or "")
        except (OSError, ValueError, AttributeError) as error:
            raise ReportError(
                f"GitHub's event file {path!r} (GITHUB_EVENT_PATH) has no JSON object ({error})."
            ) from None
        name = "the commit before this push"
    if not sha or git(root, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
        echo(
            f"::notice::{sha} is not a commit of this clone (a new branch or a force push): "
            "the report compares with HEAD^."
        )
        return resolve(root, "HEAD^")
    return Revision(name, sha, git(root, "log", "-1", "--format=%s", sha).stdout.strip())


def tracked_files(root: Path, sha: str, folder: str) -> list[str]:
    listed = git(root, "ls-tree", "-r", "--name-only", sha, "--", f"{folder}/")
    return [line for line in listed.stdout.splitlines() if line.endswith(".json")]


def check_files(root: Path, base: Revision) -> list[str]:
    """Both sides must have metrics, and the working tree every plots file the ref has: else
    one sentence. Returns the plots files the ref lacks (a new stage, or a ref from before the
    plots outputs): they are compared with nothing, and the report says so."""
    here = {
        folder: sorted(p.relative_to(root).as_posix() for p in (root / folder).glob("*.json"))
        for folder in (METRICS_DIR, PLOTS_DIR)
    }
    if not tracked_files(root, base.sha, METRICS_DIR):
        raise ReportError(
            f"{base.name} ({base.short}) has no {METRICS_DIR}/*.json: it predates the train "
            "stages' metrics, so there is nothing to compare with; name a later commit."
        )
    if not here[METRICS_DIR]:
        raise ReportError(
            f"The working tree has no {METRICS_DIR}/*.json: run `nox -s data -- dvc repro` "
            "to train the stages first."
        )
    there = set(tracked_files(root, base.sha, PLOTS_DIR))
    if missing := sorted(there - set(here[PLOTS_DIR])):
        raise ReportError(
            f"The working tree has no {missing[0]}, which {base.name} has: run "
            "`nox -s data -- dvc repro` to write it."
        )
    return [path for path in here[PLOTS_DIR] if path not in there]


def stale_stages(root: Path) -> list[str]:
    """Stages whose command, code, data or parameters changed since dvc.lock recorded them."""
    report = json_report(checked(dvc("status", "--json", root=root), "dvc status"))
    stale = []
    for stage, changes in report.items():
        marks = {mark for c in changes for mark in ([c] if isinstance(c, str) else c)}
        if marks & set(STALE_MARKS):
            stale.append(stage.split(":")[-1])
    return stale


def retrain(root: Path, stages: list[str], *, echo: Callable[[str], object] = print) -> None:
    """`dvc repro` of each stale stage, its output passed through; a failure is one sentence."""
    for stage in stages:
        echo(f"Retraining {stage} (its code, data or parameters changed): dvc repro {stage}")
        sys.stdout.flush()  # before DVC's own output, which goes straight to the terminal
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
            cwd=root, env=dvc_env(), check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ReportError(
                f"`dvc repro {stage}` failed: its output above says why; fix the stage and run "
                "the report again."
            )


def checked(result: Result, what: str) -> Result:
    if result.returncode != 0:
        lines = result.output.strip().splitlines() or ["(no output)"]
        raise ReportError(f"`{what}` failed: {lines[-1].removeprefix('ERROR: ')}")
    return result


def diff(root: Path, base: Revision, absent: Collection[str] = ()) -> Comparison:
    """DVC's params, metrics and plots diffs between `base` and the working tree; `absent`:
    plots files the ref does not have (DVC's error for them there is expected)."""
    comparison = Comparison(base=base, retrained=[])
    commands = {
        "dvc params diff": ("params", "diff", base.sha, "--json"),
        "dvc metrics diff": ("metrics", "diff", base.sha, "--all", "--json"),
        "dvc plots diff": ("plots", "diff", base.sha, "--json"),
    }
    # Three DVC processes at once: each spends most of its time starting up.
    with ThreadPoolExecutor(len(commands)) as pool:
        running = {what: pool.submit(dvc, *args, root=root) for what, args in commands.items()}
    params, metrics, plots = (json_report(checked(r.result(), w)) for w, r in running.items())
    comparison.params = _flatten(params)
    comparison.metrics = _flatten(metrics)
    errors = [e for e in plots.get("errors", [])
              if not (e.get("name") in absent and e.get("rev") != WORKSPACE)]  # fmt: skip
    if errors:
        first = errors[0]
        raise ReportError(
            f"DVC could not read {first.get('name')} at {first.get('rev')}: {first.get('msg')}."
        )
    for path, renders in plots.get("data", {}).items():
        sides: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for render in renders:
            for row in render.get("content", {}).get("data", {}).get("values", []):
                side = "new" if row.get("rev") == WORKSPACE else "old"
                sides[side].append({k: v for k, v in row.items() if k != "rev"})
        comparison.plots[path] = sides
    return comparison


def _flatten(report: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {f"{path}:{key}": value for path, keys in report.items() for key, value in keys.items()}


def compare(
    root: Path,
    ref: str | None,
    env: Mapping[str, str],
    *,
    echo: Callable[[str], object] = print,
) -> Comparison:
    """Choose the ref (`choose`), retrain stale stages, and collect DVC's diffs."""
    base = choose(root, ref, env, echo=echo)
    absent = check_files(root, base)
    if not (root / DATA_DIR).exists():  # a fresh clone: DVC would call the data dep deleted
        try:
            ensure_training_data(root)
        except DataError as error:
            raise ReportError(str(error)) from error
    stages = stale_stages(root)
    if stages:
        retrain(root, stages, echo=echo)
    comparison = diff(root, base, absent)
    comparison.retrained = stages
    comparison.notes = [
        f"{base.name} ({base.short}) has no {path} (a new stage, or a commit from before the "
        "per-step plots): its figures show the working tree alone."
        for path in absent
    ]
    return comparison
