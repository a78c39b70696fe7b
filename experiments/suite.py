"""The experiment on several labelled image sets, and one summary of what holds across them.

    python -m experiments.suite --out runs/suite

For each dataset of ``experiments.datasets`` (the project's silhouettes, scikit-learn's digits,
glyphs from matplotlib's fonts) it writes the ImageFolder, decides colour augmentation by the one
rule of ``datasets.needs_color_augment`` (colour jitter iff the images are not grey), runs
``python -m experiments.views`` on it with the suite's settings, and gathers, per dataset, each
condition's paired difference to no latent views with its interval into ``summary.md``,
``summary.json`` and ``suite.png``. A rerun with ``--resume`` continues every unfinished dataset.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import click

from common import commands
from common.console import reports_errors
from common.files import make_folder
from common.provenance import provenance
from experiments import datasets
from experiments.plots import plot_suite
from experiments.publish import publish
from experiments.tables import suite_table
from experiments.views import DEFAULT_CONDITIONS, ExperimentError, main as views_main

DATASETS = ("silhouettes", "digits", "glyphs")
DONE = ".written"  # marks a dataset folder as complete


def write_dataset(name: str, folder: Path, train_per_class: int, test_per_class: int) -> None:
    if (folder / DONE).is_file():
        return
    if folder.exists() and any(folder.iterdir()):
        raise ExperimentError(f"{folder} holds an unfinished dataset; remove it and rerun.")
    datasets.writers(train_per_class, test_per_class)[name](folder)
    (folder / DONE).write_text("")


def run_views(arguments: list[object]) -> None:
    """``python -m experiments.views`` in this process, as a user would type it."""
    argv = [str(argument) for argument in arguments]
    click.echo(f"[suite] python -m experiments.views {' '.join(argv)}", err=True)
    try:
        views_main.main(args=argv, prog_name="python -m experiments.views", standalone_mode=False)
    except SystemExit as stop:
        if stop.code:
            raise ExperimentError(f"The experiment stopped (exit {stop.code}); its error is printed above.") from None


def summarise(name: str, report: dict[str, Any], color_augment: bool, minutes: float) -> dict[str, Any]:
    """One dataset's part of the summary, from its experiment's results.json."""
    metrics = [report["low_label_metric"], "knn", "linear"]
    groups = {part: report["data"][f"real-{part}"]["groups"] for part in ("fit", "val", "test")}
    return {
        "name": name, "color_augment": color_augment, "sigma": report["choices"]["sigma"],
        "images": f"{groups['fit']} fit / {groups['val']} validation / {groups['test']} test",
        "metrics": metrics, "minutes": minutes,
        "rows": [{"condition": row["condition"], "label": row["label"],
                  "absolute": {m: row[m]["mean"] for m in metrics}, "vs_none": row.get("vs_none", {})}
                 for row in report["conditions"] if row["condition"] != "none"],
        "none": {m: next(row[m]["mean"] for row in report["conditions"] if row["condition"] == "none")
                 for m in metrics},
        "twins": [{"condition": row["condition"], "twin": row["vs_twin"]["twin"],
                   "difference": {m: row["vs_twin"][m] for m in metrics}}
                  for row in report["conditions"] if "vs_twin" in row],
        "generated_vs_real": report["generated_vs_real"],
        "generator": report["generator"],
    }


@commands.command()
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Suite folder: one ImageFolder and one experiment per dataset, summary.md, summary.json, suite.png.")
@click.option("--datasets", "names", default=",".join(DATASETS),
              help=f"Comma-separated datasets from {', '.join(DATASETS)}.")
@click.option("--train-per-class", type=click.IntRange(2), default=150,
              help="Train images per class (digits has 124 to 133 after its test images).")
@click.option("--test-per-class", type=click.IntRange(1), default=50, help="Test images per class.")
@click.option("--conditions", "condition_list", default=",".join(DEFAULT_CONDITIONS),
              help="Conditions of every experiment (see python -m experiments.views --help); none must be one.")
@click.option("--seeds", default="0,1,2", help="Training seeds of every experiment.")
@click.option("--steps", type=click.IntRange(1), default=100, help="Training steps of every condition.")
@click.option("--fit-steps", type=click.IntRange(1), default=600, help="GAN fitting steps.")
@click.option("--sigma", default="0.25,0.5,1.0", help="Sigma candidates, chosen per dataset on its validation split.")
@click.option("--scale", type=click.FloatRange(0, min_open=True), default=1.0,
              help="Multiplies the training and fitting steps (e.g. 8 on a GPU).")
@click.option("--extra", default="", help="Further options for every experiment, e.g. '--draws 3 --knn-k 10'.")
@click.option("--resume", is_flag=True, help="Continue the suite in --out; finished datasets are not redone.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bars of every step.")
@reports_errors
def main(out: Path, names: str, train_per_class: int, test_per_class: int, condition_list: str, seeds: str,
         steps: int, fit_steps: int, sigma: str, scale: float, extra: str, resume: bool, progress: bool) -> None:
    """Run the views experiment on several labelled image sets and summarise it across them."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in DATASETS]
    if unknown or not chosen:
        raise ExperimentError(f"Unknown dataset {unknown[0] if unknown else names!r}; choose from {', '.join(DATASETS)}.")
    if "none" not in condition_list.split(","):
        raise ExperimentError("--conditions must include none: every condition is compared with it.")
    if (out / "summary.json").is_file() and not resume:
        raise ExperimentError(f"{out} already holds a suite; pass --resume or choose another --out.")
    make_folder(out)
    parts = []
    for name in chosen:
        started = time.perf_counter()
        real = out / "data" / name
        write_dataset(name, real, train_per_class, test_per_class)
        color = datasets.needs_color_augment(real)
        experiment = out / name
        run_views(["--real", real, "--out", experiment, "--conditions", condition_list, "--seeds", seeds,
                   "--steps", steps, "--fit-steps", fit_steps, "--sigma", sigma, "--scale", scale,
                   "--color-augment" if color else "--no-color-augment", *extra.split(),
                   *(["--resume"] if (experiment / "experiment.json").is_file() else []),
                   "--progress" if progress else "--no-progress"])
        report = json.loads((experiment / "results.json").read_text())
        parts.append(summarise(name, report, color, round((time.perf_counter() - started) / 60, 1)))
    summary = {"datasets": parts,
               "color_rule": f"colour augment iff the mean per-pixel spread of R, G, B exceeds "
                             f"{datasets.COLOR_SPREAD:g} of 255 on the train images",
               "machine": {"platform": platform.platform(), "processor": platform.processor()},
               "provenance": provenance(["python", "-m", "experiments.suite", *sys.argv[1:]])}
    publish(out, summary, ("summary.json", "summary.md", "suite.png"), suite_table, plot_suite)


if __name__ == "__main__":
    main()
