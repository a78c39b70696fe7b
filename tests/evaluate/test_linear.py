"""The linear probe: settings chosen on a stratified split of --train (or, with few labels, by
cross-validation within each seeded draw), accuracy measured on --val."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from evaluate.cli import cli
from evaluate.features import EvaluationError, Features
from evaluate.linear import (LOW_LABEL_WEIGHT_DECAY_GRID, LR_GRID, WEIGHT_DECAY_GRID, LowLabelSettings,
                             ProbeSettings, check_enough_labels, choose_candidate, cross_validation_folds, draw_labelled,
                             evaluate_low_label, standardise, stratified_holdout, train_classifiers)
from tests.cli import assert_clean_failure, run_module
from tests.evaluate.helpers import CLASSES, write_checkpoint, write_labelled_set


def invoke_linear(checkpoint: Path, train: Path, val: Path, *extra: object) -> Result:
    result = CliRunner().invoke(cli, ["linear", "--checkpoint", str(checkpoint), "--train", str(train),
                                      "--val", str(val), *map(str, extra)])
    assert result.exit_code == 0, result.output
    return result


def read_linear_results(checkpoint: Path, extra: tuple[object, ...], metric: str) -> dict:
    out = Path(extra[extra.index("--out") + 1]) if "--out" in extra else checkpoint.parent / "eval" / metric
    return json.loads((out / "results.json").read_text())


def run_linear(checkpoint: Path, train: Path, val: Path, *extra: object, metric: str = "linear") -> dict:
    invoke_linear(checkpoint, train, val, *extra)
    return read_linear_results(checkpoint, extra, metric)


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


def test_the_candidate_with_the_best_held_out_accuracy_is_chosen_and_ties_go_to_the_lower_loss():
    labels = torch.tensor([0, 1, 1, 0])
    right, wrong = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]]), torch.zeros(4, 2)
    wrong[:, 0] = 1.0  # says class 0 everywhere: half right
    confident = right * 5  # as accurate as ``right``, with a lower loss
    best, accuracy = choose_candidate(torch.stack([wrong, right, confident]), labels)
    assert accuracy == [0.5, 1.0, 1.0] and best == 2
    assert choose_candidate(torch.stack([wrong, right]), labels)[0] == 1


def test_features_are_standardised_with_the_statistics_of_the_fitting_rows_alone():
    fit = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 5.0, 0.1]) + 3.0
    other = fit[:10] + 1.0
    standard_fit, standard_other = standardise(fit, other)
    assert torch.allclose(standard_fit.mean(dim=0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(standard_fit.std(dim=0), torch.ones(3), atol=1e-5)
    assert torch.allclose(standard_other, standard_fit[:10] + 1.0 / fit.std(dim=0), atol=1e-5)


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


def gaussian_blobs(centres: np.ndarray, count: int, seed: int) -> Features:
    """``count`` features, classes in turn, each its class centre plus unit Gaussian noise."""
    labels = np.arange(count) % len(centres)
    noise = np.random.default_rng(seed).standard_normal((count, centres.shape[1]))
    return Features((centres[labels] + noise).astype(np.float32), labels)


@pytest.fixture(scope="module")
def blobs() -> dict[str, Features]:
    centres = np.random.default_rng(0).standard_normal((10, 32))
    return {"train": gaussian_blobs(centres, 400, seed=1), "val": gaussian_blobs(centres, 200, seed=2),
            "other_val": gaussian_blobs(centres, 150, seed=3)}


def low_label(blobs: dict[str, Features], val: str = "val", seed: int = 0):
    return evaluate_low_label(blobs["train"], blobs[val], [str(label) for label in range(10)],
                              LowLabelSettings(labels_per_class=5, draws=3), ProbeSettings(epochs=40, seed=seed),
                              torch.device("cpu"))


def test_draws_are_balanced_and_seeded_by_seed_and_draw():
    labels = np.repeat([0, 1, 2], [12, 20, 15])

    rows = draw_labelled(labels, 3, 5, seed=0, draw=0)

    assert np.bincount(labels[rows]).tolist() == [5, 5, 5] and len(set(rows.tolist())) == 15
    assert np.array_equal(draw_labelled(labels, 3, 5, seed=0, draw=0), rows)
    assert not np.array_equal(draw_labelled(labels, 3, 5, seed=1, draw=0), rows)
    assert not np.array_equal(draw_labelled(labels, 3, 5, seed=0, draw=1), rows)


def test_cross_validation_folds_hold_every_class():
    folds = cross_validation_folds(num_classes=3, labels_per_class=7, count=5)
    labels = np.repeat([0, 1, 2], 7)  # a draw's rows come class after class

    assert [np.bincount(labels[folds == fold]).tolist() for fold in range(5)] == \
        [[2, 2, 2], [2, 2, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1]]


def test_low_label_probe_beats_chance_by_far_and_is_deterministic(blobs):
    result = low_label(blobs)

    assert result.top1 > 0.8  # chance is 1 / 10
    draws = result.over_draws["per_draw"]
    top1 = [draw["top1"] for draw in draws]
    assert [draw["draw"] for draw in draws] == [0, 1, 2]
    assert result.top1 == pytest.approx(np.mean(top1))
    assert result.over_draws["top1_std"] == pytest.approx(np.std(top1, ddof=1))
    assert (result.over_draws["top1_min"], result.over_draws["top1_max"]) == (min(top1), max(top1))
    assert all(draw["lr"] in LR_GRID and draw["weight_decay"] in LOW_LABEL_WEIGHT_DECAY_GRID for draw in draws)
    assert result.settings["folds"] == 5 and "cross-validation" in result.settings["regularisation"]
    assert low_label(blobs) == result


def test_low_label_settings_are_chosen_without_the_validation_set(blobs):
    chosen = ("lr", "weight_decay", "cv_top1")

    def choices(val: str) -> list[dict]:
        return [{key: draw[key] for key in chosen} for draw in low_label(blobs, val).over_draws["per_draw"]]

    assert choices("other_val") == choices("val")


def test_low_label_settings_need_two_labels_per_class_and_two_draws():
    for labels_per_class, draws in ((1, 5), (10, 1)):
        with pytest.raises(ValueError, match="at least 2 labels per class and 2 draws"):
            LowLabelSettings(labels_per_class, draws)


def test_a_class_short_of_labels_is_refused_in_one_sentence():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])

    with pytest.raises(EvaluationError, match=r"^--labels-per-class 3 needs 3 training images of every class, "
                                              r"but class 'green' has 2\.$"):
        check_enough_labels(labels, CLASSES[:3], 3)
    with pytest.raises(EvaluationError, match=r"but 2 classes have fewer \(class 'blue' has 0\)\.$"):
        check_enough_labels(labels[:5], CLASSES[:3], 3)


@pytest.fixture(scope="module")
def low_label_run(inputs) -> tuple[dict, str]:
    """results.json and the printed line of a low-label probe of 5 labels per class, 3 draws."""
    extra = ("--labels-per-class", 5, "--draws", 3, "--epochs", 30)
    result = invoke_linear(inputs["checkpoint"], inputs["train"], inputs["val"], *extra)
    return read_linear_results(inputs["checkpoint"], extra, "linear@5"), result.stdout


def test_low_label_probe_from_the_command_line(low_label_run, results):
    low_label_results, _ = low_label_run
    assert low_label_results["metric"] == "linear@5"
    assert low_label_results["top1"] > 0.4  # chance is 1 / 5
    draws = low_label_results["per_draw"]
    assert len(draws) == 3 and low_label_results["top1"] == pytest.approx(np.mean([d["top1"] for d in draws]))
    assert low_label_results["top1_min"] <= low_label_results["top1"] <= low_label_results["top1_max"]
    assert low_label_results["top1_std"] >= 0 and low_label_results["top5"] is not None
    settings = low_label_results["settings"]
    assert (settings["labels_per_class"], settings["draws"], settings["folds"], settings["seed"]) == (5, 3, 5, 0)
    for key in ("checkpoint_sha256", "train_set", "val_set", "run"):
        assert low_label_results[key] == results[key]  # bound to the same checkpoint and manifests


def test_low_label_probe_prints_the_mean_the_spread_and_every_draw(low_label_run):
    low_label_results, printed = low_label_run

    draws = ", ".join(f"{100 * draw['top1']:.1f}" for draw in low_label_results["per_draw"])
    assert f"linear@5: top-1 {100 * low_label_results['top1']:.1f}% (mean of 3 draws: std " in printed
    assert f"draws {draws})" in printed and len(printed.strip().splitlines()) == 1


def test_low_label_refusals_from_the_command_line(inputs, tmp_path):
    short = write_labelled_set(tmp_path / "short", groups=9, seed=4)  # 2 images of each class but violet's 1
    common = ["--checkpoint", inputs["checkpoint"], "--val", inputs["val"]]

    message = "error: --labels-per-class 2 needs 2 training images of every class, but class 'violet' has 1."
    result = run_module("evaluate", "linear", *common, "--train", short, "--labels-per-class", 2)
    assert_clean_failure(result, message)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == message

    # The same path to the user, in-process (an interpreter start less).
    refused = CliRunner().invoke(cli, ["linear", *map(str, common), "--train", str(inputs["train"]), "--draws", "3",
                                       "--out", str(tmp_path / "out")])
    assert refused.exit_code == 2 and refused.stderr.strip().splitlines() == [
        "error: --draws needs --labels-per-class, the number of labelled images of each class in a draw."]
    assert not (tmp_path / "out").exists()
