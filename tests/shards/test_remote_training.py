"""The trainer on a set served over HTTP: a drop and a stall that heal are invisible (the weights
equal those of training on the folder); a shard that stays unreadable stops the run in one
sentence, or with --skip-corrupt is skipped and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli import assert_clean_failure, run_in_process
from tests.shards.faulty_server import (FaultyServer, bounded_case, quick_network, served_folder,  # noqa: F401
                                        server)  # fixtures
from train.main import main as train_main

pytestmark = pytest.mark.usefixtures("quick_network", "bounded_case")
FAST = ["--epochs", "1", "--batch-size", "8", "--backbone", "convnet-small", "--workers", "0", "--log-every", "1",
        "--no-progress", "--warmup", "0"]


def train(data: str | Path, out: Path, *extra: str):
    return run_in_process(train_main, "train/main.py", "--data", data, "--out", out, *FAST, *extra)


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


def test_a_shard_that_stays_unreadable_stops_the_run_in_one_sentence(tmp_path: Path, server: FaultyServer):
    server.faults["shard-000002.tar"] = "stall"

    result = train(f"{server.url}/set", tmp_path / "run")

    assert_clean_failure(result, f"{server.url}/set/shard-000002.tar could not be read: no data for 1 s (2 tries).")


def test_skip_corrupt_skips_a_shard_that_stays_unreadable_and_counts_it(tmp_path: Path, server: FaultyServer):
    server.faults["shard-000002.tar"] = "stall"

    result = train(f"{server.url}/set", tmp_path / "run", "--skip-corrupt")

    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(record["skipped"] for record in metrics) >= 1
