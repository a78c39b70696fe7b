"""Preemption: a run killed with SIGKILL inside an epoch and resumed with --resume ends where an
uninterrupted run ends. Real torchrun with gloo, real processes killed as a scheduler kills them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

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


def command(ranks: int, data: Path, run: Path, *extra: object) -> list[str]:
    args = ["--data", data, "--out", run, "--epochs", EPOCHS, "--batch-size", GLOBAL_BATCH // ranks,
            "--backbone", "convnet-small", "--workers", 1, "--log-every", 1, "--save-every-steps", SAVE_EVERY,
            "--warmup", 0, "--no-progress", *extra]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
            str(TRAIN), *map(str, args)]


def train(ranks: int, data: Path, run: Path, *extra: object) -> None:
    result = subprocess.run(command(ranks, data, run, *extra), env=cli_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def logged_steps(run: Path) -> list[int]:
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def train_and_kill(ranks: int, data: Path, run: Path, after_step: int) -> int:
    """Starts the run and SIGKILLs every process of it once it has logged ``after_step``; the step
    its last.pt holds."""
    process = subprocess.Popen(command(ranks, data, run), env=cli_env(), stdout=subprocess.DEVNULL,
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
