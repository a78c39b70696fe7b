"""The trainer on a set served over HTTP: a drop and a stall that heal are invisible (the weights
equal those of training on the folder); a shard that stays unreadable stops the run in one
sentence, or with --skip-corrupt is skipped and counted."""

from __future__ import annotations

import itertools
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from tests.cli import assert_clean_failure, run_in_process
from tests.shards.faulty_server import FaultyServer
from shards.schema import shard_name
from train.data import shard_reads
from train.main import main as train_main

pytestmark = pytest.mark.usefixtures("quick_network", "bounded_case")
FAST = ["--batch-size", "8", "--backbone", "convnet-small", "--workers", "0", "--log-every", "1",
        "--no-progress", "--warmup", "0"]


def train(data: str | Path, out: Path, *extra: str, epochs: int = 1):
    return run_in_process(train_main, "train/main.py", "--data", data, "--out", out, "--epochs", epochs, *FAST, *extra)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_a_drop_and_a_stall_that_heal_leave_the_weights_of_the_folder_run(tmp_path: Path, served_folder: Path,
                                                                         server: FaultyServer):
    server.faults.update({"shard-000001.tar": "drop-once", "shard-000002.tar": "stall-once"})

    local = train(served_folder / "set", tmp_path / "local")
    remote = train(f"{server.url}/set", tmp_path / "remote")

    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    assert [start > 0 for name, start in server.requests if name == "shard-000001.tar"][:2] == [False, True]
    expected, got = weights(tmp_path / "local"), weights(tmp_path / "remote")
    assert expected.keys() == got.keys() and all(torch.equal(expected[key], got[key]) for key in expected)


def read_once_in_the_first_epoch(shards: int) -> str:
    """A shard that the first epoch of a run with --batch-size 2 reads once: that epoch reads its 16 groups
    and fills a shuffle buffer of 8, so at most 7 shard reads of 4 groups (train.data.shard_reads)."""
    order = [shard for shard, _ in itertools.islice(shard_reads(shards, seed=0, epoch=0, set_index=0, rank=0,
                                                                world_size=1, worker=0, num_workers=1), 7)]
    return shard_name(next(shard for shard in range(shards) if order.count(shard) == 1))


def test_a_shard_that_stays_unreadable_stops_the_run_in_one_sentence_and_resume_continues(
        tmp_path: Path, server: FaultyServer):
    unreadable = read_once_in_the_first_epoch(4)
    server.faults[unreadable] = "stall-later"  # read whole in the first epoch, then never again
    url, run, small_batches = f"{server.url}/set", tmp_path / "run", ("--batch-size", "2")

    stopped = train(url, run, *small_batches, epochs=2)
    del server.faults[unreadable]
    resumed = train(url, run, *small_batches, "--resume", epochs=2)

    assert_clean_failure(stopped, f"{url}/{unreadable} could not be read: no data for 1 s (2 tries).")
    assert stopped.stderr.count("\n") == 1
    assert f"Training stopped on data it cannot read; {run / 'last.pt'} holds step 8, where --resume continues." \
        in stopped.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert f"Trained to step 16; checkpoint {run / 'last.pt'}." in resumed.stdout


def test_skip_corrupt_skips_a_shard_that_stays_unreadable_and_counts_it(tmp_path: Path, server: FaultyServer):
    server.faults["shard-000002.tar"] = "stall"

    result = train(f"{server.url}/set", tmp_path / "run", "--skip-corrupt")

    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(record["skipped"] for record in metrics) >= 1


def test_skip_corrupt_skips_a_shard_the_network_failed_for_that_read_only(tmp_path: Path, server: FaultyServer):
    server.faults["shard-000002.tar"] = "error-twice"  # one whole read fails (2 tries), then the network heals

    result = train(f"{server.url}/set", tmp_path / "run", "--skip-corrupt", epochs=2)

    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(record["skipped"] for record in metrics) >= 1
    assert server.times_asked("shard-000002.tar") > 2  # read again once the network healed


def test_skip_corrupt_does_not_read_again_a_shard_found_truncated_on_the_server(tmp_path: Path,
                                                                               server: FaultyServer):
    server.faults["shard-000002.tar"] = "short"

    result = train(f"{server.url}/set", tmp_path / "run", "--skip-corrupt", epochs=2)

    assert result.returncode == 0, result.stderr
    # One read: the body, then a request resumed at its end, which has no byte more; never again.
    assert server.times_asked("shard-000002.tar") == 2


def test_a_shard_the_network_failed_to_bring_is_checked_whole_at_its_next_read(tmp_path: Path, served_folder: Path):
    shutil.copytree(served_folder / "set", tmp_path / "served" / "set")
    shard = tmp_path / "served" / "set" / "shard-000002.tar"
    with tarfile.open(shard) as tar:  # a latent value changed: the structure holds, the sha256 does not
        latents = next(member for member in tar.getmembers() if member.name.endswith(".latents.npy"))
    data = bytearray(shard.read_bytes())
    data[latents.offset_data + latents.size - 1] ^= 0xFF
    shard.write_bytes(bytes(data))

    with FaultyServer(tmp_path / "served", faults={shard.name: "error-twice"}) as server:
        result = train(f"{server.url}/set", tmp_path / "run", "--skip-corrupt", epochs=2)

    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # The failed read, then the next read, which hashes the shard, finds it changed and skips it from then on.
    assert sum(record["skipped"] for record in metrics) >= 2
    assert server.times_asked(shard.name) == 3
