"""``python -m evaluate`` as a user runs it: the report table, and one sentence for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from click.testing import CliRunner

from evaluate.cli import cli
from evaluate.report import COLUMNS, RUN_COLUMNS
from tests.cli import assert_clean_failure, run_module
from tests.evaluate.helpers import write_checkpoint, write_labelled_set
from tests.shards.helpers import break_first_view, truncate_shard
from tests.shards.hostile import rehash_row
from train.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {"train": write_labelled_set(root / "train", groups=30, seed=1),
            "val": write_labelled_set(root / "val", groups=15, seed=2),
            "three_classes": write_labelled_set(root / "three", groups=9, seed=3, classes=3),
            "unlabelled": write_labelled_set(root / "unlabelled", groups=5, seed=4, labelled=False),
            "larger": write_labelled_set(root / "larger", groups=5, seed=5, size=48),
            "checkpoint": write_checkpoint(root / "run" / "last.pt")}


def evaluate(*args: object):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def assert_one_error_line(stderr: str) -> None:
    """One sentence on the last line; only progress bars may come before it."""
    *progress, last = stderr.rstrip("\n").split("\n")
    assert last.startswith("error: ") and "Traceback" not in stderr, stderr
    assert all(line.lstrip("\r").startswith("features:") for line in progress if line), stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sets) -> Path:
    """runs/full (linear and kNN), runs/knn-only, runs/pending (config.yaml alone), runs/notes.txt."""
    root = tmp_path_factory.mktemp("runs")
    full = write_checkpoint(root / "full" / "last.pt")
    knn_only = write_checkpoint(root / "knn-only" / "last.pt", seed=1, method="simclr", epochs=5,
                                data=["sets/a", "sets/b"])
    for metric, checkpoint in (("linear", full), ("knn", full), ("knn", knn_only)):
        result = evaluate(metric, "--checkpoint", checkpoint, "--train", sets["train"], "--val", sets["val"],
                          *(["--k", 5] if metric == "knn" else ["--epochs", 10]))
        assert result.exit_code == 0, result.output
    (root / "pending").mkdir()
    (root / "pending" / "config.yaml").write_text(yaml.safe_dump({"data": ["sets/c"], "method": "supcon",
                                                                  "epochs": 7, "backbone": "resnet18"}))
    (root / "notes.txt").write_text("not a run")
    return root


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.strip().splitlines()]


def top1_cell(results: Path) -> str:
    return f"{100 * json.loads(results.read_text())['top1']:.1f}"


def test_report_prints_one_table_of_every_run_folder(runs):
    result = run_module("evaluate", "report", *sorted(runs.iterdir()))  # what `report runs/*` passes

    assert result.returncode == 0, result.stderr
    header, rule, *rows = table_rows(result.stdout)
    assert tuple(header) == COLUMNS and set(rule) == {"---"}
    full, knn_only, pending = (str(runs / name) for name in ("full", "knn-only", "pending"))
    assert rows == [
        [full, "sets/colours", "supcon", "3", top1_cell(runs / "full/eval/linear/results.json"),
         top1_cell(runs / "full/eval/knn/results.json")],
        [knn_only, "sets/a + sets/b", "simclr", "5", "-", top1_cell(runs / "knn-only/eval/knn/results.json")],
        [pending, "sets/c", "supcon", "7", "-", "-"],
    ]
    assert "skipped" in result.stderr and "notes.txt" in result.stderr


def test_report_adds_a_column_for_every_low_label_probe(sets, runs, tmp_path):
    low = write_checkpoint(tmp_path / "low" / "last.pt", weights_backbone="convnet-small")
    for labels_per_class in (3, 2):
        result = evaluate("linear", "--checkpoint", low, "--train", sets["train"], "--val", sets["val"],
                          "--labels-per-class", labels_per_class, "--draws", 2, "--epochs", 10)
        assert result.exit_code == 0, result.output

    result = evaluate("report", low.parent, runs / "full")

    assert result.exit_code == 0, result.output
    header, _, low_row, full_row = table_rows(result.stdout)
    assert header == [*RUN_COLUMNS, "top-1 linear", "top-1 linear@2", "top-1 linear@3", "top-1 kNN"]
    spread = [json.loads((low.parent / "eval" / f"linear@{n}" / "results.json").read_text()) for n in (2, 3)]
    assert low_row[4:] == ["-", *(f"{100 * r['top1']:.1f} ± {100 * r['top1_std']:.1f}" for r in spread), "-"]
    assert full_row[4:] == [top1_cell(runs / "full/eval/linear/results.json"), "-", "-",
                            top1_cell(runs / "full/eval/knn/results.json")]


def test_report_refuses_a_damaged_result_and_no_run_at_all(runs, tmp_path):
    damaged = tmp_path / "damaged"
    (damaged / "eval" / "knn").mkdir(parents=True)
    (damaged / "eval" / "knn" / "results.json").write_text("{not json")

    for args, fragment in (([damaged], "is not valid JSON"), ([runs / "notes.txt"], "None of the given runs")):
        result = evaluate("report", *args)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert fragment in result.stderr


def corrupt_checkpoint(folder: Path) -> Path:
    path = folder / "corrupt.pt"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    return path


def checkpoint_without_crop_size(folder: Path) -> Path:
    state = torch.load(write_checkpoint(folder / "full.pt"), weights_only=True)
    del state["config"]["crop_size"]
    save_checkpoint(folder / "bare.pt", state)
    return folder / "bare.pt"


def checkpoint_with(folder: Path, name: str, **entries: object) -> Path:
    """A trainer's checkpoint with some of its top-level entries replaced, as another program might write."""
    state = torch.load(write_checkpoint(folder / "full.pt"), weights_only=True)
    save_checkpoint(folder / name, {**state, **entries})
    return folder / name


