"""The one check of a shard against its manifest row, applied by every reader as it streams and by
``python -m shards verify``: the groups' keys run through the row's anchors in order, none missing,
out of place or extra, and the bytes have the row's size (where the reader can tell it) and sha256
(where the reader reads them all)."""

from __future__ import annotations

import hashlib
from typing import IO, Any

from shards.schema import DamagedShardError, group_key

READ_BLOCK = 1 << 20


class AnchorOutOfPlace(DamagedShardError):
    """A group whose key is not the anchor the row puts next."""

    def __init__(self, message: str, found: str, expected: int | None):
        super().__init__(message)
        self.found = found  # how the reader names what it met ("anchor 5", "sample 00000000x5")
        self.expected = expected  # None: the row's anchors were all met already


class ShardCheck:
    """Feed it every group's key in stream order, then ask about the end and the bytes. Messages are
    ``{subject} {problem}{hint}.``: the subject names the shard, the hint says what to do."""

    def __init__(self, row: dict[str, Any], subject: str, hint: str = ""):
        self.row = row
        self.subject = subject
        self.hint = hint
        self._anchors = iter(range(row["first_anchor"], row["last_anchor"] + 1))

    def _fail(self, problem: str) -> DamagedShardError:
        return DamagedShardError(f"{self.subject} {problem}{self.hint}.")

    def next_anchor(self, key: str, found: str) -> int:
        """The anchor whose key ``key`` must be; ``found`` names the group in a message."""
        anchor = next(self._anchors, None)
        if anchor is None or key != group_key(anchor):
            place = f"anchor {anchor}" if anchor is not None else "the end of the shard"
            raise AnchorOutOfPlace(f"{self.subject} holds {found} where the manifest puts {place}{self.hint}.",
                                   found, anchor)
        return anchor

    def check_end(self) -> None:
        """At the end of the tar: a tar cut at a member boundary reads as a shorter, intact one."""
        missing = next(self._anchors, None)
        if missing is not None:
            raise self._fail(f"ends before anchor {missing}, which the manifest puts in it")

    def check_bytes(self, size: int | None, sha256: str | None) -> None:
        """The shard's size and sha256 against the row's; None where the reader cannot tell."""
        if size is not None and size > self.row["bytes"]:  # a reader reads at most one byte past the row's size
            raise self._fail(f"is longer than the {self.row['bytes']} bytes the manifest says (replaced, or bytes "
                             "appended)")
        if size is not None and size < self.row["bytes"]:
            raise self._fail(f"is {size} bytes; the manifest says {self.row['bytes']} (truncated or replaced)")
        if sha256 is not None and sha256 != self.row["sha256"]:
            raise self._fail("has a sha256 that differs from the manifest (its bytes were changed)")


class HashingStream:
    """A read-only stream wrapper that hashes and counts what passes through it; it cannot seek,
    so a tar reader reads every byte through it."""

    def __init__(self, stream: IO[bytes], name: str):
        self.stream = stream
        self.name = name
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self, expected_bytes: int) -> None:
        """Read what the tar reader left (end-of-archive padding, or bytes after an error), to at most one
        byte past the ``expected_bytes`` of the shard's row: a longer file shows it is, unread."""
        while self.size <= expected_bytes and self.read(min(READ_BLOCK, expected_bytes + 1 - self.size)):
            pass

    def close(self) -> None:
        self.stream.close()

    def __str__(self) -> str:
        return self.name
