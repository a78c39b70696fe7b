"""``python -m generate --like DERIVED --parent P ...``: a derived set rendered through its parents.

A subset or merge (``shards.lineage``) records its parents' manifest sha256s and which parent
anchors it holds, not how to render them; the parents' manifests (a set, a hollow set or a
manifest file each) are given with ``--parent`` and checked by sha256. Each parent is filled, in a
scratch folder beside the output, with only the shards that hold those anchors; the derivation
then runs again exactly as recorded, so its shards are the original's byte for byte.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from common.files import make_folder, sha256_bytes
from generate.like import LikeError, read_source_bytes
from shards.hollow import hollow_of
from shards.lineage import derive
from shards.reader import open_set

# Renders the shards ``only`` of the set of a parent's manifest into a folder holding its hollow set.
RenderParent = Callable[[dict[str, Any], Path, frozenset[int]], None]


def needed_shards(runs: list[list[int]], parent: int, groups_per_shard: int) -> frozenset[int]:
    """The parent's shards that hold the anchors of the runs taken from it."""
    return frozenset(shard for index, first, count in runs if index == parent
                     for shard in range(first // groups_per_shard, (first + count - 1) // groups_per_shard + 1))


def regenerate_derived(manifest: dict[str, Any], parents: tuple[str, ...], out: Path, render: RenderParent,
                       command: list[str]) -> dict[str, Any]:
    """Render the parents' needed shards and derive the set again into ``out``; returns its recipe."""
    lineage = manifest["lineage"]
    recorded = lineage.get("parents", [])
    if len(parents) != len(recorded):
        raise LikeError(f"This set was derived (python -m shards {lineage.get('operation')}) from the {len(recorded)} "
                        f"set(s) its lineage names, and {len(parents)} --parent were given: give each one, a set, a "
                        "hollow set or its manifest, in the order of its lineage.")
    scratch_root = Path(out).absolute().parent
    make_folder(scratch_root)
    with tempfile.TemporaryDirectory(dir=scratch_root, prefix=f".{Path(out).name}-parents-") as scratch:
        folders = []
        for index, (location, expected) in enumerate(zip(parents, recorded)):
            source, data = read_source_bytes(location)
            if sha256_bytes(data) != expected.get("manifest_sha256"):
                raise LikeError(f"--parent {location} has a manifest of sha256 {sha256_bytes(data)}, but the set was "
                                f"derived from one of sha256 {expected.get('manifest_sha256')}.")
            if "lineage" in source:
                raise LikeError(f"--parent {location} is itself derived from other sets: render it first with "
                                f"--like {location} and its own --parent sets, and give that.")
            folder = Path(scratch) / str(index)
            hollow_of(data, location, folder)
            render(source, folder, needed_shards(lineage["runs"], index, source["groups_per_shard"]))
            folders.append(open_set(str(folder)))
        picks = [(index, anchor) for index, first, count in lineage["runs"] for anchor in range(first, first + count)]
        return derive(folders, picks, out, lineage["operation"], lineage.get("arguments", {}),
                      manifest["groups_per_shard"], command)
