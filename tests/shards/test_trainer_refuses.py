"""The trainer refuses what verify refuses: damage in members the trainer does not use (latents,
metadata) is found on its first read of a shard, which reads every byte anyway, and named as verify
names it; members named outside the format are named, not read as a group with an empty key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shards import open_set
from shards.cli import cli as shards_cli
from tests.cli import run_in_process
from tests.shards.helpers import write_synthetic_set
from tests.shards.hostile import (NESTED, every_reader_refuses, npy_declaring, pickled_npy, rename_member,
                                  replace_member)
from train.augment import AugmentConfig
from train.data import build_loader
from train.main import main as train_main
from train.sources import DataSource

TRAIN = ["--batch-size", "2", "--steps", "1", "--backbone", "convnet-small", "--workers", "0", "--no-progress",
         "--warmup", "0"]

# case -> (the damage to shard 0, what every reader and verify say, whether later reads skip it)
HOSTILE = {
    "pickled latents": (lambda d: replace_member(d, 0, "0000000001.latents.npy", pickled_npy()),
                        "sample 0000000001 has unreadable latents (they hold Python objects", True),
    "latents declaring 1e12 rows": (lambda d: replace_member(d, 0, "0000000001.latents.npy",
                                                             npy_declaring((10**12, 128))),
                                    "sample 0000000001 has latents float32[1000000000000, 128]; expected", True),
    "latents declaring 2 x 5e8": (lambda d: replace_member(d, 0, "0000000001.latents.npy",
                                                           npy_declaring((2, 5 * 10**8))),
                                  "sample 0000000001 has latents float32[2, 500000000]; expected", True),
    "metadata that is not JSON": (lambda d: replace_member(d, 0, "0000000001.json", b"{'not': json"),
                                  "sample 0000000001 has metadata that is not JSON", True),
    "metadata nested 200,000 deep": (lambda d: replace_member(d, 0, "0000000001.json", NESTED),
                                     "sample 0000000001 has metadata nested more deeply than a reader follows",
                                     True),
    "member named with ../": (lambda d: rename_member(d, 0, "0000000001.json", "../0000000001.json"),
                              "holds member '../0000000001.json', whose name does not start with a 10-digit "
                              "anchor key", False),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_trainer_and_verify_refuse_the_same_crafted_set_in_the_same_words(tmp_path: Path, case: str):
    damage, says, unread_members = HOSTILE[case]
    write_synthetic_set(tmp_path / "set")
    damage(tmp_path / "set")

    every_reader_refuses(tmp_path / "set", says, unread_members=unread_members)
    verified = run_in_process(shards_cli, "python -m shards", "verify", tmp_path / "set", "--workers", 1,
                              "--no-progress")
    trained = run_in_process(train_main, "train/main.py", "--data", tmp_path / "set", "--out", tmp_path / "run",
                             *TRAIN)

    assert verified.returncode == 1 and verified.stdout.count("\n") == 1 and says in verified.stdout, verified
    assert trained.returncode == 2 and trained.stderr.count("\n") == 1, trained.stderr
    assert trained.stderr.startswith("error: shard ") and says in trained.stderr, trained.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_skip_corrupt_skips_a_group_found_broken_at_every_later_read(tmp_path: Path):
    write_synthetic_set(tmp_path, groups=8)
    replace_member(tmp_path, 0, "0000000001.latents.npy", pickled_npy())
    loader = build_loader([DataSource(open_set(str(tmp_path)))], batch_size=2, augment=AugmentConfig(crop_size=8),
                          num_workers=0, skip_corrupt=True)

    batches = [batch for epoch in range(3) for batch in loader.epoch(epoch)]

    anchors = [anchor for batch in batches for anchor in batch.group_ids.tolist()]
    assert 1 not in anchors and set(anchors) == {0, 2, 3, 4, 5, 6, 7}
    assert sum(batch.skipped for batch in batches) >= 3  # once per read of its shard
