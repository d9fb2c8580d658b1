"""Output files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sessions.summary import ExportError


def writable_folder(folder: Path) -> Path:
    """Create the output folder if needed and prove that files can be written into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        Path(probe).unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ExportError(f"Cannot write into the output folder {folder}: {reason}.") from error
    return folder


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
