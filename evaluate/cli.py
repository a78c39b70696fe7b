"""``python -m evaluate {linear,knn,report}``: evaluate a checkpoint's frozen encoder, compare runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from shards import ShardSet
from shards.console import exit_with, reports_errors
from train.checkpoint import CheckpointError

from evaluate.features import (EvaluationError, Features, FrozenEncoder, cached_features, check_same_classes,
                               load_encoder, open_labelled_set)
from evaluate.knn import evaluate_knn
from evaluate.linear import ProbeSettings, evaluate_linear
from evaluate.report import report as report_table
from evaluate.results import build_results, write_results

EXPECTED_ERRORS = (EvaluationError, CheckpointError)


@dataclass
class Inputs:
    encoder: FrozenEncoder
    train_set: ShardSet
    val_set: ShardSet
    out: Path
    train: Features
    val: Features
    cache_files: dict[str, str]


def evaluation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
                     help="Training checkpoint (e.g. RUN/last.pt) whose encoder is evaluated."),
        click.option("--train", "train_location", required=True, metavar="SET",
                     help="Labelled shard set the classifier learns from (the linear probe also tunes on part of it)."),
        click.option("--val", "val_location", required=True, metavar="SET",
                     help="Labelled shard set the reported accuracy is measured on."),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Folder for results.json and cached features [default: CHECKPOINT's folder/eval/METRIC]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def prepare(checkpoint: Path, train_location: str, val_location: str, out: Path | None,
            metric: str) -> Inputs:
    """The frozen encoder, both sets checked against it and each other, and their features."""
    encoder = load_encoder(checkpoint)
    train_set = open_labelled_set(train_location, encoder)
    val_set = open_labelled_set(val_location, encoder)
    check_same_classes(train_set, val_set)
    out = out if out is not None else checkpoint.parent / "eval" / metric
    # One cache for every metric: its file names hash the checkpoint, the set and the crop.
    cache = checkpoint.parent / "eval" / "features"
    train, train_cache = cached_features(encoder, train_set, cache, progress=True)
    val, val_cache = cached_features(encoder, val_set, cache, progress=True)
    return Inputs(encoder, train_set, val_set, out, train, val,
                  {"train": train_cache.name, "val": val_cache.name})


def finish(metric: str, inputs: Inputs, top1: float, top5: float | None, settings: dict[str, Any]) -> None:
    settings = {**settings, "crop_size": inputs.encoder.crop_size, "feature_cache": inputs.cache_files}
    path = write_results(inputs.out, build_results(metric, top1, top5, inputs.encoder, inputs.train_set,
                                                   inputs.val_set, settings))
    top5_text = f"{100 * top5:.1f}%" if top5 is not None else "n/a (fewer than 5 classes)"
    click.echo(f"{metric}: top-1 {100 * top1:.1f}%, top-5 {top5_text} on {inputs.val_set.location}; "
               f"wrote {path}.")


@click.group(help="Evaluate trained encoders on labelled shard sets and compare runs.",
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def cli() -> None:
    pass


@cli.command(short_help="Linear probe (logistic regression) on frozen features.",
             help="Train a logistic-regression probe on frozen features of --train, choosing the learning "
                  "rate and weight decay on a held-out part of --train, and report its accuracy on --val.")
@evaluation_options
@click.option("--holdout", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              help="Fraction of each class of --train held out to choose the settings.")
@click.option("--epochs", type=click.IntRange(1), default=100, help="Passes over the training features.")
@click.option("--batch-size", type=click.IntRange(1), default=256, help="Features per SGD step.")
@click.option("--seed", type=int, default=0, help="Seed of the held-out split and the batch order.")
@reports_errors(*EXPECTED_ERRORS)
def linear(checkpoint: Path, train_location: str, val_location: str, out: Path | None, holdout: float,
           epochs: int, batch_size: int, seed: int) -> None:
    inputs = prepare(checkpoint, train_location, val_location, out, "linear")
    settings = ProbeSettings(epochs=epochs, batch_size=batch_size, holdout=holdout, seed=seed)
    top1, top5, record = evaluate_linear(inputs.train, inputs.val, inputs.train_set.num_classes, settings,
                                         inputs.encoder.device)
    finish("linear", inputs, top1, top5, record)


@cli.command(short_help="Weighted kNN classifier on frozen features.",
             help="Classify --val by its k most cosine-similar --train features, each voting "
                  "exp(similarity / temperature) for its class (Wu et al. 2018).")
@evaluation_options
@click.option("--k", type=click.IntRange(1), default=20, help="Neighbours that vote.")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.07,
              help="Temperature T of the vote weights exp(similarity / T).")
@reports_errors(*EXPECTED_ERRORS)
def knn(checkpoint: Path, train_location: str, val_location: str, out: Path | None, k: int,
        temperature: float) -> None:
    inputs = prepare(checkpoint, train_location, val_location, out, "knn")
    top1, top5, record = evaluate_knn(inputs.train, inputs.val, inputs.train_set.num_classes, k, temperature,
                                      inputs.encoder.device)
    finish("knn", inputs, top1, top5, record)


@cli.command(short_help="Compare runs in one markdown table.",
             help="Print one markdown table comparing run folders (e.g. report runs/*).")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN...")
@reports_errors(*EXPECTED_ERRORS)
def report(runs: tuple[Path, ...]) -> None:
    folders = [run for run in runs if run.is_dir()]
    for other in sorted(set(runs) - set(folders)):
        click.echo(f"warning: skipped {other}: {'not a folder' if other.exists() else 'it does not exist'}.",
                   err=True)
    if not folders:
        exit_with("None of the given runs is a folder.")
    click.echo(report_table(folders))


def main() -> None:
    cli(prog_name="python -m evaluate")
