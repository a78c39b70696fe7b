"""Derived sets: ``python -m shards subset`` and ``merge`` make new sets from existing ones.

Groups are copied member by member, byte for byte, under new keys (0, 1, ... in the new set, so the
format's rows tile the anchors as in any set); each group's ``KEY.json`` keeps its parent's anchor.
The new manifest records, in ``lineage`` (part of the recipe, so a derived set has its own set id):
the parents' set ids and the sha256 of their manifests, the operation and its arguments, and
``runs``, which parent anchors became the new set's, in order, as [parent, first anchor, count].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from common.files import sha256_bytes
from shards.manifest import read_manifest_bytes
from shards.reader import ShardSet, TarReader, tar_samples
from shards.schema import ShardSetError, group_key
from shards.set_writer import SetWriter

# Manifest fields two sets must share for their groups to make one set.
MERGE_FIELDS = ("kind", "views", "image", "classes")
# Recipe fields a derived set takes from its (first) parent.
INHERITED = ("kind", "views", "image", "generator", "view_method", "classes", "class_subset", "seed")


def parse_shard_list(text: str, shard_count: int, option: str = "--shards") -> list[int]:
    """``0,5,9-12`` as sorted shard indices, each of which the set must have."""
    chosen: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or not (high or low).isdigit() or int(low) > int(high or low):
            raise ShardSetError(f"{option} {text!r} is not a list of shard indices and ranges such as 0,5,9-12.")
        chosen.update(range(int(low), int(high or low) + 1))
    beyond = sorted(index for index in chosen if index >= shard_count)
    if beyond:
        raise ShardSetError(f"{option} names shard {beyond[0]}, but the set has shards 0..{shard_count - 1}.")
    return sorted(chosen)


def subset_anchors(shard_set: ShardSet, classes: str | None, groups: int | None,
                   shards: str | None) -> tuple[list[int], dict[str, Any]]:
    """The parent anchors that one of --classes, --groups or --shards selects, and the arguments."""
    given = [name for name, value in (("--classes", classes), ("--groups", groups), ("--shards", shards))
             if value is not None]
    if len(given) != 1:
        raise ShardSetError("Give exactly one of --classes, --groups or --shards to choose a subset.")
    if groups is not None:
        return list(range(min(groups, shard_set.groups))), {"groups": groups}
    if shards is not None:
        rows = shard_set.shard_rows
        return ([anchor for index in parse_shard_list(shards, len(rows))
                 for anchor in range(rows[index]["first_anchor"], rows[index]["last_anchor"] + 1)],
                {"shards": shards})
    wanted = _class_indices(shard_set, classes)
    return [group.anchor for group in shard_set if group.label in wanted], {"classes": sorted(wanted)}


def _class_indices(shard_set: ShardSet, classes: str) -> set[int]:
    names = shard_set.class_names
    if not names:
        raise ShardSetError(f"{shard_set.location} is unlabelled, so --classes selects nothing in it.")
    wanted = set()
    for item in (part.strip() for part in classes.split(",")):
        if item in names:
            wanted.add(names.index(item))
        elif item.isdigit() and int(item) < len(names):
            wanted.add(int(item))
        else:
            raise ShardSetError(f"--classes names {item!r}, which is neither a class name nor an index of "
                                f"{shard_set.location}'s {len(names)} classes.")
    return wanted


def check_mergeable(parents: list[ShardSet]) -> None:
    """Refuse, in one sentence naming the field, sets whose groups cannot make one set."""
    first = parents[0]
    for other in parents[1:]:
        for name in MERGE_FIELDS:
            if first.manifest.get(name) != other.manifest.get(name):
                raise ShardSetError(f"{first.location} and {other.location} differ in {name} "
                                    f"({first.manifest.get(name)!r} and {other.manifest.get(name)!r}), so their "
                                    "groups cannot make one set.")
        if first.latent_dim != other.latent_dim:
            raise ShardSetError(f"{first.location} and {other.location} have latents of sizes {first.latent_dim} "
                                f"and {other.latent_dim}, so their groups cannot make one set.")


def runs_of(picks: list[tuple[int, int]]) -> list[list[int]]:
    """(parent, anchor) picks as [parent, first anchor, count] runs of consecutive anchors."""
    runs: list[list[int]] = []
    for parent, anchor in picks:
        if runs and runs[-1][0] == parent and runs[-1][1] + runs[-1][2] == anchor:
            runs[-1][2] += 1
        else:
            runs.append([parent, anchor, 1])
    return runs


def derive(parents: list[ShardSet], picks: list[tuple[int, int]], out: Path, operation: str,
           arguments: dict[str, Any], groups_per_shard: int | None, command: list[str]) -> dict[str, Any]:
    """Write the set of ``picks`` ((parent, anchor) in the new set's order) into ``out``; returns its recipe."""
    if not picks:
        raise ShardSetError(f"This {operation} selects no groups, so it would make an empty set; nothing was written.")
    first = parents[0].manifest
    lineage = {"operation": operation, "arguments": arguments, "runs": runs_of(picks),
               "parents": [{"set_id": parent.manifest.get("set_id"),
                            "manifest_sha256": sha256_bytes(read_manifest_bytes(parent.location))}
                           for parent in parents]}
    recipe = {**{name: first[name] for name in INHERITED if name in first}, "groups": len(picks),
              "groups_per_shard": groups_per_shard or first["groups_per_shard"], "lineage": lineage}
    if operation == "merge" or "classes" in arguments:
        present = {index for parent in parents for index in parent.manifest.get("class_subset", [])}
        recipe["class_subset"] = sorted(arguments.get("classes", present))
    writer = SetWriter(out, recipe)
    members = _picked_members(parents, picks)
    for index, span in enumerate(writer.spans):
        shard = writer.claim(index)
        if shard is None:  # committed by an earlier run of the same command: its groups are passed over
            for _ in span:
                next(members)
            continue
        with shard:
            for anchor in span:
                shard.add_members(anchor, next(members)(group_key(anchor)))
            shard.commit()
    writer.finish(command)
    return recipe


def _picked_members(parents: list[ShardSet], picks: list[tuple[int, int]]) -> Iterator:
    """For each pick in order, a function of the new key giving its members, read a shard at a time."""
    wanted = {pick: position for position, pick in enumerate(picks)}
    for parent_index, parent in enumerate(parents):
        for shard, row in enumerate(parent.shard_rows):
            anchors = range(row["first_anchor"], row["last_anchor"] + 1)
            if not any((parent_index, anchor) in wanted for anchor in anchors):
                continue
            with TarReader(parent.open_shard(shard)) as tar:
                for sample in tar_samples(tar, row["name"]):
                    group = parent.parse(sample)  # the members are checked as any reader checks them
                    if (parent_index, group.anchor) in wanted:
                        yield _renamed({suffix: bytes(data) for suffix, data in sample.items()
                                        if not suffix.startswith("__")})


def _renamed(members: dict[str, bytes]):
    return lambda key: [(f"{key}.{suffix}", data) for suffix, data in members.items()]
