"""How a session's virtual environment is chosen and filled.

Every session installs one or more dependency groups from pyproject.toml, constrained by the
lock, so all venvs, the image and the security scan agree on exact versions; sessions that
train or import the library also install the project itself, editable. A stamp in the venv
records what was installed; a reused venv whose groups and lock are unchanged skips the
installer entirely, which keeps a warm `nox -s tests` close to plain pytest.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import LOCK, PYPROJECT, ROOT

if TYPE_CHECKING:
    import nox

STAMP_NAME = ".installed-groups"

# Environment variables that tell uv where a CPU build of torch lives. Without one of them uv
# would resolve torch from PyPI and download a CUDA build of several GB.
UV_TORCH_HINTS = ("UV_FIND_LINKS", "UV_TORCH_BACKEND", "UV_INDEX", "UV_EXTRA_INDEX_URL")


def torch_venv_backend(environ: Mapping[str, str] = os.environ) -> str:
    """The venv backend for sessions that install torch.

    uv when it has been told where CPU torch wheels are, else virtualenv/pip (pip follows its
    own configuration, e.g. a local wheel folder).
    """
    if any(environ.get(name) for name in UV_TORCH_HINTS):
        return "uv|virtualenv"
    return "virtualenv"


def group_requirements(*groups: str, pyproject: Path = PYPROJECT) -> list[str]:
    """The requirements of the named dependency groups, include-groups expanded."""
    import nox.project  # noqa: PLC0415 - keep the module importable without nox for tools

    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    # Groups that include the same group would name its requirements twice.
    return list(dict.fromkeys(nox.project.dependency_groups(data, *groups)))


def project_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """What the library needs at run time: `[project].dependencies`."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return list(data["project"].get("dependencies", []))


def install_digest(requirements: list[str], lock: Path = LOCK) -> str:
    """A fingerprint of what an install would put into a venv."""
    digest = hashlib.sha256()
    digest.update("\n".join(sorted(requirements)).encode())
    digest.update(b"\0")
    digest.update(lock.read_bytes())
    return digest.hexdigest()


def install_groups(
    session: nox.Session, *groups: str, project: bool = False, lock: Path | None = None
) -> None:
    """Install dependency groups into the session's venv, pinned by the lock (the project's
    unless another is given); with `project`, the project itself too (editable, so the
    library's source is what runs).

    With no venv (`nox --no-venv`, e.g. inside the project image) the current environment is
    used as it is.
    """
    if session.venv_backend == "none":
        session.log("No venv: using the current environment's packages.")
        return
    lock = lock or LOCK
    if not lock.is_file():
        session.error(f"The lock {lock.name} is missing: run `nox -s lock` to create it.")
    requirements = group_requirements(*groups)
    editable = ["--editable", str(ROOT)] if project else []
    stamp = Path(session.virtualenv.location) / STAMP_NAME
    # The project's own dependencies count too: editing them reinstalls.
    digest = install_digest(
        [*requirements, *editable, *(project_requirements() if project else [])], lock
    )
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == digest:
        session.log(f"Dependency groups {', '.join(groups)} are up to date in this venv.")
        return
    session.install("--constraint", str(lock), *requirements, *editable)
    stamp.write_text(digest, encoding="utf-8")
