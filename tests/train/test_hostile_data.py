"""The trainer's input refuses a set that is not what its manifest says (or, with skip_corrupt,
skips and counts the shard), in one sentence; and a --data location never runs a command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from shards import CorruptSampleError, ShardSetError, open_set
from tests.shards.helpers import write_synthetic_set
from tests.shards.hostile import cut_before_group, jpeg_declaring, replace_member, replace_shard
from train.augment import AugmentConfig
from train.data import build_loader
from train.loop import stopped_on_data
from train.main import main as train_main
from train.sources import DataSource

TINY = AugmentConfig(crop_size=8)


def sha256_changed(directory: Path) -> None:
    shard = directory / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes().replace(b'"truncation":0.7', b'"truncation":0.9', 1))


HOSTILE = {
    "duplicate anchors across shards": (
        lambda d: replace_shard(d, 1, (d / "shard-000000.tar").read_bytes()),
        "shard-000001.tar holds sample 0000000000 where the manifest puts anchor 4."),
    "tar cut at a member boundary": (
        lambda d: replace_shard(d, 1, cut_before_group(d / "shard-000001.tar", 6)),
        "shard-000001.tar ends before anchor 6, which the manifest puts in it."),
    "sha256 mismatch": (sha256_changed, "shard-000001.tar has a sha256 that differs from the manifest"),
    "huge view": (lambda d: replace_member(d, 1, "0000000005.0.jpg", jpeg_declaring(30000, 30000)),
                  "sample 0000000005 view 0 declares 30000 x 30000 pixels"),
}


def loader_of(location: Path, skip_corrupt: bool = False):
    return build_loader([DataSource(open_set(str(location)))], batch_size=2, augment=TINY, num_workers=0,
                        skip_corrupt=skip_corrupt)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_trainer_refuses_a_damaged_shard_in_one_sentence(tmp_path: Path, case: str):
    damage, expected = HOSTILE[case]
    write_synthetic_set(tmp_path, groups=8, groups_per_shard=4)
    damage(tmp_path)

    with pytest.raises(CorruptSampleError) as error:
        list(loader_of(tmp_path).epoch(0))

    message = str(error.value)
    assert expected in message and "\n" not in message and "BufferedReader" not in message, message


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_skip_corrupt_skips_a_damaged_shard_and_counts_it(tmp_path: Path, case: str):
    damage, _ = HOSTILE[case]
    write_synthetic_set(tmp_path, groups=8, groups_per_shard=4)
    damage(tmp_path)
    loader = loader_of(tmp_path, skip_corrupt=True)

    batches = list(loader.epoch(0)) + list(loader.epoch(1))

    assert len(batches) == 8 and sum(batch.skipped for batch in batches) >= 2
    if case != "huge view":  # a damaged shard gives at most its first read, then is skipped whole
        from_damaged = [anchor for batch in batches for anchor in batch.group_ids.tolist() if anchor >= 4]
        assert len(from_damaged) <= 4, from_damaged


def test_a_pipe_in_a_shared_config_is_refused_without_running_it(tmp_path: Path):
    proof = tmp_path / "ran"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": [f"pipe:touch {proof}; echo"]}))

    result = CliRunner().invoke(train_main, ["--config", str(config), "--out", str(tmp_path / "run")])

    assert result.exit_code == 2 and not proof.exists()
    assert "is a pipe: location, which would run a shell command" in result.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(ShardSetError, match="is a pipe: location, which would run a shell command"):
        open_set(f"pipe:touch {proof}")


def test_a_shared_config_cannot_allow_pipes(tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"allow_pipe": True, "data": [f"pipe:touch {tmp_path / 'ran'}; echo"]}))

    result = CliRunner().invoke(train_main, ["--config", str(config), "--out", str(tmp_path / "run")])

    assert result.exit_code == 2 and not (tmp_path / "ran").exists()
    assert "sets allow_pipe, which only the command line may give" in result.output


@pytest.mark.parametrize("last, said", [
    (None, "before its first checkpoint."),
    (b"not a checkpoint\n", "does not read as a checkpoint."),
])
def test_a_run_stopped_by_data_says_where_it_stands_whatever_its_last_checkpoint_is(tmp_path: Path, last, said):
    if last is not None:
        (tmp_path / "last.pt").write_bytes(last)

    assert stopped_on_data(tmp_path).endswith(said)
