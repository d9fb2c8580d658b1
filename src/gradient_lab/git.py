"""The one git helper: ask git about the repository a file lives in."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(*args: str, cwd: Path) -> str | None:
    """git's output for fixed arguments run in `cwd`; None without git or outside a repository."""
    try:
        result = subprocess.run(  # fixed git arguments, no shell  # nosec B603 B607
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
