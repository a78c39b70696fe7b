"""Preemption: a run killed with SIGKILL inside an epoch and resumed with --resume ends where an
uninterrupted run ends. Real torchrun with gloo, real processes killed as a scheduler kills them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from generate.cli import main as generate_main
from tests.cli import PLUGIN, REPO, cli_env, kill_every_process_of

TRAIN = REPO / "train" / "main.py"
STEPS_PER_EPOCH, EPOCHS, SAVE_EVERY = 8, 2, 3
GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "set"
    result = CliRunner().invoke(generate_main, [
        "--generator", f"{PLUGIN}:make_conditional", "--n-anchors", str(STEPS_PER_EPOCH * GLOBAL_BATCH),
        "--views", "3", "--groups-per-shard", "16", "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def command(ranks: int, data: Path, run: Path, *extra: object, batch_of: int | None = None) -> list[str]:
    args = ["--data", data, "--out", run, "--epochs", EPOCHS, "--batch-size", GLOBAL_BATCH // (batch_of or ranks),
            "--backbone", "convnet-small", "--workers", 1, "--log-every", 1, "--save-every-steps", SAVE_EVERY,
            "--warmup", 0, "--no-progress", *extra]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            str(TRAIN), *map(str, args)]


def train(ranks: int, data: Path, run: Path, *extra: object, batch_of: int | None = None) -> str:
    """The run's output; ``batch_of``: the ranks whose per-rank batch to give (the run's start)."""
    result = subprocess.run(command(ranks, data, run, *extra, batch_of=batch_of), env=cli_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def logged_steps(run: Path) -> list[int]:
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def logged_losses(run: Path) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars("train/loss")]


def train_and_kill(ranks: int, data: Path, run: Path, after_step: int, *extra: object) -> int:
    """Starts the run and SIGKILLs every process of it once it has logged ``after_step``; the step
    its last.pt holds."""
    process = subprocess.Popen(command(ranks, data, run, *extra), env=cli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while max(logged_steps(run), default=0) < after_step:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    kill_every_process_of(run)  # torchrun starts each rank in a session of its own
    process.wait()
    return torch.load(run / "last.pt", weights_only=True)["step"]


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_run_killed_inside_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path, data, ranks):
    reference, run = tmp_path / "reference", tmp_path / "killed"
    train(ranks, data, reference)
    saved = train_and_kill(ranks, data, run, after_step=SAVE_EVERY + 1)
    assert 0 < saved % STEPS_PER_EPOCH, f"killed at an epoch's end (step {saved}): not a mid-epoch resume"

    train(ranks, data, run, "--resume")
    expected, resumed = (torch.load(folder / "last.pt", weights_only=True) for folder in (reference, run))
    assert resumed["step"] == expected["step"] == EPOCHS * STEPS_PER_EPOCH
    assert expected["model"].keys() == resumed["model"].keys()
    for name, weights in expected["model"].items():
        assert torch.equal(weights, resumed["model"][name]), f"{name} differs after the resume"
    assert logged_steps(run) == logged_steps(reference)
    # the killed run's events past its checkpoint are purged: each step once, as uninterrupted
    assert logged_losses(run) == logged_losses(reference)


def test_a_run_without_loader_workers_resumed_at_an_epochs_end_ends_with_the_uninterrupted_weights(tmp_path, data):
    """--workers 0 augments with the training process's generator, which the checkpoint holds; nothing
    the resumed run starts (its loader's iterator) may draw from it before the epoch's batches do."""
    in_process, epoch_ends_only = ("--workers", 0), ("--save-every-steps", 1000)
    reference, run = tmp_path / "reference", tmp_path / "killed"
    train(1, data, reference, *in_process, *epoch_ends_only)
    saved = train_and_kill(1, data, run, STEPS_PER_EPOCH + 2, *in_process, *epoch_ends_only)
    assert saved == STEPS_PER_EPOCH

    train(1, data, run, *in_process, *epoch_ends_only, "--resume")
    expected, resumed = (torch.load(folder / "last.pt", weights_only=True)["model"] for folder in (reference, run))
    for name, weights in expected.items():
        assert torch.equal(weights, resumed[name]), f"{name} differs after the resume"


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("started, resumed", [(2, 1), (1, 2)])
def test_a_run_killed_inside_an_epoch_resumes_on_another_number_of_ranks(tmp_path, data, started, resumed):
    """The same command on another number of ranks keeps the global batch, the schedule and the
    batches (tests/train/test_data.py checks the batches themselves). The weights differ from the
    reference's: batch norm takes its statistics over each rank's share of the batch."""
    reference, run = tmp_path / "reference", tmp_path / "killed"
    train(started, data, reference)
    saved = train_and_kill(started, data, run, SAVE_EVERY + 1)
    assert 0 < saved % STEPS_PER_EPOCH, f"killed at an epoch's end (step {saved}): not a mid-epoch resume"

    output = train(resumed, data, run, "--resume", batch_of=started)
    assert (f"Resumed on {resumed} ranks, started on {started}: each rank takes {GLOBAL_BATCH // resumed} "
            f"samples per step, so the global batch stays {GLOBAL_BATCH}") in output
    assert torch.load(run / "last.pt", weights_only=True)["step"] == EPOCHS * STEPS_PER_EPOCH
    expected, got = read_metrics(reference), read_metrics(run)
    assert [record["step"] for record in got] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert [record["lr"] for record in got] == [record["lr"] for record in expected]
    # the steps before the kill are the reference's; after it, the same data on other ranks
    assert [record["loss"] for record in got[:saved]] == [record["loss"] for record in expected[:saved]]
    assert all(math.isfinite(record["loss"]) for record in got)


def test_batch_norm_synchronised_on_cpu_ranks_is_refused_in_one_sentence(tmp_path, data):
    result = subprocess.run(command(2, data, tmp_path / "run", "--sync-bn"), env=cli_env(), capture_output=True,
                            text=True, timeout=600)
    # torchrun reports a failed rank with its own traceback; none runs through the trainer's code
    assert result.returncode != 0 and f'File "{REPO / "train"}' not in result.stderr
    assert "--sync-bn needs CUDA devices (torch synchronises batch norm on GPUs only); drop it on CPU." in result.stderr
    assert not (tmp_path / "run").exists()
