"""``python -m evaluate {linear,knn,report,export}``: evaluate a checkpoint's frozen encoder, compare runs,
export an encoder.

This module parses the flags only and imports no torch, so that ``--help`` starts at once; each
command imports what it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from shards.cli import allow_pipe_option
from common import commands
from common.console import exit_with, reports_errors
from common.numbers import FiniteFloatRange, seed_range
from evaluate.choices import DEFAULT_DRAWS, MIN_TEMPERATURE


def evaluation_options(train_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every metric takes; ``train_help`` says what the metric does with --train."""
    options = [
        click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
                     help="Training checkpoint (e.g. RUN/last.pt) whose encoder is evaluated."),
        click.option("--train", "train_location", required=True, metavar="SET", help=train_help),
        click.option("--val", "val_location", required=True, metavar="SET",
                     help="Labelled shard set the reported accuracy is measured on."),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Folder for results.json and, in its features/ folder, the feature cache "
                          "[default: results.json in CHECKPOINT's folder/eval/METRIC, the cache in "
                          "CHECKPOINT's folder/eval/features, shared by every metric]."),
        click.option("--progress/--no-progress", default=True,
                     help="Show a progress bar on stderr while features are extracted."),
        allow_pipe_option,
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@commands.group(help="Evaluate trained encoders on labelled shard sets and compare runs.")
def cli() -> None:
    pass


@cli.command(short_help="Linear probe (logistic regression) on frozen features.",
             help="Train a logistic-regression probe on frozen features of --train, choosing the learning "
                  "rate and weight decay on a held-out part of --train, and report its accuracy on --val. "
                  "With --labels-per-class N, fit it instead on N images of each class of --train, drawn "
                  "anew in each of --draws seeded draws, choosing the settings by cross-validation within "
                  "each draw, and report the mean and spread over the draws as metric linear@N.")
@evaluation_options("Labelled shard set the probe learns from; its settings are chosen on part of it "
                    "(the labelled draws with --labels-per-class), never on --val.")
@click.option("--holdout", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              help="Fraction of each class of --train held out to choose the settings (full-label probe).")
@click.option("--labels-per-class", type=click.IntRange(2), default=None,
              help="Low-label probe: labelled images of each class of --train in a draw [default: all of them].")
@click.option("--draws", type=click.IntRange(2), default=None,
              help=f"Seeded draws of the low-label probe [default: {DEFAULT_DRAWS} with --labels-per-class].")
@click.option("--epochs", type=click.IntRange(1), default=100, help="Passes over the training features.")
@click.option("--batch-size", type=click.IntRange(1), default=256, help="Features per SGD step.")
@click.option("--seed", type=seed_range(), default=0,
              help="Seed of the held-out split, the low-label draws and the batch order.")
@reports_errors
def linear(**options: Any) -> None:
    from evaluate.evaluation import run_linear  # torch, once a probe runs

    run_linear(**options)


@cli.command(short_help="Weighted kNN classifier on frozen features.",
             help="Classify --val by its k most cosine-similar --train features, each voting "
                  "exp(similarity / temperature) for its class (Wu et al. 2018).")
@evaluation_options("Labelled shard set whose features are the neighbours that vote.")
@click.option("--k", type=click.IntRange(1), default=20, help="Neighbours that vote.")
@click.option("--temperature", type=FiniteFloatRange(MIN_TEMPERATURE), default=0.07,
              help="Temperature T of the vote weights exp(similarity / T).")
@reports_errors
def knn(**options: Any) -> None:
    from evaluate.evaluation import run_knn  # torch, once a classifier runs

    run_knn(**options)


@cli.command(short_help="Compare runs in one markdown table.",
             help="Print one markdown table comparing run folders (e.g. report runs/*).")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN...")
@click.option("--curves", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the runs' training curves (loss, learning rate, images/s, data-wait share, "
                   "positives' similarity) into this PNG [default: none].")
@reports_errors
def report(runs: tuple[Path, ...], curves: Path | None) -> None:
    folders = [run for run in runs if run.is_dir()]
    for other in sorted(set(runs) - set(folders)):
        click.echo(f"warning: skipped {other}: {'not a folder' if other.exists() else 'it does not exist'}.",
                   err=True)
    if not folders:
        exit_with("None of the given runs is a folder.")
    from evaluate.report import report as report_table  # reads results with torch

    click.echo(report_table(folders))
    if curves:
        from evaluate.curves import draw_curves  # matplotlib, for this option only

        drawn = draw_curves(folders, curves)
        click.echo(f"Drew the training curves of {drawn} of {len(folders)} runs into {curves}.")


@cli.command(short_help="Write a checkpoint's encoder alone, in safetensors.",
             help="Write the encoder of a training checkpoint alone to a .safetensors file, with its "
                  "backbone as metadata: a timm backbone loads into timm.create_model(name, num_classes=0).")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True, help="Training checkpoint (last.pt).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .safetensors file to write.")
@reports_errors
def export(checkpoint: Path, out: Path) -> None:
    from evaluate.export import export_encoder  # torch and safetensors, for this command only

    metadata = export_encoder(checkpoint, out)
    click.echo(f"Wrote the {metadata['backbone']} encoder of {checkpoint} to {out}.")


def main() -> None:
    cli(prog_name="python -m evaluate")
