"""Reading manifests and records, and building the manifest of a finished set from its recipe."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from common.files import sha256_bytes
from common.provenance import provenance
from shards.limits import MEMBER_BYTES
from shards.schema import (FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, DamagedShardError, JsonNestingError,
                           ShardSetError, check_manifest, parse_json, record_name)
from shards.storage import open_remote
from shards.transport import READ_SCHEMES, scheme_of

RECORD_FIELDS = ("name", "groups", "bytes", "sha256", "first_anchor", "last_anchor")
PIPE = "pipe:"  # read only when the user allows it
SCHEMES_IN_WORDS = "a folder or an http(s)://, s3://, gs:// or hf:// URL"


def is_remote(location: str) -> bool:
    return "://" in location or location.startswith(PIPE)


def check_location(location: str, allow_pipe: bool = False) -> None:
    """Refuse a set location that is neither a folder nor a URL of READ_SCHEMES: a ``pipe:`` location
    is a shell command that webdataset runs, so it is read only when the user allows it."""
    if location.startswith(PIPE):
        if not allow_pipe:
            raise ShardSetError(f"{location!r} is a pipe: location, which would run a shell command; a shard "
                                f"set is read from {SCHEMES_IN_WORDS} unless --allow-pipe is given.")
        return
    scheme = scheme_of(location)
    if scheme and scheme not in READ_SCHEMES:
        raise ShardSetError(f"{location} uses the {scheme}:// scheme; a shard set is read from {SCHEMES_IN_WORDS}.")


def local_file(location: str, name: str) -> Path:
    """A file of a local set, checked before it is opened: a regular file (a FIFO would block a
    reader for ever) whose real path lies inside the set's folder (no link out of the set).
    Raises FileNotFoundError when it is absent, DamagedShardError otherwise."""
    folder, path = Path(location), Path(location) / name
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise DamagedShardError(f"{path} is not a regular file, so it is not read as part of the set.")
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(folder)):
        raise DamagedShardError(f"{path} is a link to {real}, outside the set's folder; a set's files "
                                 "must lie in its folder.")
    return path


def member_location(location: str, name: str) -> str:
    """Where a file of the set lives: a path for local sets, a URL for remote ones."""
    if is_remote(location):
        return location.rstrip("/") + "/" + name
    return str(Path(location) / name)


def read_manifest_bytes(location: str) -> bytes:
    """The raw manifest of a set, from a folder, a URL (through shards.storage) or a pipe: the
    caller allowed, at most MEMBER_BYTES of it."""
    if not is_remote(location) and not Path(location).is_dir():
        raise ShardSetError(f"No shard set at {location}: the folder does not exist.")
    try:
        return read_set_file(location, MANIFEST_NAME)
    except FileNotFoundError as error:
        if is_remote(location):
            raise ShardSetError(f"No finished shard set at {location}: it has no {MANIFEST_NAME} "
                                f"({error.strerror}).") from None
        raise ShardSetError(f"No finished shard set at {location}: it has no {MANIFEST_NAME} "
                            "(an unfinished set gets one when its last shard is written).") from None


def read_set_file(location: str, name: str) -> bytes:
    """A small file of a set (manifest, record, card), at most MEMBER_BYTES of it; raises
    FileNotFoundError when the set has none, ShardSetError when it cannot be read."""
    limit = MEMBER_BYTES.value
    where = member_location(location, name)
    if not is_remote(location):
        try:
            data = _read_at_most(open(local_file(location, name), "rb"), limit)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise ShardSetError(f"Could not read {where} ({error.strerror or error}).") from None
    elif location.startswith(PIPE):
        from webdataset import gopen

        try:
            data = _read_at_most(gopen(where), limit)
        except Exception as error:  # gopen raises whatever its transport raises
            raise ShardSetError(f"Could not read {name} at {location} ({error}).") from None
    else:
        data = _read_at_most(open_remote(where, limit=limit), limit)
    if len(data) > limit:
        raise ShardSetError(f"{where} holds {MEMBER_BYTES.exceeded_by(len(data))}.")
    return data


def _read_at_most(stream: Any, limit: int) -> bytes:
    """Up to limit + 1 bytes, so that a longer file shows it is one."""
    with stream:
        return stream.read(limit + 1)


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = parse_json(data)
    except JsonNestingError as error:
        raise ShardSetError(f"{where} is {error}.") from None
    except ValueError:
        raise ShardSetError(f"{where} is not valid JSON.") from None
    return check_manifest(manifest, where)


def read_record(directory: Path, index: int) -> dict[str, Any] | None:
    """A shard's commit record, or None when the shard was never committed."""
    path = directory / record_name(index)
    if not path.is_file():
        return None
    try:
        record = parse_json(path.read_bytes())
    except ValueError:
        return None  # a record is written atomically, so this is foreign damage: rewrite the shard
    return record if isinstance(record, dict) else None


def shard_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{field: record[field] for field in RECORD_FIELDS} for record in records]


def recipe_id(recipe: dict[str, Any]) -> str:
    """The set id: a hash of everything that decides a set's content (not where or how it ran)."""
    return sha256_bytes(json.dumps(recipe, sort_keys=True).encode("utf-8"))[:16]


def complete_manifest(recipe: dict[str, Any], records: list[dict[str, Any]], command: list[str],
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a finished set: its recipe plus set id, shard rows and provenance.

    ``recipe`` holds kind, groups, views, image, generator, view_method, classes, class_subset,
    seed and groups_per_shard (see DESIGN.md, "The shard-set format"); ``extra`` holds facts that
    do not change the set's bytes (such as the folder a real set was ingested from).
    """
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        **recipe,
        "set_id": recipe_id(recipe),
        "shards": shard_rows(records),
        "provenance": provenance(command),
        **(extra or {}),
    }