def damaged_set(folder: Path, damage: Callable[[Path], object]) -> Path:
    """A copy of the training set whose second shard (groups 16..29) is damaged."""
    location = write_labelled_set(folder / "damaged", groups=30, seed=1)
    damage(location / "shard-000001.tar")
    rehash_row(location, 1)  # else its changed sha256 is what evaluate finds first
    return location


# case -> (the arguments it replaces, given the sets and a temporary folder; what the message says)
BAD_INPUT: dict[str, tuple[Callable[[dict, Path], dict], str]] = {
    "missing checkpoint": (lambda sets, tmp: {"--checkpoint": tmp / "none.pt"}, "No checkpoint at"),
    "corrupt checkpoint": (lambda sets, tmp: {"--checkpoint": corrupt_checkpoint(tmp)},
                           "is not a readable genviews checkpoint"),
    "weights of another backbone": (
        lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "other.pt", backbone="resnet50")},
        "holds resnet18 (small-image stem) weights but its config names resnet50 (small-image stem)"),
    "small convnet weights": (
        lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "convnet.pt", weights_backbone="convnet-small",
                                                           backbone="resnet18")},
        "holds convnet-small"),
    "resnet weights for the small convnet": (
        lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "resnet.pt", backbone="convnet-small")},
        "holds resnet18 (small-image stem) weights but its config names convnet-small"),
    "another stem": (
        lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "stem.pt", small_images=False)},
        "holds resnet18 (small-image stem) weights but its config names resnet18 (ImageNet stem)"),
    "unknown backbone": (lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "vgg.pt", backbone="vgg11")},
                         "names backbone 'vgg11' in its config"),
    "checkpoint of another program": (lambda sets, tmp: {"--checkpoint": checkpoint_without_crop_size(tmp)},
                                      "has no crop_size in its config"),
    "model that is not a table": (lambda sets, tmp: {"--checkpoint": checkpoint_with(tmp, "list.pt", model=[1, 2])},
                                  "holds a model that is not a table of named tensors"),
    "config that is not a dictionary": (
        lambda sets, tmp: {"--checkpoint": checkpoint_with(tmp, "text.pt", config="resnet18")},
        "holds a config that is not a dictionary"),
    "crop size that is text": (lambda sets, tmp: {"--checkpoint": write_checkpoint(tmp / "crop.pt", crop_size="32")},
                               "has a crop_size in its config that is not a positive integer"),
    "truncated shard": (lambda sets, tmp: {"--train": damaged_set(tmp, truncate_shard)},
                        "shard-000001.tar could not be read (unexpected end of data); python -m shards verify"),
    "undecodable image": (lambda sets, tmp: {"--train": damaged_set(tmp, break_first_view)},
                          "shard-000001.tar: sample 0000000016 view 0 is not a decodable JPEG"),
    "set of another image size": (lambda sets, tmp: {"--val": sets["larger"]},
                                  "holds 48-px images but"),
    "unlabelled set": (lambda sets, tmp: {"--train": sets["unlabelled"]}, "is unlabelled"),
    "missing set": (lambda sets, tmp: {"--val": tmp / "no-such-set"}, "no-such-set"),
    "other class list": (lambda sets, tmp: {"--val": sets["three_classes"]}, "different class lists"),
}


def bad_arguments(case: str, sets: dict[str, Path], tmp_path: Path) -> list[str]:
    replace, _ = BAD_INPUT[case]
    options = {"--checkpoint": sets["checkpoint"], "--train": sets["train"], "--val": sets["val"],
               **replace(sets, tmp_path)}
    return [str(item) for pair in options.items() for item in pair]


@pytest.mark.parametrize("metric", ["linear", "knn"])
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_one_sentence(sets, tmp_path, case, metric):
    result = evaluate(metric, *bad_arguments(case, sets, tmp_path))

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert BAD_INPUT[case][1] in result.stderr
    assert_one_error_line(result.stderr)
    assert not (tmp_path / "eval").exists() and not (sets["checkpoint"].parent / "eval").exists()


# One case per metric from a shell (each is a 5-second interpreter start); every case runs in-process above.
@pytest.mark.parametrize("metric, case", [("linear", "weights of another backbone"),
                                          ("knn", "undecodable image")])
def test_bad_input_from_the_command_line_has_no_traceback(sets, tmp_path, metric, case):
    result = run_module("evaluate", metric, *bad_arguments(case, sets, tmp_path))

    assert_clean_failure(result, BAD_INPUT[case][1])
    assert_one_error_line(result.stderr)


def test_no_progress_extracts_features_without_a_progress_bar(sets, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt", seed=2)  # features not cached yet
    result = evaluate("knn", "--checkpoint", checkpoint, "--train", sets["train"], "--val", sets["val"], "--k", 5,
                      "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and list((tmp_path / "run" / "eval" / "features").glob("features-*.npz"))
