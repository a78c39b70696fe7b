"""Logs people read: TensorBoard events beside metrics.jsonl, and the training curves of several runs
drawn into one PNG by ``python -m evaluate report --curves``."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evaluate.cli import cli as evaluate_cli
from tests.cli import run_in_process
from tests.train.test_main import make_set, read_metrics, train_in_process

CURVES = ("loss", "lr", "images_per_s", "data_wait_share", "positive_similarity")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    data = make_set(root / "set", anchors=16)
    for name, lr in (("slow", "0.01"), ("fast", "0.1")):
        result = train_in_process("--data", data, "--out", root / name, "--backbone", "convnet-small", "--steps", 3,
                                  "--batch-size", 4, "--lr", lr, "--warmup", 0, "--workers", 0, "--log-every", 1,
                                  "--no-progress")
        assert result.returncode == 0, result.stderr
    return [root / "slow", root / "fast"]


def test_tensorboard_events_hold_what_metrics_jsonl_holds(runs):
    for run in runs:
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        for name in (*CURVES, "skipped"):
            logged = [(record["step"], record[name]) for record in read_metrics(run)]
            scalars = [(event.step, event.value) for event in events.Scalars(f"train/{name}")]
            assert [step for step, _ in scalars] == [step for step, _ in logged] == [1, 2, 3]
            assert [value for _, value in scalars] == pytest.approx([value for _, value in logged], rel=1e-6)


def test_report_draws_the_curves_of_several_runs_into_one_png(tmp_path, runs):
    result = run_in_process(evaluate_cli, "evaluate", "report", *runs, "--curves", tmp_path / "curves.png")
    assert result.returncode == 0, result.stderr
    assert "Drew the training curves of 2 of 2 runs" in result.stdout
    image = (tmp_path / "curves.png").read_bytes()
    assert image.startswith(b"\x89PNG") and len(image) > 10_000
