"""The folder a set is being written into: refusing anything but that set, finding committed shards.

Writers (``python -m generate``, ``python -m shards ingest``) call ``check_destination`` before
writing anything, so two recipes never mix in one folder and a user's own files are never touched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from shards.manifest import read_record
from shards.schema import MANIFEST_NAME, RECORD_PATTERN, ShardSetError, shard_name
from shards.writer import TEMP_SUFFIX

_SET_FILE = re.compile(r"^(manifest\.json|shard-\d{6}\.(tar|json))(\.[0-9a-f]{8})?$")


def belongs_to_a_set(name: str) -> bool:
    """A manifest, shard or record, or the temporary file of one."""
    return _SET_FILE.match(name.removesuffix(TEMP_SUFFIX)) is not None


def check_destination(out: Path, set_id: str) -> bool:
    """Refuse a folder holding anything but the set ``set_id``; True when that set is complete there."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise ShardSetError(f"{out} exists and is not a folder.")
    foreign = sorted(path.name for path in out.iterdir() if not belongs_to_a_set(path.name))
    if foreign:
        raise ShardSetError(f"{out} holds files that are not part of a shard set "
                            f"({', '.join(foreign[:3])}); choose an empty or new folder.")
    if (out / MANIFEST_NAME).is_file():
        existing = _manifest_set_id(out / MANIFEST_NAME)
        if existing != set_id:
            raise _different_set(out, existing, set_id)
        return True
    for path in out.iterdir():
        if match := RECORD_PATTERN.match(path.name):
            record = read_record(out, int(match.group(1)))
            if record is not None and record.get("set_id") != set_id:
                raise _different_set(out, record.get("set_id"), set_id)
    return False


def is_committed(out: Path, index: int, set_id: str) -> bool:
    """The shard has a record of this set and its tar is there at the recorded size."""
    record = read_record(out, index)
    shard = out / shard_name(index)
    return (record is not None and record.get("set_id") == set_id and shard.is_file()
            and shard.stat().st_size == record.get("bytes"))


def remove_leftovers(out: Path) -> None:
    """Delete the temporary shards and records of killed writers, once every record is in place."""
    for leftover in out.glob(f"shard-*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def _manifest_set_id(path: Path) -> str | None:
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ShardSetError(f"{path} is unreadable; choose another output folder.") from None
    return manifest.get("set_id") if isinstance(manifest, dict) else None


def _different_set(out: Path, existing: object, wanted: str) -> ShardSetError:
    return ShardSetError(f"{out} holds a different shard set (set id {existing}; these settings "
                         f"make {wanted}): refusing to mix them, choose another output folder.")
