"""Output files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sessions.summary import ExportError


def check_folder(folder: Path) -> None:
    """Fail early, creating nothing, when `folder` cannot become the output folder.

    An existing folder must take a new file; otherwise the nearest existing parent must be a
    folder (the output folder itself is created only once the outputs are ready).
    """
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"The output path {folder} is a file, not a folder (pass --out DIR).")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        raise ExportError(f"Cannot create the output folder {folder}: {folder.anchor} is missing.")
    if not existing.is_dir():
        raise ExportError(
            f"Cannot create the output folder {folder}: {existing} is a file, not a folder."
        )
    if existing == folder:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
            os.close(fd)
            Path(probe).unlink()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ExportError(f"Cannot write into the output folder {folder}: {reason}.") from error


@contextlib.contextmanager
def created_folder(folder: Path) -> Iterator[Path]:
    """Create `folder` (and missing parents) for the block; remove what it made if it fails."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ExportError(f"Cannot create the output folder {folder}: {reason}.") from error
    try:
        yield folder
    except BaseException:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def default_file_mode() -> int:
    """The mode a newly created file gets here (0o666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def staged(targets: list[Path]) -> Iterator[list[Path]]:
    """Temporary files beside `targets`; they replace the targets only if the block succeeds.

    Every output is written to its own temporary file in the target's folder (so the rename is
    atomic), and the renames happen only after all of them were written: a failure leaves
    every existing output as it was and no temporary file behind.
    """
    temps: list[Path] = []
    try:
        for target in targets:
            fd, name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for temp in temps:
            if temp.stat().st_size == 0:
                raise ExportError(f"The converter wrote nothing for {temp.name}.")
        mode = default_file_mode()
        for temp, target in zip(temps, targets, strict=True):
            temp.chmod(mode)  # mkstemp makes private files; outputs get the usual mode
            temp.replace(target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
