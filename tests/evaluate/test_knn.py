"""Weighted kNN: cosine neighbours voting exp(sim / T) for their class."""

from __future__ import annotations

import json
import math

import torch
from click.testing import CliRunner

from evaluate.cli import cli
from evaluate.knn import knn_scores
from tests.evaluate.helpers import write_checkpoint, write_labelled_set


def test_scores_sum_exp_similarity_over_temperature_of_the_k_nearest():
    bank = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[5.0, 0.0], [0.0, 0.5]])

    scores = knn_scores(bank, labels, query, num_classes=3, k=2, temperature=0.5)

    diagonal = math.sqrt(0.5)  # cosine of 45 degrees
    expected = torch.tensor([[math.exp(1 / 0.5), math.exp(diagonal / 0.5), 0.0],
                             [0.0, math.exp(1 / 0.5) + math.exp(diagonal / 0.5), 0.0]])
    torch.testing.assert_close(scores, expected)


def test_knn_writes_sane_results_next_to_the_checkpoint(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt")
    train = write_labelled_set(tmp_path / "train", groups=60, seed=1)
    val = write_labelled_set(tmp_path / "val", groups=30, seed=2)

    result = CliRunner().invoke(cli, ["knn", "--checkpoint", str(checkpoint), "--train", str(train),
                                      "--val", str(val), "--k", "10", "--temperature", "0.1"])

    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "eval" / "knn" / "results.json").read_text())
    assert results["metric"] == "knn"
    assert 0.6 <= results["top1"] <= results["top5"] <= 1.0  # chance is 1 / 5
    assert results["settings"]["k"] == 10 and results["settings"]["temperature"] == 0.1
    assert results["settings"]["crop_size"] == 32
    assert results["train_set"]["groups"] == 60 and results["val_set"]["groups"] == 30
    assert "top-1" in result.stdout


def test_k_above_the_training_set_size_is_refused(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt")
    train = write_labelled_set(tmp_path / "train", groups=8, seed=1)

    result = CliRunner().invoke(cli, ["knn", "--checkpoint", str(checkpoint), "--train", str(train),
                                      "--val", str(train), "--k", "20"])

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "--k 20 is more than the 8 images" in result.stderr
