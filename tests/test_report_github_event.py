"""The commit a GitHub Actions run's report compares with, as the run's event names it
(`sessions.report.compare.choose`), in a clone made as the workflow's checkout makes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sessions.report.compare import choose
from tests.support.project_copy import COMMITTER, git


def run_git(repo: Path, *args: str) -> str:
    return git("-c", "commit.gpgsign=false", *args, cwd=repo, env=os.environ | COMMITTER)


def commit(repo: Path, message: str) -> str:
    run_git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.slow
def test_a_run_compares_with_the_base_as_merged_or_the_commit_before(tmp_path: Path) -> None:
    # The repository on GitHub: main at B, a pull request's branch off B, then main moves on
    # (C), GitHub merges the pull request into C for its run, and main moves on again (D)
    # before the job clones it with fetch-depth 0.
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git("init", "-q", "-b", "main", cwd=upstream)
    commit(upstream, "A")
    before = commit(upstream, "B")
    git("checkout", "-q", "-b", "feature", cwd=upstream)
    commit(upstream, "F")
    git("checkout", "-q", "main", cwd=upstream)
    base_as_merged = commit(upstream, "C")
    clone = tmp_path / "clone"
    git("clone", "-q", str(upstream), str(clone), cwd=tmp_path)
    git("checkout", "-q", "--detach", base_as_merged, cwd=clone)
    run_git(clone, "merge", "-q", "--no-ff", "origin/feature", "-m", "Merge F into C")
    commit(upstream, "D")
    git("fetch", "-q", "origin", cwd=clone)

    event = tmp_path / "event.json"
    cases = [  # event, its `before`, the commit compared with, its name in the report, noticed
        ("pull_request", None, base_as_merged, "the pull request's base (main)", False),
        ("push", before, before, "the commit before this push", False),
        ("push", "0" * 40, base_as_merged, "HEAD^", True),
        ("workflow_dispatch", None, base_as_merged, "the merge base with main", False),
    ]
    for name, pushed, sha, called, noticed in cases:
        event.write_text(json.dumps({"before": pushed} if pushed else {}), encoding="utf-8")
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": name,
            "GITHUB_BASE_REF": "main",
            "GITHUB_EVENT_PATH": str(event),
        }
        said: list[str] = []
        base = choose(clone, None, env, echo=said.append)
        assert (base.sha, base.name) == (sha, called), name
        notice = (
            f"::notice::{pushed} is not a commit of this clone (a new branch or a force push): "
            "the report compares with HEAD^."
        )
        assert said == ([notice] if noticed else []), name

    # A REF given wins; outside GitHub Actions the event is not read.
    assert choose(clone, before, env | {"GITHUB_EVENT_NAME": "push"}).sha == before
    assert choose(clone, None, {"GITHUB_EVENT_NAME": "push"}).name == "the merge base with main"
