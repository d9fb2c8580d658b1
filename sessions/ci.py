"""What CI runs, derived from the noxfile's tags so the workflow never lists sessions by hand.

`python -m sessions.ci` prints GitHub step outputs, one JSON list of session names per tag:

    ci=["tests", "security", "lint"]        gates, on Linux and Windows
    ci-linux=["export-summary", ...]        tasks that run on Linux only
"""

from __future__ import annotations

import json
import subprocess
import sys

from sessions.project import ROOT

# Tag -> where CI runs the sessions that carry it.
CI_TAGS = {"ci": "Linux and Windows", "ci-linux": "Linux"}


def sessions_tagged(tag: str) -> list[str]:
    """Names of the sessions with this tag, in noxfile order, as `nox --list --json` says."""
    listing = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "--tags", tag],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [entry["name"] for entry in json.loads(listing)]


def main() -> None:
    for tag in CI_TAGS:
        print(f"{tag}={json.dumps(sessions_tagged(tag))}")


if __name__ == "__main__":
    main()
