"""Reading manifests and records, and building the manifest of a finished set from its recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.files import sha256_bytes
from common.provenance import provenance
from shards.schema import (FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, ShardSetError, check_manifest,
                           record_name)

RECORD_FIELDS = ("name", "groups", "bytes", "sha256", "first_anchor", "last_anchor")


def is_remote(location: str) -> bool:
    return "://" in location or location.startswith("pipe:")


def member_location(location: str, name: str) -> str:
    """Where a file of the set lives: a path for local sets, a URL for remote ones."""
    if is_remote(location):
        return location.rstrip("/") + "/" + name
    return str(Path(location) / name)


def read_manifest_bytes(location: str) -> bytes:
    """The raw manifest of a set, from a folder or anything webdataset's gopen can open."""
    if not is_remote(location):
        path = Path(location) / MANIFEST_NAME
        if not Path(location).is_dir():
            raise ShardSetError(f"No shard set at {location}: the folder does not exist.")
        if not path.is_file():
            raise ShardSetError(f"No finished shard set at {location}: it has no {MANIFEST_NAME} "
                                "(an unfinished set gets one when its last shard is written).")
        return path.read_bytes()
    from webdataset import gopen

    try:
        with gopen(member_location(location, MANIFEST_NAME)) as stream:
            return stream.read()
    except Exception as error:  # gopen raises whatever its transport raises
        raise ShardSetError(f"Could not read {MANIFEST_NAME} at {location} ({error}).") from None


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ShardSetError(f"{where} is not valid JSON.") from None
    return check_manifest(manifest, where)


def read_record(directory: Path, index: int) -> dict[str, Any] | None:
    """A shard's commit record, or None when the shard was never committed."""
    path = directory / record_name(index)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
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
