"""Readers that check what they read: a shard whose content is not what its manifest row says is
refused by every reader as it streams, with the one check verify applies too."""

from __future__ import annotations

from pathlib import Path

import pytest

from shards import CorruptSampleError, open_set
from shards.verify import verify_set
from tests.shards.helpers import write_synthetic_set
from tests.shards.hostile import cut_before_group, every_reader_refuses, replace_shard


def duplicate_anchors(directory: Path) -> None:
    """Shard 1 replaced by a copy of shard 0's groups, rows re-hashed: anchors 0..3 twice."""
    replace_shard(directory, 1, (directory / "shard-000000.tar").read_bytes())


def cut_at_a_member_boundary(directory: Path) -> None:
    replace_shard(directory, 0, cut_before_group(directory / "shard-000000.tar", 2))


def grown(directory: Path) -> None:
    """Zero blocks appended: a valid tar, larger than its row says."""
    shard = directory / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes() + bytes(10240))


HOSTILE = {
    "duplicate anchors across shards": (duplicate_anchors, 1, "0 where the manifest puts anchor 4",
                                        "holds anchor 0 where anchor 4 belongs"),
    "tar cut at a member boundary": (cut_at_a_member_boundary, 0, "ends before anchor 2, which the manifest puts",
                                     "ends before anchor 2, which the manifest puts"),
    "size mismatch": (grown, 0, "is longer than the", "bytes the manifest says (replaced, or bytes appended)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_reader_and_verify_refuse_a_shard_that_is_not_what_its_row_says(tmp_path: Path, case: str):
    damage, shard, reader_says, verify_says = HOSTILE[case]
    write_synthetic_set(tmp_path, groups=8, groups_per_shard=4)
    damage(tmp_path)

    every_reader_refuses(tmp_path, reader_says, shard=shard, verify_says=(verify_says,))


def test_a_sha256_mismatch_is_caught_by_verify_and_by_a_reader_that_reads_every_byte(tmp_path: Path):
    write_synthetic_set(tmp_path, groups=8, groups_per_shard=4)
    shard = tmp_path / "shard-000000.tar"
    data = shard.read_bytes()
    shard.write_bytes(data.replace(b'"truncation":0.7', b'"truncation":0.9', 1))  # same size, valid content
    shard_set = open_set(str(tmp_path))

    assert [group.anchor for group in shard_set.chosen_views(0, lambda anchor: [0])] == [0, 1, 2, 3]
    with pytest.raises(CorruptSampleError, match="has a sha256 that differs from the manifest"):
        list(shard_set.chosen_views(0, lambda anchor: [0], check_sha256=True))
    assert "has a sha256 that differs" in verify_set(tmp_path).problems[0].message
