"""Checking a finished shard set against its manifest: every shard's bytes, hash, groups and samples.

Each shard is read once as a stream through the readers' own stages (tar expansion with its
member-size bound, grouping by key, the schema check, the shard check against its row), while
the bytes feed the sha256. Every view is decoded as the trainer and evaluate decode it, so verify
flags whatever they would refuse (``decode=False`` checks frame headers only, for speed), and
nothing is unpickled.

Shards are checked in parallel, a few in flight per worker process, and reported in the manifest's
order: any number of workers gives the same report as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.parallel import process_map
from shards.reader import (TAR_ERRORS, ShardSet, TarFormatError, TarReader, decode_group_view, error_summary,
                           open_set, tar_samples)
from shards.schema import CorruptSampleError, DamagedShardError
from shards.shard_check import AnchorOutOfPlace, HashingStream, ShardCheck


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


def verify_set(location: str | Path, progress: bool = False, allow_pipe: bool = False,
               decode: bool = True, workers: int = 1) -> VerifyReport:
    """Check every shard of a finished set in ``workers`` processes; manifest errors raise
    ShardSetError, shard damage is reported (every damaged shard, in the manifest's order)."""
    shard_set = open_set(str(location), allow_pipe)
    rows = shard_set.shard_rows
    report = VerifyReport(location=shard_set.location, set_id=str(shard_set.manifest.get("set_id", "?")),
                          groups=shard_set.groups, shards=len(rows))
    check = partial(_check_shard, shard_set, decode=decode)
    messages = process_map(check, range(len(rows)), max(1, min(workers, len(rows))))
    with tqdm(total=shard_set.groups, desc="verify", unit="group", disable=not progress) as bar:
        for row, message in zip(rows, messages):
            bar.update(row["groups"])
            if message is not None:
                report.problems.append(ShardProblem(row["name"], message))
    return report


def _check_shard(shard_set: ShardSet, index: int, decode: bool) -> str | None:
    """The first problem of one shard as a line naming it, or None when it matches its row: its
    size and sha256 first (they say whether the bytes are the sender's), then its content."""
    row = shard_set.shard_rows[index]
    name = row["name"]
    check = ShardCheck(row, f"shard {name}:")
    try:
        stream = shard_set.open_shard(index)
    except FileNotFoundError:
        return f"shard {name}: is missing."
    except DamagedShardError as error:
        return f"shard {name}: {error}"
    except Exception as error:  # a remote transport raises whatever it raises
        return f"shard {name}: could not be opened ({error_summary(error)})."
    reader = HashingStream(stream, name)
    content_problem = None
    with TarReader(reader) as tar:
        try:
            for sample in tar_samples(tar, name):
                group = shard_set.parse(sample, strict_views=True)
                check.next_anchor(sample["__key__"], f"anchor {group.anchor}")
                for view in range(len(group.views)) if decode else ():
                    decode_group_view(group, view)
            check.check_end()
        except AnchorOutOfPlace as error:
            content_problem = _out_of_place(error, row)
        except CorruptSampleError as error:
            content_problem = str(error)
        except (TarFormatError, *TAR_ERRORS) as error:
            content_problem = f"shard {name}: is not a readable tar ({error_summary(error)})."
        reader.drain(row["bytes"])
    try:
        check.check_bytes(reader.size, reader.sha256.hexdigest())
    except DamagedShardError as error:
        return str(error)
    return content_problem


def _out_of_place(error: AnchorOutOfPlace, row: dict[str, Any]) -> str:
    where = f"anchor {error.expected} belongs" if error.expected is not None else "the shard should end"
    return (f"shard {row['name']}: holds {error.found} where {where} (anchors must run "
            f"{row['first_anchor']}..{row['last_anchor']} in order).")
