"""Atomic shard commits: a shard exists once its record does (the img2dataset stats-file idea).

A shard is streamed into a temporary file, flushed, fsynced and renamed; then its record (groups,
bytes, sha256, first and last anchor, and the set id that ties it to one generation recipe) is
written the same way. Tar headers carry no time, user or mode that varies, so the same groups give
the same bytes on any machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from shards.schema import Group, record_name, shard_name

TEMP_SUFFIX = ".partial"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write under a temporary name of this writer's own (several processes may write the same
    file, e.g. the manifest), fsync, and rename over ``path``."""
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    sync_directory(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Canonical JSON (sorted keys, fixed indent), so writing the same object twice gives the same bytes."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size


class ShardWriter:
    """Streams groups into one shard; ``commit()`` makes it exist, leaving the context without it discards it."""

    def __init__(self, directory: Path, index: int, set_id: str):
        self.directory = Path(directory)
        self.index = index
        self.set_id = set_id
        self.final_path = self.directory / shard_name(index)
        self.temp_path = self.final_path.with_name(self.final_path.name + TEMP_SUFFIX)
        self.anchors: list[int] = []
        self._handle = open(self.temp_path, "wb")
        self._hashing = _HashingFile(self._handle)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w", format=tarfile.USTAR_FORMAT)

    def add(self, group: Group) -> None:
        if self.anchors and group.anchor <= self.anchors[-1]:
            raise ValueError(f"groups must arrive in anchor order ({group.anchor} after {self.anchors[-1]})")
        for name, data in group.members():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            self._tar.addfile(info, io.BytesIO(data))
        self.anchors.append(group.anchor)

    def commit(self) -> dict[str, Any]:
        """Close, fsync and rename the shard, then write its record; returns the record."""
        if not self.anchors:
            raise ValueError("a shard needs at least one group")
        self._tar.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temp_path, self.final_path)
        sync_directory(self.directory)
        record = {
            "name": self.final_path.name,
            "groups": len(self.anchors),
            "bytes": self._hashing.size,
            "sha256": self._hashing.sha256.hexdigest(),
            "first_anchor": self.anchors[0],
            "last_anchor": self.anchors[-1],
            "set_id": self.set_id,
        }
        write_json_atomic(self.directory / record_name(self.index), record)
        return record

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._handle.closed:
            self.discard()

