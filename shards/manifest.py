"""Reading, collecting and writing manifests, and the provenance every set and run records."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from shards.schema import (FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, ShardSetError, check_manifest,
                           record_name)
from shards.writer import write_json_atomic

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


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(directory / MANIFEST_NAME, manifest)


def shard_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{field: record[field] for field in RECORD_FIELDS} for record in records]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(command: list[str]) -> dict[str, Any]:
    """What produced an artefact: package, code revision, torch, and the command line."""
    import torch

    try:
        version = metadata.version("genviews")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "package": "genviews",
        "package_version": version,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "command": command,
    }


def git_commit() -> str:
    """The commit of the genviews checkout in use, with '+dirty' when it has local changes."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


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
