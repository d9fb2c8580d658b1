"""Whether a folder holds the version its .dvc file records, decided without starting DVC.

DVC 3 records a folder as the md5 of its listing: each file's md5 and path, as JSON, sorted
by path (`<md5>.dir` in the .dvc file). Computing that here takes milliseconds where a `dvc
data status` process takes most of a second, so the common case (the data set is current,
before every training run) costs nothing. Only a match is trusted: any difference, or a
record this does not understand (another hash, a single file, no record), is for DVC itself
to judge.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

# The fields of a .dvc file's single output that this reads (DVC writes them one per line).
FIELD = re.compile(r"^\s*-?\s*(md5|hash|path):\s*(\S+)\s*$", re.M)
CHUNK = 1 << 20


def recorded_fields(dvc_file: Path) -> list[tuple[str, str]]:
    try:
        return FIELD.findall(dvc_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return []


def recorded_hash(dvc_file: Path) -> str | None:
    """The content hash that a .dvc file records for its (first) output, if any."""
    return next((value for name, value in recorded_fields(dvc_file) if name == "md5"), None)


def recorded_folder_hash(dvc_file: Path, path: str) -> str | None:
    """The `<md5>.dir` a .dvc file records for the folder `path` with DVC 3's md5, else None
    (also for a file that records more than that one output, or dependencies)."""
    fields = recorded_fields(dvc_file)
    record = dict(fields)
    if len(record) != len(fields) or record.get("hash") != "md5" or record.get("path") != path:
        return None
    md5 = record.get("md5", "")
    return md5 if md5.endswith(".dir") else None


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_hash(folder: Path) -> str:
    """DVC 3's hash of a folder: the md5 of the JSON list of its files' md5s and paths, sorted
    as text with `/` between parts (on every system)."""
    paths = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    listing = [{"md5": file_md5(paths[name]), "relpath": name} for name in sorted(paths)]
    text = json.dumps(listing, sort_keys=True)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest() + ".dir"


def holds_recorded_version(root: Path, target: str) -> bool:
    """True when root/target is exactly the folder that root/target.dvc records."""
    recorded = recorded_folder_hash(root / f"{target}.dvc", target)
    folder = root / target
    return bool(recorded) and folder.is_dir() and folder_hash(folder) == recorded
