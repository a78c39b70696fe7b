"""Evaluating a checkpoint as the command line asks: encoder loaded, sets checked, features
extracted (or read from the cache), the metric run and its results written.

Everything here needs torch; ``evaluate.cli`` imports this module only once a metric runs, so that
``python -m evaluate --help`` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from shards import ShardSet
from evaluate.choices import DEFAULT_DRAWS
from evaluate.features import (EvaluationError, Features, FrozenEncoder, cached_features, check_same_classes,
                               load_frozen_encoder, open_labelled_set)
from evaluate.knn import evaluate_knn
from evaluate.linear import (LowLabelSettings, ProbeSettings, evaluate_linear, evaluate_low_label,
                             low_label_metric)
from evaluate.results import build_results, write_results


@dataclass
class Inputs:
    encoder: FrozenEncoder
    train_set: ShardSet
    val_set: ShardSet
    out: Path
    train: Features
    val: Features
    cache_files: dict[str, str]


def prepare(checkpoint: Path, train_location: str, val_location: str, out: Path | None,
            metric: str, progress: bool = True, allow_pipe: bool = False) -> Inputs:
    """The frozen encoder, both sets checked against it and each other, and their features."""
    encoder = load_frozen_encoder(checkpoint)
    train_set = open_labelled_set(train_location, encoder, allow_pipe)
    val_set = open_labelled_set(val_location, encoder, allow_pipe)
    check_same_classes(train_set, val_set)
    # The cache's file names hash the checkpoint, the set and the crop, so metrics can share it.
    cache = out / "features" if out is not None else checkpoint.parent / "eval" / "features"
    out = out if out is not None else checkpoint.parent / "eval" / metric
    train, train_cache = cached_features(encoder, train_set, cache, progress=progress)
    val, val_cache = cached_features(encoder, val_set, cache, progress=progress)
    return Inputs(encoder, train_set, val_set, out, train, val,
                  {"train": train_cache.name, "val": val_cache.name})


def describe_top1(top1: float, over_draws: dict[str, Any] | None) -> str:
    """Top-1 in percent; for a low-label probe, the mean followed by its spread and every draw's."""
    if over_draws is None:
        return f"{100 * top1:.1f}%"
    draws = ", ".join(f"{100 * draw['top1']:.1f}" for draw in over_draws["per_draw"])
    return (f"{100 * top1:.1f}% (mean of {len(over_draws['per_draw'])} draws: std "
            f"{100 * over_draws['top1_std']:.1f}, min {100 * over_draws['top1_min']:.1f}, max "
            f"{100 * over_draws['top1_max']:.1f}; draws {draws})")


def finish(metric: str, inputs: Inputs, top1: float, top5: float | None, settings: dict[str, Any],
           over_draws: dict[str, Any] | None = None) -> None:
    settings = {**settings, "crop_size": inputs.encoder.crop_size, "feature_cache": inputs.cache_files}
    path = write_results(inputs.out, build_results(metric, top1, top5, inputs.encoder, inputs.train_set,
                                                   inputs.val_set, settings, over_draws))
    top5_text = f"{100 * top5:.1f}%" if top5 is not None else "n/a (fewer than 5 classes)"
    click.echo(f"{metric}: top-1 {describe_top1(top1, over_draws)}, top-5 {top5_text} on "
               f"{inputs.val_set.location}; wrote {path}.")


def run_linear(checkpoint: Path, train_location: str, val_location: str, out: Path | None, progress: bool,
               allow_pipe: bool, holdout: float, labels_per_class: int | None, draws: int | None, epochs: int,
               batch_size: int, seed: int) -> None:
    """``evaluate linear``: a full-label probe, or with ``labels_per_class`` a low-label one over draws."""
    if labels_per_class is None and draws is not None:
        raise EvaluationError("--draws needs --labels-per-class, the number of labelled images of each class in "
                              "a draw.")
    metric = "linear" if labels_per_class is None else low_label_metric(labels_per_class)
    inputs = prepare(checkpoint, train_location, val_location, out, metric, progress, allow_pipe)
    settings = ProbeSettings(epochs=epochs, batch_size=batch_size, holdout=holdout, seed=seed)
    if labels_per_class is None:
        top1, top5, record = evaluate_linear(inputs.train, inputs.val, inputs.train_set.num_classes, settings,
                                             inputs.encoder.device)
        finish(metric, inputs, top1, top5, record)
    else:
        low_label = LowLabelSettings(labels_per_class, DEFAULT_DRAWS if draws is None else draws)
        result = evaluate_low_label(inputs.train, inputs.val, inputs.train_set.class_names, low_label, settings,
                                    inputs.encoder.device)
        finish(metric, inputs, result.top1, result.top5, result.settings, result.over_draws)


def run_knn(checkpoint: Path, train_location: str, val_location: str, out: Path | None, progress: bool,
            allow_pipe: bool, k: int, temperature: float) -> None:
    """``evaluate knn``: the weighted kNN classifier of --val by --train's features."""
    inputs = prepare(checkpoint, train_location, val_location, out, "knn", progress, allow_pipe)
    top1, top5, record = evaluate_knn(inputs.train, inputs.val, inputs.train_set.num_classes, k, temperature,
                                      inputs.encoder.device)
    finish("knn", inputs, top1, top5, record)
