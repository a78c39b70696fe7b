"""``python -m shards copy SRC DEST``: a finished set from one place to another, shard by shard.

SRC is a folder or an http(s), s3, gs or hf URL; DEST a folder or an s3, gs or hf URL. Each shard
streams from SRC (``shards.storage``: timeouts, retries, resumed reads) into a temporary file at
DEST while its sha256 is computed; only a shard whose size and sha256 match its manifest row is
committed (renamed in a folder, uploaded to a bucket), and its record follows it. The dataset card
and then the manifest come last, the manifest byte for byte, so a half-copied set is never taken
for a finished one, and the copy has the original's set id and manifest sha256. Run again, the same
command skips the shards whose record is already at DEST. ``workers`` shards are copied at once, in
threads (the work is waiting for the network). A shard bound for a bucket is spooled whole to the
system's temporary folder (TMPDIR) first, so that a failed copy never leaves a partial object under
a shard's name: that folder needs room for ``workers`` shards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial

from tqdm import tqdm

from common.files import canonical_json, sha256_bytes
from shards.destination import Destination, destination_for
from shards.manifest import check_location, member_location, parse_manifest, read_manifest_bytes, read_set_file
from shards.reader import ShardSet
from shards.schema import MANIFEST_NAME, ShardSetError, record_name
from shards.set_writer import CARD_FILES
from shards.shard_check import READ_BLOCK, HashingStream, ShardCheck


@dataclass(frozen=True)
class CopyReport:
    shards_copied: int
    shards_kept: int  # already at DEST from an earlier run
    bytes_copied: int
    set_id: str


def copy_set(source: str, destination: str, workers: int = 4, progress: bool = False) -> CopyReport:
    """Copy the finished set at ``source`` to ``destination`` (see the module's docstring)."""
    check_location(source)  # a pipe: location would run a shell command
    data = read_manifest_bytes(source)
    shard_set = ShardSet(source, parse_manifest(data, member_location(source, MANIFEST_NAME)), sha256_bytes(data))
    target = destination_for(destination)
    there = target.read(MANIFEST_NAME)
    if there is not None and there != data:
        raise ShardSetError(f"{destination} holds another set (its {MANIFEST_NAME} differs); copy into a new place.")
    rows, set_id = shard_set.shard_rows, shard_set.manifest.get("set_id")  # sets made before set ids have none
    records = [canonical_json({**row, **({"set_id": set_id} if set_id is not None else {})}) for row in rows]
    target.prepare()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        there = pool.map(target.read, map(record_name, range(len(rows))))  # a round trip each, in a bucket
        missing = [index for index, record in enumerate(there) if record != records[index]]
        with tqdm(total=sum(rows[index]["bytes"] for index in missing), unit="B", unit_scale=True, desc="copy",
                  disable=not progress) as bar:
            for _ in pool.map(partial(_copy_shard, shard_set, target, records, bar), missing):
                pass
    for name in CARD_FILES:
        try:
            target.write(name, read_set_file(source, name))
        except FileNotFoundError:
            pass  # a set made before dataset cards existed has none
    target.write(MANIFEST_NAME, data)  # last: now the copy is a finished set
    return CopyReport(shards_copied=len(missing), shards_kept=len(rows) - len(missing),
                      bytes_copied=sum(rows[index]["bytes"] for index in missing),
                      set_id=str(set_id or "none"))


def _copy_shard(shard_set: ShardSet, target: Destination, records: list[bytes], bar: tqdm, index: int) -> None:
    """Shard ``index`` streamed to ``target``, committed only with its row's size and sha256, then its record."""
    row = shard_set.shard_rows[index]
    url = shard_set.urls[index]
    try:
        stream = shard_set.open_shard(index)
    except FileNotFoundError:
        raise ShardSetError(f"shard {url} is missing, so the set cannot be copied whole.") from None
    with closing(HashingStream(stream, url)) as reader, target.new_file(row["name"], row["bytes"]) as copied:
        while piece := reader.read(READ_BLOCK):
            copied.write(piece)
            bar.update(len(piece))
        ShardCheck(row, f"shard {url}").check_bytes(reader.size, reader.sha256.hexdigest())
        copied.commit()
    target.write(record_name(index), records[index])
