"""The report on GitHub: in the job summary, and as one pull-request comment kept up to date.

    python -m sessions.report.github summary build/report/REPORT.md
    python -m sessions.report.github comment build/report/REPORT.md

The report job's steps run these with the runner's Python, outside any venv: standard library
only. Neither place can show the report's figures (files beside REPORT.md), so each image is
replaced by a line naming the `report` artifact the job uploads them in (linked when the step
gets the artifact's address in REPORT_ARTIFACT_URL).

`comment` finds its earlier comment by MARKER and edits it, so a pull request keeps one report.
A push has no pull request; a fork's or Dependabot's pull request gets a read-only token, so
both are skipped with a notice. Any other failure is one sentence and exit status 1.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MARKER = "<!-- gradient-lab run report -->"
ARTIFACT = "report"
# GitHub refuses a comment body over 65536 characters; counted here in UTF-16 code units,
# which is never fewer than characters. A step's summary may hold 1 MiB.
COMMENT_LIMIT = 65536
SUMMARY_LIMIT = 1024 * 1024
PER_PAGE = 100
API_VERSION = "2022-11-28"
USER_AGENT = "gradient-lab-report"
TIMEOUT_S = 30
PR_EVENTS = ("pull_request", "pull_request_target")
DEPENDABOT = "dependabot[bot]"

FENCE = re.compile(r"^\s*(```|~~~)")
TITLE = r'(?:\s+"[^"]*")?'
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)" + TITLE + r"\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc=\"(?P<target>[^\"]+)\"[^>]*>", re.IGNORECASE)
HTML_ALT = re.compile(r"\balt=\"(?P<alt>[^\"]*)\"", re.IGNORECASE)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)" + TITLE + r"\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:", re.IGNORECASE)


class GitHubError(Exception):
    """The step cannot do its job; the message is one sentence saying why and what to do."""


# --- the report, made fit for GitHub ----------------------------------------------------------


def is_local(target: str) -> bool:
    """A path beside REPORT.md (figures/loss.png), which GitHub cannot show."""
    return not (SCHEME.match(target) or target.startswith(("#", "/")))


def artifact_named(artifact_url: str | None) -> str:
    return f"[`{ARTIFACT}` artifact]({artifact_url})" if artifact_url else f"`{ARTIFACT}` artifact"


def for_github(markdown: str, artifact_url: str | None = None) -> str:
    """The report with each local image replaced by a line saying which artifact holds it, and
    each local link by its text and path; code blocks are left as they are."""
    artifact = artifact_named(artifact_url)

    def figure(alt: str, target: str) -> str:
        name = Path(target).name
        label = f"{alt.strip()} (`{name}`)" if alt.strip() else f"`{name}`"
        return f"_Figure {label}: in this run's {artifact}._"

    def image(match: re.Match[str]) -> str:
        target = match["target"]
        return figure(match["alt"], target) if is_local(target) else match[0]

    def html_image(match: re.Match[str]) -> str:
        target = match["target"]
        if not is_local(target):
            return match[0]
        alt = HTML_ALT.search(match[0])
        return figure(alt["alt"] if alt else "", target)

    def link(match: re.Match[str]) -> str:
        target = match["target"]
        if not is_local(target):
            return match[0]
        return f"{match['text']} (`{target}`, in this run's {artifact})"

    lines = markdown.splitlines(keepends=True)
    fence: str | None = None
    for index, line in enumerate(lines):
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening[1] == fence:
                fence = None
            continue
        if opening:
            fence = opening[1]
            continue
        lines[index] = LINK.sub(link, HTML_IMAGE.sub(html_image, IMAGE.sub(image, line)))
    return "".join(lines)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def cut(text: str, limit: int, size: Callable[[str], int], allowed: str, where: str) -> str:
    """`text` if it fits in `limit` (as `size` measures), else its first whole lines, an open
    code block closed, and a note saying where the whole report is."""
    if size(text) <= limit:
        return text
    note = (
        f"\n\n---\n_The report is cut here: it is longer than GitHub allows ({allowed}). "
        f"The whole report is in {where}._\n"
    )
    close = "```\n"
    budget = limit - size(note) - size(close)
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        if used + size(line) > budget:
            if not kept:  # one line longer than the limit: its first characters
                low, high = 0, len(line)
                while low < high:
                    middle = (low + high + 1) // 2
                    if size(line[:middle]) <= budget:
                        low = middle
                    else:
                        high = middle - 1
                kept.append(line[:low])
            break
        kept.append(line)
        used += size(line)
    body = "".join(kept)
    fences = sum(1 for line in kept if FENCE.match(line))
    if fences % 2:
        body = body if body.endswith("\n") else body + "\n"
        body += close
    return body + note


def read_report(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GitHubError(
            f"{path} does not exist: the report session writes it, run `nox -s report` first."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise GitHubError(f"{path} cannot be read as UTF-8 text ({error}).") from None


# --- summary ------------------------------------------------------------------------------------


def summary(report: Path, env: Mapping[str, str]) -> str:
    """Appends the report to the job summary; returns what to print."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        raise GitHubError(
            "GITHUB_STEP_SUMMARY is not set: `summary` writes the job summary of a GitHub "
            f"Actions step and runs only in one; outside a workflow, read {report} itself."
        )
    text = for_github(read_report(report), env.get("REPORT_ARTIFACT_URL"))
    path = Path(target)
    existing = path.stat().st_size if path.exists() else 0
    where = f"this run's {artifact_named(env.get('REPORT_ARTIFACT_URL'))}"
    text = cut(text, SUMMARY_LIMIT - existing - 1, utf8_bytes, "1 MiB in a job summary", where)
    with path.open("a", encoding="utf-8") as file:
        file.write(text if text.endswith("\n") else text + "\n")
    return f"Wrote {report} into the job summary."


