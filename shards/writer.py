"""One shard and its record: a shard exists once its record does (the img2dataset stats-file idea).

A shard is streamed into an ``AtomicFile`` (a temporary name of this writer's own, locked while
written), fsynced and renamed; then its record (groups, bytes, sha256, first and last anchor, and
the set id that ties it to one recipe), written to a temporary of its own before that rename, is
renamed too. Tar headers carry no time, user or
mode that varies, so the same groups give the same bytes on any machine, whichever process wrote
them. ``SetWriter`` (shards/set_writer.py) hands these out; nothing else makes them.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

from common.files import AtomicFile, canonical_json
from shards.schema import Group, ShardSetError, record_name, shard_name


class _HashingFile:
    """A write-only file wrapper that hashes what passes through it."""

    def __init__(self, file: AtomicFile):
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()


class ShardWriter:
    """Streams the groups of shard ``index`` in anchor order; ``commit()`` makes the shard exist.

    ``anchors`` are the groups the shard must hold, so a shard is never committed short or with
    foreign groups. ``groups_after`` (the set's groups still to write after this shard) only sizes
    the estimate of space needed that a full disk reports. ``expected_sha256`` (a hollow set's
    record) refuses to commit other bytes than the shard the manifest describes.
    """

    def __init__(self, directory: Path, index: int, set_id: str, anchors: range, groups_after: int = 0,
                 expected_sha256: str | None = None):
        self.directory = Path(directory)
        self.index = index
        self.set_id = set_id
        self.expected_sha256 = expected_sha256
        self.planned = anchors
        self.groups_after = groups_after
        self.anchors: list[int] = []
        self._file = AtomicFile(self.directory / shard_name(index))
        self._hashing = _HashingFile(self._file)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w", format=tarfile.USTAR_FORMAT)

    def add(self, group: Group) -> None:
        self.add_members(group.anchor, group.members())

    def add_members(self, anchor: int, members: list[tuple[str, bytes]]) -> None:
        """A group as tar members named KEY.SUFFIX (``add`` makes them; a derived set copies them)."""
        position = len(self.anchors)
        if position >= len(self.planned) or anchor != self.planned[position]:
            raise ValueError(f"shard {self.index} expects anchor "
                             f"{self.planned[position] if position < len(self.planned) else 'none'}, "
                             f"not {anchor}")
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            self._tar.addfile(info, io.BytesIO(data))
        self.anchors.append(anchor)
        per_group = self._file.size / len(self.anchors)
        self._file.needed_bytes = round(per_group * (len(self.planned) - len(self.anchors) + self.groups_after))

    def commit(self) -> dict[str, Any]:
        """Close and rename the shard, then write its record; returns the record."""
        if len(self.anchors) != len(self.planned):
            raise ValueError(f"shard {self.index} holds {len(self.anchors)} of {len(self.planned)} groups")
        self._tar.close()
        sha256 = self._hashing.sha256.hexdigest()
        if self.expected_sha256 is not None and sha256 != self.expected_sha256:
            self._file.discard()
            raise ShardSetError(f"{shard_name(self.index)} came out with sha256 {sha256}, but the set's "
                                f"manifest records {self.expected_sha256}: this software stack renders "
                                "other bytes than the one that made the set, so the shard is not kept.")
        record = {
            "name": shard_name(self.index),
            "groups": len(self.anchors),
            "bytes": self._file.size,
            "sha256": sha256,
            "first_anchor": self.anchors[0],
            "last_anchor": self.anchors[-1],
            "set_id": self.set_id,
        }
        # The record's temporary is live (locked) before the shard takes its final name, so that until
        # the record lands a live temporary always says the shard is being written: a process waiting
        # for it (SetWriter.wait_for) never takes the moment between the two renames for a dead writer.
        with AtomicFile(self.directory / record_name(self.index)) as record_file:
            record_file.write(canonical_json(record))
            self._file.commit()
            try:
                record_file.commit()
            except BaseException:
                # Without its record the shard does not exist; leave no file that looks like one.
                (self.directory / shard_name(self.index)).unlink(missing_ok=True)
                raise
        return record

    def discard(self) -> None:
        self._file.discard()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.__exit__(exc_type, exc, tb)
