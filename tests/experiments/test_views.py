"""The miniature experiment end to end at tiny size: the real command lines, in one process, from an
ImageFolder to table.md, views.png and results.json; sigma chosen on the validation split, the test
split read only at the end; resumed without redoing runs; refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from experiments import views
from experiments.silhouettes import write_silhouettes
from experiments.views import main as views_main
from tests.cli import assert_clean_failure, run_module
from tests.random_dit import write_random_dit

TINY = ["--seeds", "0,1", "--sigma", "0.5,1", "--conditions", "random,none,gaussian,real,none-x4,gaussian-x4", "--steps", 3, "--batch-size", 8, "--fit-steps", 4, "--views", 2,
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
def experiment(real, tmp_path_factory) -> tuple[Path, list[tuple[str, list[str], bool]]]:
    """The experiment's folder, and every command line it ran: (module, arguments, whether the choices
    were recorded when it ran)."""
    out = tmp_path_factory.mktemp("views") / "views"
    calls = []

    def recording(module: str, arguments: list[object]) -> None:
        calls.append((module, [str(argument) for argument in arguments], (out / views.CHOICES_FILE).is_file()))
        run_cli(module, arguments)

    run_cli = views.run_cli
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(views, "run_cli", recording)
        run_views("--real", real, "--out", out, *TINY)
    return out, calls


def test_every_condition_is_trained_evaluated_and_tabled(experiment):
    experiment, _ = experiment
    report = json.loads((experiment / "results.json").read_text())
    names = [row["condition"] for row in report["conditions"]]
    assert names == ["random", "none", "gaussian", "real", "none-x4", "gaussian-x4", "gaussian@1"]
    for row in report["conditions"]:
        assert [run["seed"] for run in row["seeds"]] == [0, 1]
        for metric in ("linear@2", "knn", "linear"):
            assert 0.0 <= row[metric]["min"] <= row[metric]["mean"] <= row[metric]["max"] <= 1.0
            if row["condition"] != "none":  # paired with none, by seed and draw
                difference = row["vs_none"][metric]
                assert difference["interval"][0] <= difference["mean"] <= difference["interval"][1]
                assert len(difference["per_seed"]) == 2
    assert report["conditions"][1]["linear@2"] and "vs_none" not in report["conditions"][1]
    by_name = {row["condition"]: row for row in report["conditions"]}
    sigma = report["choices"]["sigma"]
    assert sigma in (0.5, 1.0) and set(report["choices"]["validation_knn_top1"]) == {"0.5", "1"}
    assert by_name["gaussian"]["seeds"][0]["run"] == f"runs/gaussian-{sigma:g}-simclr-seed0"
    assert by_name["none-x4"]["seeds"][0]["run"] == "runs/none-multipos4-seed0"
    assert by_name["gaussian-x4"]["vs_twin"]["twin"] == "none-x4"
    assert set(report["data"]) == {"real-fit", "real-val", "real-test", "none", f"gaussian-{sigma:g}",
                                   "gaussian-1", f"gaussian-{sigma:g}-x4"}
    assert report["data"]["none"]["views"] == 1 and report["data"][f"gaussian-{sigma:g}-x4"]["views"] == 4
    # 8 train images per class: 2 of each go to the validation split, the GAN and the probes get 6
    assert report["data"]["none"]["groups"] == report["data"]["real-fit"]["groups"] == 18
    assert report["data"]["real-val"]["groups"] == report["split"]["val_images"] == 6
    table = (experiment / "table.md").read_text()
    assert "random init" in table and "difference to none" in table and "gaussian-x4 | none-x4" in table
    with Image.open(experiment / "views.png") as image:
        assert image.width > 600
    # crops and flips by default: the silhouettes' grey levels are the same in every image
    assert "color_augment: false" in (experiment / "runs" / "none-simclr-seed0" / "config.yaml").read_text()


def test_the_test_split_is_read_only_after_the_choices_and_every_training(experiment, real):
    _, calls = experiment
    reads_test = [index for index, (_, arguments, _) in enumerate(calls)
                  if any(argument == str(real / "test") or argument.endswith("real-test") for argument in arguments)]
    first = reads_test[0]
    assert calls[first][0] == "shards" and calls[first][2], "the test split is ingested after choices.json"
    assert all(module == "evaluate" for module, _, _ in calls[first + 1:])
    assert not any(module in ("train.main", "generate", "generate.fit") for module, _, _ in calls[first:])
    assert all(str(real / "test") not in arguments for _, arguments, _ in calls[:first])
    # sigma was chosen on the validation split: the choosing evaluations read real-val, never real-test
    choosing = [arguments for module, arguments, recorded in calls if module == "evaluate" and not recorded]
    assert len(choosing) == 2 and all(arguments[arguments.index("--val") + 1].endswith("real-val")
                                      for arguments in choosing)


def test_the_test_split_is_refused_before_the_choices(tmp_path):
    settings = views.Settings(real=str(tmp_path), seeds=(0,), conditions=("none",), sigma=(0.5,), sigmas=(),
                              views=2, steps=1, batch_size=2, fit_steps=1, walk_samples=1, image_size=32,
                              labels_per_class=2, draws=2, knn_k=1, probe_epochs=1, workers=0,
                              color_augment=False, val_fraction=0.2, split_seed=0)
    with pytest.raises(RuntimeError, match="only once the choices are recorded"):
        views.Experiment(tmp_path / "out", settings, progress=False).ingest_test_split()


def test_a_rerun_resumes_without_redoing_finished_runs(experiment, real):
    experiment, _ = experiment
    checkpoints = {path: path.stat().st_mtime_ns for path in experiment.glob("runs/*/last.pt")}
    assert len(checkpoints) >= 2 * 6
    (experiment / "table.md").unlink()
    shutil.rmtree(experiment / "runs" / "none-simclr-seed1" / "eval" / "knn")
    run_views("--real", real, "--out", experiment, *TINY, "--resume")
    assert {path: path.stat().st_mtime_ns for path in experiment.glob("runs/*/last.pt")} == checkpoints
    assert (experiment / "table.md").is_file()
    assert (experiment / "runs" / "none-simclr-seed1" / "eval" / "knn" / "results.json").is_file()


def test_the_same_seed_gives_the_same_numbers(experiment, real, tmp_path):
    experiment, _ = experiment
    run_views("--real", real, "--out", tmp_path / "again", *TINY[:-3], "--conditions", "none", "--seeds", 0,
              "--sigma", 0.5, "--sigmas", "", "--no-progress")
    first, again = ({row["condition"]: row for row in json.loads((folder / "results.json").read_text())["conditions"]}
                    ["none"]["seeds"][0] for folder in (experiment, tmp_path / "again"))
    # the checkpoints record their own run folder, so only their numbers can be equal
    for metric in ("linear@2", "knn", "linear"):
        assert again[metric] == first[metric]


def test_steered_conditions_run_next_to_the_others(real, tmp_path):
    run_views("--real", real, "--out", tmp_path / "steer", *TINY[:-3], "--seeds", 0, "--sigma", 0.5, "--walk-samples", 16,
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
    experiment, _ = experiment
    output = refusal("--real", real, "--out", experiment, *TINY, *other, "--resume")
    assert f"other settings ({changed} differ)" in output


def test_an_existing_experiment_without_resume_is_refused(experiment, real):
    experiment, _ = experiment
    assert "pass --resume" in refusal("--real", real, "--out", experiment, *TINY)


@pytest.mark.parametrize("damage, fragment", [
    ("no test", "has no test/"),
    ("other classes", "same class folders"),
    ("few images", "besides the validation split"),
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


def test_distances_measure_latent_views_against_crops(experiment):
    from experiments.distances import main as distances_main

    experiment, _ = experiment
    result = CliRunner().invoke(distances_main, ["--experiment", str(experiment), "--groups", "4", "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((experiment / "distances.json").read_text())["rows"]
    assert {"two crops of one image", "two anchors of one class", "latent view, sigma 0.5",
            "latent view + crops, sigma 1"} <= set(rows)
    assert all(0 <= row["pixel_l1"] <= 1 and row["pairs"] >= 1 for row in rows.values())


def test_a_diffusion_model_takes_the_place_of_the_fitted_gan(real, tmp_path):
    weights = write_random_dit(tmp_path / "dit")
    run_views("--real", real, "--out", tmp_path / "views", *TINY[:-3], "--generator", weights, "--seeds", 0,
              "--sigma", 0.5, "--conditions", "renoise", "--strength", 0.25, "--sigmas", "", "--no-progress")
    report = json.loads((tmp_path / "views" / "results.json").read_text())
    assert [row["condition"] for row in report["conditions"]] == ["renoise"]
    assert report["data"]["renoise-0.25"]["view_method"] == {"name": "renoise", "strength": 0.25}
    manifest = json.loads((tmp_path / "views" / "data" / "renoise-0.25" / "manifest.json").read_text())
    assert manifest["generator"]["name"] == "diffusers" and manifest["image"]["size"] == 32
    assert report["generator"]["diffusers"] == str(weights.resolve())
    assert report["generator"]["weights_sha256"] == manifest["generator"]["weights_sha256"]
    assert not (tmp_path / "views" / "generator").exists()  # no GAN was fitted


def test_renoise_without_a_diffusion_model_is_one_sentence(real, tmp_path):
    assert "give --generator DIR" in refusal("--real", real, "--out", tmp_path / "out", *TINY[:-3], "--conditions",
                                             "none,renoise", "--no-progress")
    assert not (tmp_path / "out").exists()


def test_a_resume_of_a_folder_whose_settings_do_not_read_is_one_sentence(real, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / views.SETTINGS_FILE).write_text('{"seeds": [0,')
    output = refusal("--real", real, "--out", tmp_path / "out", *TINY, "--resume")
    assert "is not a readable experiment" in output and "Traceback" not in output
