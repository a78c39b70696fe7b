"""The miniature experiment end to end at tiny size: the real command lines, in one process, from an
ImageFolder to table.md, views.png and results.json; resumed without redoing runs; refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from experiments.silhouettes import write_silhouettes
from experiments.views import main as views_main
from tests.cli import assert_clean_failure, run_module

TINY = ["--seeds", "0,1", "--steps", 3, "--batch-size", 8, "--fit-steps", 4, "--views", 2,
        "--labels-per-class", 2, "--draws", 2, "--knn-k", 3, "--probe-epochs", 3, "--workers", 0, "--sigmas", "1",
        "--no-progress"]


def run_views(*args: object) -> None:
    result = CliRunner().invoke(views_main, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("silhouettes")
    write_silhouettes(folder, train_per_class=8, test_per_class=4, size=32, classes=3, seed=0)
    return folder


@pytest.fixture(scope="module")
def experiment(real, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("views") / "views"
    run_views("--real", real, "--out", out, *TINY)
    return out


def test_every_condition_is_trained_evaluated_and_tabled(experiment):
    report = json.loads((experiment / "results.json").read_text())
    names = [row["condition"] for row in report["conditions"]]
    assert names == ["random", "none", "gaussian", "independent", "real", "supcon", "gaussian@1"]
    for row in report["conditions"]:
        assert [run["seed"] for run in row["seeds"]] == [0, 1]
        for metric in ("linear@2", "knn", "linear"):
            assert 0.0 <= row[metric]["min"] <= row[metric]["mean"] <= row[metric]["max"] <= 1.0
    by_name = {row["condition"]: row for row in report["conditions"]}
    assert by_name["gaussian"]["seeds"][0]["run"] == "runs/gaussian-0.5-simclr-seed0"
    assert by_name["supcon"]["seeds"][0]["run"] == "runs/gaussian-0.5-supcon-seed0"
    assert set(report["data"]) == {"real-train", "real-test", "none", "gaussian-0.5", "gaussian-1",
                                   "independent"}
    assert report["data"]["none"]["views"] == 1 and report["data"]["independent"]["views"] == 2
    assert report["data"]["none"]["groups"] == report["data"]["real-train"]["groups"] == 24
    table = (experiment / "table.md").read_text()
    assert table.count("\n") == 2 + len(names) and "random init" in table
    with Image.open(experiment / "views.png") as image:
        assert image.width > 600
    # crops and flips by default: the silhouettes' grey levels are the same in every image
    assert "color_augment: false" in (experiment / "runs" / "none-simclr-seed0" / "config.yaml").read_text()


def test_a_rerun_resumes_without_redoing_finished_runs(experiment, real):
    checkpoints = {path: path.stat().st_mtime_ns for path in experiment.glob("runs/*/last.pt")}
    assert len(checkpoints) == 2 * 7
    (experiment / "table.md").unlink()
    shutil.rmtree(experiment / "runs" / "independent-simclr-seed1" / "eval" / "knn")
    run_views("--real", real, "--out", experiment, *TINY, "--resume")
    assert {path: path.stat().st_mtime_ns for path in experiment.glob("runs/*/last.pt")} == checkpoints
    assert (experiment / "table.md").is_file()
    assert (experiment / "runs" / "independent-simclr-seed1" / "eval" / "knn" / "results.json").is_file()


def test_the_same_seed_gives_the_same_numbers(experiment, real, tmp_path):
    run_views("--real", real, "--out", tmp_path / "again", *TINY[:-3], "--conditions", "gaussian",
              "--sigmas", "", "--no-progress")
    first = {row["condition"]: row for row in json.loads((experiment / "results.json").read_text())["conditions"]}
    again = {row["condition"]: row for row in json.loads((tmp_path / "again" / "results.json").read_text())["conditions"]}
    for name in ("gaussian",):
        for seed_first, seed_again in zip(first[name]["seeds"], again[name]["seeds"], strict=True):
            # the checkpoints record their own run folder, so only their numbers can be equal
            for metric in ("linear@2", "knn", "linear"):
                assert seed_again[metric] == seed_first[metric]


def test_steered_conditions_run_next_to_the_others(real, tmp_path):
    run_views("--real", real, "--out", tmp_path / "steer", *TINY[:-3], "--seeds", 0, "--walk-samples", 16,
              "--conditions", "steer,gaussian+steer", "--sigmas", "", "--no-progress")
    report = json.loads((tmp_path / "steer" / "results.json").read_text())
    assert [row["condition"] for row in report["conditions"]] == ["steer", "gaussian+steer"]
    methods = {name: data["view_method"]["name"] for name, data in report["data"].items()}
    assert methods["steer"] == "steer" and methods["gaussian+steer-0.5"] == "gaussian+steer"
    assert report["data"]["steer"]["view_method"]["walks_sha256"]


def refusal(*args: object) -> str:
    result = CliRunner().invoke(views_main, [str(arg) for arg in args])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    return result.output


@pytest.mark.parametrize("other, changed", [(["--steps", 4], "steps"), (["--color-augment"], "color_augment")])
def test_a_resume_with_other_settings_is_refused(experiment, real, other, changed):
    output = refusal("--real", real, "--out", experiment, *TINY, *other, "--resume")
    assert f"other settings ({changed} differ)" in output


def test_an_existing_experiment_without_resume_is_refused(experiment, real):
    assert "pass --resume" in refusal("--real", real, "--out", experiment, *TINY)


@pytest.mark.parametrize("damage, fragment", [
    ("no test", "has no test/"),
    ("other classes", "same class folders"),
    ("few images", "--labels-per-class 2 needs"),
])
def test_a_bad_real_folder_is_one_sentence(real, tmp_path, damage, fragment):
    folder = tmp_path / "real"
    shutil.copytree(real, folder)
    if damage == "no test":
        shutil.rmtree(folder / "test")
    elif damage == "other classes":
        (folder / "test" / "extra").mkdir()
        shutil.copy(next((folder / "test").rglob("*.png")), folder / "test" / "extra" / "a.png")
    else:
        first = sorted((folder / "train").iterdir())[0]
        for image in sorted(first.iterdir())[1:]:
            image.unlink()
    assert fragment in refusal("--real", folder, "--out", tmp_path / "out", *TINY)
    assert not (tmp_path / "out").exists()


def test_an_unknown_condition_is_one_sentence_from_a_shell(real, tmp_path):
    result = run_module("experiments.views", "--real", real, "--out", tmp_path / "out", "--conditions",
                        "gaussian,rotate")
    assert_clean_failure(result, "Unknown condition 'rotate'")
    assert not (tmp_path / "out").exists()
