"""The report on GitHub (sessions/report/github.py): the job summary, and one pull-request comment
kept up to date, run as the workflow's steps run them (`python -m sessions.report.github`)
against a real HTTP server on loopback that answers GitHub's comment endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sessions.report import github
from tests.conftest import ROOT
from tests.support.github_api import FakeGitHub

REPO = "octo-org/gradient-lab"
NUMBER = 7
TOKEN = "test-token-that-must-never-be-printed"  # a made-up token
REPORT = """\
# Run report

| metric | main | this change |
|---|---|---|
| loss | 0.52 | 0.48 |

![Loss curves, old vs new](figures/loss.png)

The same as a vector image: [SVG](figures/loss.svg); see [the docs](https://example.org/docs).

```text
![not a figure](figures/inside-code.png)
```
"""


def write_report(folder: Path, text: str = REPORT) -> Path:
    report = folder / "build" / "report" / "REPORT.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text, encoding="utf-8")
    return report


def event(folder: Path, head_repo: str | None = REPO, number: int = NUMBER) -> Path:
    path = folder / "event.json"
    head = {"repo": {"full_name": head_repo}} if head_repo else {"repo": None}
    path.write_text(json.dumps({"pull_request": {"number": number, "head": head}}), "utf-8")
    return path


def bare_env() -> dict[str, str]:
    """This environment without what a GitHub runner sets (the tests may run on one)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GITHUB_", "RUNNER_")) and name != "REPORT_ARTIFACT_URL"
    }


def pr_env(api: FakeGitHub, event_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_ACTOR": "a-researcher",
        **extra,
    }