# --- comment ------------------------------------------------------------------------------------


class Api:
    """GitHub's REST API with one token; every failure becomes a GitHubError sentence."""

    def __init__(self, base: str, token: str) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GitHubError(
                f"GITHUB_API_URL is {base!r}, not an http(s) address: leave it unset for "
                "github.com, or give your GitHub Enterprise server's API address."
            )
        self.base = base.rstrip("/")
        self.token = token
        # No file: or other handlers beyond http(s) are reached: the scheme is checked above.
        self.opener = urllib.request.build_opener()

    def call(self, method: str, path: str, what: str, body: object = None) -> Any:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=TIMEOUT_S) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise GitHubError(self.refusal(error, path, what)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GitHubError(
                f"Could not reach GitHub's API at {self.base} while {what} ({reason}): check "
                "GITHUB_API_URL and the runner's network, then re-run the job."
            ) from None
        try:
            return json.loads(payload) if payload else None
        except ValueError:
            raise GitHubError(
                f"GitHub's API at {self.base} answered {what} with something other than JSON: "
                "check that GITHUB_API_URL is the API's address (https://api.github.com)."
            ) from None

    def refusal(self, error: urllib.error.HTTPError, path: str, what: str) -> str:
        detail = ""
        try:
            message = json.loads(error.read() or b"{}").get("message")
        except (ValueError, AttributeError, OSError):
            message = None
        if isinstance(message, str) and message.strip():
            detail = ": " + " ".join(message.split())
        status = f"HTTP {error.code}{detail}"
        if error.code == 401:
            return (
                f"GitHub refused the token while {what} ({status}): give the step "
                "`GITHUB_TOKEN: ${{ github.token }}` in its env."
            )
        if error.code == 403:
            return (
                f"GitHub forbade {what} ({status}): the job needs `permissions: pull-requests: "
                "write`; a fork's or Dependabot's pull request only ever gets a read-only token."
            )
        if error.code == 404:
            return (
                f"GitHub found nothing at {path} while {what} ({status}): check "
                "GITHUB_REPOSITORY and the pull request's number; a token that cannot read "
                "the repository gets 404 too."
            )
        if error.code >= 500:
            return f"GitHub failed while {what} ({status}): it is GitHub's side, re-run the job."
        return (
            f"GitHub rejected {what} ({status}): the request does not fit GitHub's API version "
            f"{API_VERSION}; report this line to the maintainers of sessions/report/github.py."
        )


def required(env: Mapping[str, str], name: str, how: str) -> str:
    value = env.get(name, "")
    if not value:
        raise GitHubError(f"{name} is not set: {how}.")
    return value


def pull_request(env: Mapping[str, str]) -> dict[str, Any]:
    path = required(env, "GITHUB_EVENT_PATH", "GitHub Actions sets it in every workflow step")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GitHubError(
            f"The event file {path} (GITHUB_EVENT_PATH) cannot be read as JSON ({error})."
        ) from None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
        raise GitHubError(
            f"The event file {path} has no pull_request.number, though GITHUB_EVENT_NAME "
            "names a pull request event: GitHub writes both; check what set them."
        )
    return pr


def find_comment(api: Api, repo: str, number: int) -> dict[str, Any] | None:
    """The pull request's comment that starts with MARKER, looked for on every page."""
    page = 1
    while True:
        comments = api.call(
            "GET",
            f"/repos/{repo}/issues/{number}/comments?per_page={PER_PAGE}&page={page}",
            f"listing the comments of pull request #{number}",
        )
        if not isinstance(comments, list):
            raise GitHubError(
                f"GitHub answered the list of pull request #{number}'s comments with no list: "
                "check that GITHUB_API_URL is the API's address."
            )
        for found in comments:
            if isinstance(found, dict) and str(found.get("body") or "").startswith(MARKER):
                return found
        if len(comments) < PER_PAGE:
            return None
        page += 1


def comment(report: Path, env: Mapping[str, str]) -> str:
    """Posts or edits the pull request's one report comment; returns what to print."""
    event_name = required(
        env, "GITHUB_EVENT_NAME", "`comment` runs in a GitHub Actions step, which sets it"
    )
    artifact_url = env.get("REPORT_ARTIFACT_URL")
    elsewhere = f"the job summary and this run's {artifact_named(artifact_url)}"
    if event_name not in PR_EVENTS:
        return (
            f"No pull request to comment on: this run was started by a {event_name} event; "
            f"the report is in {elsewhere}."
        )
    pr = pull_request(env)
    number: int = pr["number"]
    repo = required(env, "GITHUB_REPOSITORY", "GitHub Actions sets it in every workflow step")
    head = (pr.get("head") or {}).get("repo") or {}
    head_repo = head.get("full_name") if isinstance(head, dict) else None
    skipped = f"::notice::The report is not posted on pull request #{number}:"
    if env.get("GITHUB_ACTOR") == DEPENDABOT:
        return (
            f"{skipped} Dependabot opened it, and GitHub gives the workflows of Dependabot's pull "
            f"requests a read-only token; the report is in {elsewhere}."
        )
    if head_repo != repo:
        source = f"the fork {head_repo}" if head_repo else "a fork that no longer exists"
        return (
            f"{skipped} it comes from {source}, and GitHub gives a fork's pull request a "
            f"read-only token; the report is in {elsewhere}."
        )
    token = required(
        env, "GITHUB_TOKEN", "give the step `GITHUB_TOKEN: ${{ github.token }}` in its env"
    )
    api = Api(env.get("GITHUB_API_URL") or "https://api.github.com", token)
    body = cut(
        f"{MARKER}\n{for_github(read_report(report), artifact_url)}",
        COMMENT_LIMIT,
        utf16_units,
        f"{COMMENT_LIMIT} characters in a comment",
        elsewhere,
    )
    found = find_comment(api, repo, number)
    if found is None:
        made = api.call(
            "POST",
            f"/repos/{repo}/issues/{number}/comments",
            f"posting the report on pull request #{number}",
            {"body": body},
        )
        return f"Posted the report on pull request #{number}: {(made or {}).get('html_url', '')}"
    edited = api.call(
        "PATCH",
        f"/repos/{repo}/issues/comments/{found['id']}",
        f"editing the report comment on pull request #{number}",
        {"body": body},
    )
    return f"Updated the report on pull request #{number}: {(edited or {}).get('html_url', '')}"


# --- command line -------------------------------------------------------------------------------

COMMANDS = {"summary": summary, "comment": comment}
USAGE = "usage: python -m sessions.report.github summary|comment REPORT.md"


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    if len(args) != 2 or args[0] not in COMMANDS:
        print(f"{USAGE} (got {' '.join(args) or 'nothing'})", file=sys.stderr)
        return 2
    token = env.get("GITHUB_TOKEN", "")

    def scrubbed(text: str) -> str:
        return text.replace(token, "***") if token else text

    try:
        said = COMMANDS[args[0]](Path(args[1]), env)
    except GitHubError as error:
        prefix = "::error::" if env.get("GITHUB_ACTIONS") == "true" else ""
        print(prefix + scrubbed(str(error)), file=sys.stderr)
        return 1
    print(scrubbed(said))
    return 0


if __name__ == "__main__":
    sys.exit(main())
