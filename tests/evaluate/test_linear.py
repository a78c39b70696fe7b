"""The linear probe: settings chosen on a stratified split of --train, accuracy measured on --val."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from evaluate.cli import cli
from evaluate.linear import (LR_GRID, WEIGHT_DECAY_GRID, ProbeSettings, stratified_holdout,
                             train_classifiers)
from tests.evaluate.helpers import write_checkpoint, write_labelled_set


def run_linear(checkpoint: Path, train: Path, val: Path, *extra: object) -> dict:
    result = CliRunner().invoke(cli, ["linear", "--checkpoint", str(checkpoint), "--train", str(train),
                                      "--val", str(val), *map(str, extra)])
    assert result.exit_code == 0, result.output
    out = Path(extra[extra.index("--out") + 1]) if "--out" in extra else checkpoint.parent / "eval" / "linear"
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("linear")
    return {"train": write_labelled_set(root / "train", groups=60, seed=1),
            "val": write_labelled_set(root / "val", groups=30, seed=2),
            "other_val": write_labelled_set(root / "other-val", groups=25, seed=3),
            "checkpoint": write_checkpoint(root / "run" / "last.pt")}


@pytest.fixture(scope="module")
def results(inputs) -> dict:
    return run_linear(inputs["checkpoint"], inputs["train"], inputs["val"], "--epochs", 30)


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [10, 20, 1])

    fit, held = stratified_holdout(labels, 0.2, seed=0)

    assert sorted(np.concatenate([fit, held]).tolist()) == list(range(31))
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 4, 0]  # a class of one stays in fit
    assert np.array_equal(stratified_holdout(labels, 0.2, seed=0)[1], held)
    assert not np.array_equal(stratified_holdout(labels, 0.2, seed=1)[1], held)


def test_candidates_trained_together_equal_each_trained_alone():
    rng = np.random.default_rng(0)
    vectors = torch.from_numpy(rng.standard_normal((50, 8)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 3, 50))
    settings = ProbeSettings(epochs=5, batch_size=16)
    candidates = [(0.1, 0.0), (0.01, 1e-3)]

    together = train_classifiers(vectors, labels, 3, candidates, settings)
    alone = train_classifiers(vectors, labels, 3, candidates[1:], settings)

    torch.testing.assert_close(together.scores(vectors)[1], alone.scores(vectors)[0])
    assert not torch.allclose(together.scores(vectors)[0], together.scores(vectors)[1])


def test_classifier_separates_gaussian_blobs():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 16)) * 3
    labels = rng.integers(0, 4, 200)
    vectors = torch.from_numpy((centres[labels] + rng.standard_normal((200, 16))).astype(np.float32))

    model = train_classifiers(vectors[:150], torch.from_numpy(labels[:150]), 4, [(0.1, 0.0)],
                              ProbeSettings(epochs=20, batch_size=32))

    predicted = model.scores(vectors[150:])[0].argmax(dim=1).numpy()
    assert (predicted == labels[150:]).mean() > 0.9


def test_linear_results_are_sane_and_beat_chance(inputs, results):
    assert results["metric"] == "linear"
    assert 0.6 <= results["top1"] <= results["top5"] <= 1.0  # chance is 1 / 5
    settings = results["settings"]
    assert settings["lr"] in LR_GRID and settings["weight_decay"] in WEIGHT_DECAY_GRID
    assert settings["holdout_groups"] == 10 and 0 <= settings["holdout_top1"] <= 1
    assert settings["crop_size"] == 32 and settings["epochs"] == 30 and settings["seed"] == 0
    checkpoint_sha = hashlib.sha256(inputs["checkpoint"].read_bytes()).hexdigest()
    assert results["checkpoint_sha256"] == checkpoint_sha
    val_manifest = (inputs["val"] / "manifest.json").read_bytes()
    assert results["val_set"] == {"location": str(inputs["val"]), "groups": 30,
                                  "manifest_sha256": hashlib.sha256(val_manifest).hexdigest()}
    assert results["train_set"]["groups"] == 60
    assert results["run"] == {"method": "supcon", "data": ["sets/colours"], "data_manifests": None,
                              "epochs": 3, "backbone": "resnet18"}
    assert results["package_version"] and results["git_commit"]


def test_settings_are_chosen_without_the_validation_set(inputs, results, tmp_path):
    other = run_linear(inputs["checkpoint"], inputs["train"], inputs["other_val"], "--epochs", 30,
                       "--out", tmp_path)

    chosen = ("lr", "weight_decay", "holdout_top1", "holdout_groups")
    assert {key: other["settings"][key] for key in chosen} == {key: results["settings"][key] for key in chosen}
    assert other["val_set"]["groups"] == 25


def test_fewer_than_five_classes_report_no_top5(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt")
    train = write_labelled_set(tmp_path / "train", groups=24, seed=1, classes=3)
    val = write_labelled_set(tmp_path / "val", groups=12, seed=2, classes=3)

    results = run_linear(checkpoint, train, val, "--epochs", 20, "--holdout", 0.25)

    assert results["top5"] is None and results["top1"] > 1 / 3
    assert results["settings"]["holdout_groups"] == 6