def run_cli(command: str, report: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m sessions.report.github COMMAND REPORT`, as the workflow's step runs it."""
    child = bare_env() | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = subprocess.run(
        [sys.executable, "-m", "sessions.report.github", command, str(report)],
        cwd=ROOT, env=child | dict(env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with FakeGitHub(REPO, TOKEN).serving() as server:
        yield server


# --- the report, made fit for GitHub (in this process) ---------------------------------------


def test_local_figures_become_a_line_naming_the_artifact() -> None:
    text = github.for_github(REPORT)
    assert "](figures/loss.png)" not in text
    assert "_Figure Loss curves, old vs new (`loss.png`): in this run's `report` artifact._" in text
    assert "SVG (`figures/loss.svg`, in this run's `report` artifact)" in text
    assert "[the docs](https://example.org/docs)" in text  # a web link still works there
    assert "![not a figure](figures/inside-code.png)" in text  # code is shown as it is
    linked = github.for_github('<img src="figures/norms.png" alt="Norms">', "https://x/a/1")
    assert (
        linked == "_Figure Norms (`norms.png`): in this run's [`report` artifact](https://x/a/1)._"
    )
    remote = "![badge](https://img.shields.io/badge/x-y-green)"
    assert github.for_github(remote) == remote


def test_a_long_report_is_cut_at_a_line_with_a_note_and_its_code_block_closed() -> None:
    text = "# Report\n```text\n" + "a line of a long log, é 😀\n" * 5000 + "```\n"
    body = github.cut(text, 65536, github.utf16_units, "65536 characters", "the artifact")
    assert github.utf16_units(body) <= 65536 < github.utf16_units(text)
    assert body.endswith("_The report is cut here: it is longer than GitHub allows (65536 "
                         "characters). The whole report is in the artifact._\n")  # fmt: skip
    kept = body.split("\n\n---\n")[0]
    assert kept.endswith("😀\n```\n") and kept.count("```") == 2
    one_line = "x" * 70000
    assert 65530 < len(github.cut(one_line, 65536, len, "65536", "the artifact")) <= 65536
    assert github.cut("short\n", 65536, len, "65536", "the artifact") == "short\n"


def test_summary_outside_github_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write_report(tmp_path)
    assert github.main(["summary", str(report)], {}) == 1
    error = capsys.readouterr().err
    assert error.startswith("GITHUB_STEP_SUMMARY is not set:") and error.count("\n") == 1
    assert str(report) in error


def test_a_missing_report_or_a_wrong_command_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_file = tmp_path / "summary.md"
    missing = tmp_path / "REPORT.md"
    assert github.main(["summary", str(missing)], {"GITHUB_STEP_SUMMARY": str(summary_file)}) == 1
    assert capsys.readouterr().err == (
        f"{missing} does not exist: the report session writes it, run `nox -s report` first.\n"
    )
    assert github.main(["publish", str(missing)], {}) == 2
    assert capsys.readouterr().err.startswith("usage: python -m sessions.report.github summary|")


# --- at the user's door: the command, a real server ---------------------------------------------


@pytest.mark.slow
def test_summary_appends_the_report_without_local_images(tmp_path: Path) -> None:
    report = write_report(tmp_path)
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("## An earlier step's summary\n", encoding="utf-8")
    result = run_cli("summary", report, {"GITHUB_STEP_SUMMARY": str(summary_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Wrote {report} into the job summary.\n"
    written = summary_file.read_text(encoding="utf-8")
    assert written.startswith("## An earlier step's summary\n# Run report\n")
    assert "| loss | 0.52 | 0.48 |" in written
    assert "](figures/loss.png)" not in written
    assert "`loss.png`): in this run's `report` artifact." in written


@pytest.mark.slow
def test_summary_without_the_variable_fails_with_one_sentence(tmp_path: Path) -> None:
    result = run_cli("summary", write_report(tmp_path), {})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("GITHUB_STEP_SUMMARY is not set: `summary` writes the job")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_the_first_run_posts_one_comment_and_the_next_edits_it(
    tmp_path: Path, api: FakeGitHub
) -> None:
    api.add(NUMBER, "Looks good to me.")
    report = write_report(tmp_path)
    env = pr_env(api, event(tmp_path), REPORT_ARTIFACT_URL="https://github.com/x/artifacts/9")
    first = run_cli("comment", report, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"Posted the report on pull request #{NUMBER}: https://")
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"/repos/{REPO}/issues/{NUMBER}/comments?per_page=100&page=1"),
        ("POST", f"/repos/{REPO}/issues/{NUMBER}/comments"),
    ]
    for request in api.requests:
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.headers["user-agent"]
    posted = api.comments[NUMBER][-1]
    assert posted["body"].startswith(f"{github.MARKER}\n# Run report\n")
    assert "in this run's [`report` artifact](https://github.com/x/artifacts/9)" in posted["body"]
    assert "](figures/loss" not in posted["body"]

    write_report(tmp_path, REPORT.replace("0.48", "0.47"))
    api.requests.clear()
    second = run_cli("comment", report, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"Updated the report on pull request #{NUMBER}: https://")
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"/repos/{REPO}/issues/{NUMBER}/comments?per_page=100&page=1"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{posted['id']}"),
    ]
    bodies = [c["body"] for c in api.comments[NUMBER]]
    assert len(bodies) == 2 and sum(github.MARKER in b for b in bodies) == 1
    assert "| loss | 0.52 | 0.47 |" in bodies[1]


@pytest.mark.slow
def test_the_comment_on_the_second_page_is_found(tmp_path: Path, api: FakeGitHub) -> None:
    for index in range(150):
        if index == 130:
            marked = api.add(NUMBER, f"{github.MARKER}\nan older report", "github-actions[bot]")
        else:
            api.add(NUMBER, f"comment {index} (quoting the marker text: gradient-lab run report)")
    result = run_cli("comment", write_report(tmp_path), pr_env(api, event(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"/repos/{REPO}/issues/{NUMBER}/comments?per_page=100&page=1"),
        ("GET", f"/repos/{REPO}/issues/{NUMBER}/comments?per_page=100&page=2"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{marked['id']}"),
    ]
    assert len(api.comments[NUMBER]) == 150
    assert "# Run report" in marked["body"]


@pytest.mark.slow
def test_a_report_too_long_for_a_comment_is_cut_with_a_note(
    tmp_path: Path, api: FakeGitHub
) -> None:
    report = write_report(tmp_path, REPORT + "| a row of a long table | 1 | 2 |\n" * 3000)
    result = run_cli("comment", report, pr_env(api, event(tmp_path)))
    assert result.returncode == 0, result.stderr  # the server refuses a body over 65536 (422)
    body = api.comments[NUMBER][0]["body"]
    assert len(body) <= 65536
    assert "_The report is cut here: it is longer than GitHub allows (65536 characters" in body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head_repo", "actor", "why"),
    [
        ("someone/gradient-lab", "someone", "it comes from the fork someone/gradient-lab, and "),
        (None, "someone", "it comes from a fork that no longer exists"),
        (REPO, "dependabot[bot]", "Dependabot opened it, and GitHub gives the workflows of"),
    ],
)
def test_a_fork_or_dependabot_is_skipped_with_a_notice_and_no_request(
    tmp_path: Path, api: FakeGitHub, head_repo: str | None, actor: str, why: str
) -> None:
    env = pr_env(api, event(tmp_path, head_repo), GITHUB_ACTOR=actor)
    result = run_cli("comment", write_report(tmp_path), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"::notice::The report is not posted on pull request #{NUMBER}")
    assert why in result.stdout and "read-only token" in result.stdout
    assert result.stdout.count("\n") == 1
    assert api.requests == []


@pytest.mark.slow
def test_a_push_has_no_pull_request_to_comment_on(tmp_path: Path, api: FakeGitHub) -> None:
    env = pr_env(api, tmp_path / "no-such-event.json", GITHUB_EVENT_NAME="push")
    result = run_cli("comment", write_report(tmp_path), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "No pull request to comment on: this run was started by a push event; the report is "
        "in the job summary and this run's `report` artifact.\n"
    )
    assert api.requests == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "sentence"),
    [
        (403, "GitHub forbade listing the comments of pull request #7 (HTTP 403: Resource not "
              "accessible by integration): the job needs `permissions: pull-requests: write`"),
        (401, "GitHub refused the token while listing the comments of pull request #7 (HTTP 401"),
        (404, f"GitHub found nothing at /repos/{REPO}/issues/7/comments?per_page=100&page=1 "),
        (502, "GitHub failed while listing the comments of pull request #7 (HTTP 502: Resource "
              "not accessible by integration): it is GitHub's side, re-run the job."),
    ],
)  # fmt: skip
def test_an_http_error_is_one_sentence_and_exit_1(
    tmp_path: Path, api: FakeGitHub, status: int, sentence: str
) -> None:
    api.fail = status
    result = run_cli("comment", write_report(tmp_path), pr_env(api, event(tmp_path)))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"::error::{sentence}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert len(api.requests) == 1


@pytest.mark.slow
def test_a_wrong_token_and_an_unreachable_api_are_one_sentence(
    tmp_path: Path, api: FakeGitHub
) -> None:
    report = write_report(tmp_path)
    wrong = run_cli("comment", report, pr_env(api, event(tmp_path), GITHUB_TOKEN="ghs_other"))
    assert wrong.returncode == 1
    assert "(HTTP 401: Bad credentials): give the step `GITHUB_TOKEN: ${{ github.token }}`" in (
        wrong.stderr
    )
    with FakeGitHub(REPO, TOKEN).serving() as gone:
        closed = gone.url
    result = run_cli("comment", report, pr_env(api, event(tmp_path), GITHUB_API_URL=closed))
    assert result.returncode == 1
    assert result.stderr.startswith(f"::error::Could not reach GitHub's API at {closed} while ")
    assert result.stderr.rstrip("\n").endswith(
        "check GITHUB_API_URL and the runner's network, then re-run the job."
    )
    assert result.stderr.count("\n") == 1
    no_token = {**pr_env(api, event(tmp_path)), "GITHUB_TOKEN": ""}
    missing = run_cli("comment", report, no_token)
    assert missing.returncode == 1
    assert missing.stderr == (
        "::error::GITHUB_TOKEN is not set: give the step `GITHUB_TOKEN: ${{ github.token }}` in "
        "its env.\n"
    )
