"""Checking a finished shard set against its manifest: every shard's bytes, hash, groups and samples.

Each shard is read once as a stream: the bytes feed the sha256 while webdataset's own tar iterator
and key grouping (the reader's stages) split them into samples, which go through the reader's
schema check. Nothing is decoded beyond that check, and nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from tqdm import tqdm
from webdataset.tariterators import group_by_keys, tar_file_iterator

from shards.manifest import is_remote, member_location
from shards.reader import ShardSet, error_summary, open_set
from shards.schema import CorruptSampleError

READ_BLOCK = 1 << 20


@dataclass
class ShardProblem:
    shard: str
    message: str  # one line that names the shard


@dataclass
class VerifyReport:
    location: str
    set_id: str
    groups: int
    shards: int
    problems: list[ShardProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class _HashingReader:
    """A read-only stream wrapper that hashes and counts what passes through it."""

    def __init__(self, stream: BinaryIO, name: str):
        self.stream = stream
        self.name = name
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read what the tar parser left (end-of-archive padding, or bytes after an error)."""
        while self.read(READ_BLOCK):
            pass

    def __str__(self) -> str:  # webdataset appends the stream to its error messages
        return self.name


def verify_set(location: str | Path, progress: bool = False) -> VerifyReport:
    """Check every shard of a finished set; manifest errors raise ShardSetError, shard damage is reported."""
    shard_set = open_set(str(location))
    rows = shard_set.shard_rows
    report = VerifyReport(location=shard_set.location, set_id=str(shard_set.manifest.get("set_id", "?")),
                          groups=shard_set.groups, shards=len(rows))
    for row in tqdm(rows, desc="verify", unit="shard", disable=not progress):
        message = _check_shard(shard_set, row)
        if message is not None:
            report.problems.append(ShardProblem(row["name"], message))
    return report



def _open_shard(location: str, name: str) -> BinaryIO:
    url = member_location(location, name)
    if is_remote(location):
        from webdataset import gopen

        return gopen(url)
    return open(url, "rb")


def _check_shard(shard_set: ShardSet, row: dict[str, Any]) -> str | None:
    """The first problem of one shard as a line naming it, or None when it matches its row."""
    name = row["name"]

    def problem(text: str) -> str:
        return f"shard {name}: {text}"

    try:
        stream = _open_shard(shard_set.location, name)
    except FileNotFoundError:
        return problem("is missing.")
    except Exception as error:  # a remote transport raises whatever it raises
        return problem(f"could not be opened ({error_summary(error)}).")
    with stream:
        reader = _HashingReader(stream, name)
        anchors: list[int] = []
        content_problem = None
        try:
            for sample in _samples(reader):
                anchors.append(shard_set.parse(sample).anchor)
        except CorruptSampleError as error:
            content_problem = str(error)
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            content_problem = problem(f"is not a readable tar ({error_summary(error)}).")
        reader.drain()
    if reader.size != row["bytes"]:
        return problem(f"is {reader.size} bytes; the manifest says {row['bytes']} (truncated or replaced).")
    if reader.sha256.hexdigest() != row["sha256"]:
        return problem("has a sha256 that differs from the manifest (its bytes were changed).")
    if content_problem is not None:
        return content_problem
    return _anchor_problem(anchors, row, problem)


def _samples(reader: _HashingReader) -> Iterator[dict[str, Any]]:
    """The shard's samples, split and grouped exactly as the reader's webdataset stages do."""
    files = ({**member, "__url__": reader.name} for member in tar_file_iterator(reader))
    return group_by_keys(files)


def _anchor_problem(anchors: list[int], row: dict[str, Any], problem: Callable[[str], str]) -> str | None:
    if len(anchors) != row["groups"]:
        return problem(f"holds {len(anchors)} groups; the manifest says {row['groups']}.")
    expected = list(range(row["first_anchor"], row["last_anchor"] + 1))
    if anchors != expected:
        position = next(i for i, (got, want) in enumerate(zip(anchors, expected)) if got != want)
        return problem(f"holds anchor {anchors[position]} where anchor {expected[position]} belongs "
                       f"(anchors must run {row['first_anchor']}..{row['last_anchor']} in order).")
    return None
