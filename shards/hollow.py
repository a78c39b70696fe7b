"""``python -m shards hollow SET OUT``: a set without its images, to be filled where it lands.

A hollow set holds the manifest (the same bytes, so its sha256 and set id are the original's),
every shard's record (rebuilt from the manifest's rows, so a remote set's records need not be
fetched) and the dataset card. ``python -m generate --like OUT --out OUT`` renders the shards
into it, shard by shard, and commits only bytes whose sha256 the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.files import make_folder, write_bytes_atomic, write_json_atomic
from shards.card import write_card
from shards.croissant import write_croissant
from shards.manifest import check_location, parse_manifest, read_manifest_bytes
from shards.schema import MANIFEST_NAME, ShardSetError, record_name


@dataclass(frozen=True)
class HollowReport:
    shards: int
    groups: int
    bytes_written: int  # the hollow set's size
    bytes_full: int  # the shards it leaves out


def write_hollow(location: str, out: Path) -> HollowReport:
    """Write the hollow set of the finished set at ``location`` into the new folder ``out``."""
    check_location(location)  # a pipe: location would run a shell command
    return hollow_of(read_manifest_bytes(location), f"{location.rstrip('/')}/{MANIFEST_NAME}", out)


def hollow_of(data: bytes, where: str, out: Path) -> HollowReport:
    """Write the hollow set of the manifest ``data`` (read from ``where``) into the new folder ``out``."""
    location = where.removesuffix(f"/{MANIFEST_NAME}")
    manifest = parse_manifest(data, where)
    if manifest["kind"] != "synthetic" or not manifest.get("generator"):
        raise ShardSetError(f"{location} is a set of real images: no generator can fill a hollow copy of it.")
    if not isinstance(manifest.get("set_id"), str):
        raise ShardSetError(f"{location}'s manifest has no set id, which the records of a hollow copy carry so that "
                            "generate --like fills them with this set's shards only.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShardSetError(f"{out} exists and is not an empty folder; choose a new one for the hollow set.")
    make_folder(out)
    for index, row in enumerate(manifest["shards"]):
        write_json_atomic(out / record_name(index), {**row, "set_id": manifest["set_id"]})
    write_card(out, manifest)
    write_croissant(out, manifest)
    write_bytes_atomic(out / MANIFEST_NAME, data)  # last, as in every set
    return HollowReport(shards=len(manifest["shards"]), groups=manifest["groups"],
                        bytes_written=sum(path.stat().st_size for path in out.iterdir()),
                        bytes_full=sum(row["bytes"] for row in manifest["shards"]))
