"""Derived sets: subset and merge copy groups byte for byte, verify as any set and record their lineage."""

from __future__ import annotations

import hashlib
import json
import tarfile

from shards.cli import cli
from shards.verify import verify_set
from tests.cli import assert_clean_failure, run_in_process
from tests.shards.helpers import write_synthetic_set


def shards(*args: object):
    return run_in_process(cli, "python -m shards", *args)


def members(folder) -> dict[str, bytes]:
    """Every tar member of a set, by name."""
    found = {}
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            found.update({member.name: tar.extractfile(member).read() for member in tar})
    return found


def test_a_subset_copies_its_groups_byte_for_byte_and_records_its_parent(tmp_path):
    parent = write_synthetic_set(tmp_path / "set", groups=9, groups_per_shard=4)
    result = shards("subset", tmp_path / "set", tmp_path / "cherries", "--classes", "cherry")
    assert result.returncode == 0, result.stderr
    assert verify_set(tmp_path / "cherries").intact
    manifest = json.loads((tmp_path / "cherries" / "manifest.json").read_text())
    lineage = manifest["lineage"]
    assert lineage["operation"] == "subset" and lineage["arguments"] == {"classes": [2]}
    assert lineage["parents"] == [{"set_id": parent["set_id"], "manifest_sha256": hashlib.sha256(
        (tmp_path / "set" / "manifest.json").read_bytes()).hexdigest()}]
    assert lineage["runs"] == [[0, 2, 1], [0, 5, 1], [0, 8, 1]] and manifest["groups"] == 3
    old, new = members(tmp_path / "set"), members(tmp_path / "cherries")
    for key, anchor in enumerate((2, 5, 8)):
        for suffix in ("0.jpg", "1.jpg", "2.jpg", "latents.npy", "cls", "json"):
            assert new[f"{key:010d}.{suffix}"] == old[f"{anchor:010d}.{suffix}"]
    assert "lineage      subset (classes=[2]) of " + parent["set_id"] in shards("info", tmp_path / "cherries").stdout


def test_a_merge_holds_every_group_of_its_sets_in_order(tmp_path):
    write_synthetic_set(tmp_path / "a", groups=5)
    write_synthetic_set(tmp_path / "b", groups=6)
    assert shards("subset", tmp_path / "b", tmp_path / "b2", "--shards", "1").returncode == 0
    result = shards("merge", tmp_path / "a", tmp_path / "b2", tmp_path / "both", "--groups-per-shard", 3)
    assert result.returncode == 0, result.stderr
    assert verify_set(tmp_path / "both").intact
    lineage = json.loads((tmp_path / "both" / "manifest.json").read_text())["lineage"]
    assert lineage["operation"] == "merge" and lineage["runs"] == [[0, 0, 5], [1, 0, 2]]
    old_b, merged = members(tmp_path / "b2"), members(tmp_path / "both")
    assert merged["0000000006.0.jpg"] == old_b["0000000001.0.jpg"] and len(merged) == 7 * 6


def test_merges_of_unlike_sets_and_empty_subsets_are_refused_writing_nothing(tmp_path):
    write_synthetic_set(tmp_path / "three", groups=4, views=3)
    write_synthetic_set(tmp_path / "two", groups=4, views=2)
    assert_clean_failure(shards("merge", tmp_path / "three", tmp_path / "two", tmp_path / "out"), "differ in views")
    assert shards("subset", tmp_path / "three", tmp_path / "cherries", "--classes", "cherry").returncode == 0
    assert_clean_failure(shards("subset", tmp_path / "cherries", tmp_path / "out", "--classes", "apple"),
                         "selects no groups")
    assert_clean_failure(shards("subset", tmp_path / "three", tmp_path / "out", "--groups", 2, "--shards", "0"),
                         "exactly one of")
    assert not (tmp_path / "out").exists()
