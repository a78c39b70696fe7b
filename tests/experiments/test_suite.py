"""The suite at tiny size: a run over one tiny dataset (each dataset fits a GAN, the slow part of a
tiny run), its summary; the colour rule on a grey and a colour dataset."""

from __future__ import annotations

import json

from PIL import Image
from click.testing import CliRunner

from experiments import datasets
from experiments.suite import main as suite_main

TINY = ["--datasets", "digits", "--train-per-class", 5, "--test-per-class", 2, "--conditions", "none,gaussian",
        "--seeds", "0,1", "--sigma", 0.5, "--steps", 2, "--fit-steps", 2,
        "--extra", "--batch-size 4 --labels-per-class 2 --draws 2 --knn-k 1 --probe-epochs 1 --workers 0"]


def test_the_suite_summarises_every_dataset(tmp_path):
    result = CliRunner().invoke(suite_main, ["--out", str(tmp_path / "suite"), *map(str, TINY)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "suite" / "summary.json").read_text())
    assert [dataset["name"] for dataset in summary["datasets"]] == ["digits"]
    # the colour rule, from the data: digits are grey
    assert [dataset["color_augment"] for dataset in summary["datasets"]] == [False]
    assert "color_augment: false" in (tmp_path / "suite" / "digits" / "runs" / "none-simclr-seed0" / "config.yaml").read_text()
    for dataset in summary["datasets"]:
        assert dataset["images"] == "40 fit / 10 validation / 20 test"
        [row] = dataset["rows"]
        assert row["condition"] == "gaussian"
        for metric in ("linear@2", "knn", "linear"):
            low, high = row["vs_none"][metric]["interval"]
            assert low <= row["vs_none"][metric]["mean"] <= high
    table = (tmp_path / "suite" / "summary.md").read_text()
    assert table.count("### ") == 1 and "difference to none" in table
    with Image.open(tmp_path / "suite" / "suite.png") as image:
        assert image.width > 600


def test_the_colour_rule_reads_the_pixels(tmp_path):
    datasets.write_silhouettes(tmp_path / "grey", 2, 1, classes=2)
    datasets.write_glyphs(tmp_path / "colour", 2, 1)
    assert not datasets.needs_color_augment(tmp_path / "grey")
    assert datasets.needs_color_augment(tmp_path / "colour")


def test_an_unknown_dataset_is_one_sentence(tmp_path):
    result = CliRunner().invoke(suite_main, ["--out", str(tmp_path / "suite"), "--datasets", "digits,cifar"])
    assert result.exit_code == 2 and "Unknown dataset 'cifar'" in result.output
