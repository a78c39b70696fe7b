"""How far views lie from their anchor: latent views by sigma against what crops and flips do.

    python -m experiments.distances --experiment runs/views

Where latent views do not separate from no latent views, this says why in numbers. For the first
--groups groups of each generated set of an experiment, it measures the distance between two
images in pixels (mean absolute difference, 0 to 1) and in the features of the experiment's
``none`` encoder (seed of --seed; cosine distance of the backbone's features), for pairs of:

- two crops and flips of one image (what ``none`` trains on),
- an anchor and its latent view, as generated, and after a crop and flip of each (what a gaussian
  condition trains on; a renoise condition's re-noised views likewise),
- two anchors of the same class (how far a class positive would be).

It writes ``distances.json`` and ``distances.md`` into the experiment folder.
"""

from __future__ import annotations

import functools
import itertools
import json
import statistics
from pathlib import Path
from typing import Callable

import click
import torch
from tqdm import tqdm

from common import commands
from common.console import reports_errors
from common.files import write_bytes_atomic, write_json_atomic
from evaluate.features import center_view, load_frozen_encoder
from experiments.views import ExperimentError
from shards.reader import decode_group_view, open_set
from train.augment import AugmentConfig, ViewAugment, normalize

Pair = tuple[torch.Tensor, torch.Tensor]


def pairs_of(location: Path, groups: int, augment: ViewAugment | None) -> list[Pair]:
    """(anchor, view 1) of the first ``groups`` groups; a 1-view set pairs its anchor with itself.
    With ``augment`` each image of a pair gets its own crop and flip."""
    pairs = []
    for group in itertools.islice(iter(open_set(str(location))), groups):
        first, second = decode_group_view(group, 0), decode_group_view(group, min(1, len(group.views) - 1))
        pairs.append((augment(first), augment(second)) if augment else (first, second))
    return pairs


def same_class_pairs(location: Path, groups: int) -> list[Pair]:
    """Consecutive anchors of one class among the first groups of a set."""
    by_class: dict[int, list[torch.Tensor]] = {}
    for group in itertools.islice(iter(open_set(str(location))), 2 * groups):
        by_class.setdefault(group.label, []).append(decode_group_view(group, 0))
    return [(images[i], images[i + 1]) for images in by_class.values() for i in range(0, len(images) - 1, 2)][:groups]


def measure(pairs: list[Pair], features: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
    first = torch.stack([a for a, _ in pairs])
    second = torch.stack([b for _, b in pairs])
    pixel = (first.float() - second.float()).abs().mean(dim=(1, 2, 3)) / 255
    cosine = 1 - torch.nn.functional.cosine_similarity(features(first), features(second))
    return {"pixel_l1": statistics.fmean(pixel.tolist()), "feature_cosine": statistics.fmean(cosine.tolist()),
            "pairs": len(pairs)}


@commands.command()
@click.option("--experiment", type=click.Path(path_type=Path), required=True,
              help="A finished experiments.views folder (it needs the none condition).")
@click.option("--groups", type=click.IntRange(2), default=200, help="Groups measured per set.")
@click.option("--seed", type=click.IntRange(0), default=0, help="Seed of the none encoder and of the crops.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar over the measured pairs.")
@reports_errors
def main(experiment: Path, groups: int, seed: int, progress: bool) -> None:
    """Measure how far latent views and crops lie from their anchor, in pixels and in features."""
    checkpoint = experiment / "runs" / f"none-simclr-seed{seed}" / "last.pt"
    if not checkpoint.is_file():
        raise ExperimentError(f"{checkpoint} is missing; run the experiment with the none condition and seed {seed}.")
    encoder = load_frozen_encoder(checkpoint, torch.device("cpu"))
    settings = json.loads((experiment / "experiment.json").read_text())
    size = encoder.crop_size
    torch.manual_seed(seed)
    view = ViewAugment(AugmentConfig(crop_size=size, crop_scale_min=0.2, color=settings["color_augment"]))

    def features(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            centred = torch.stack([center_view(image, size) for image in images])
            return encoder.module(normalize(centred)).float()

    none = experiment / "data" / "none"
    wanted: dict[str, Callable[[], list[Pair]]] = {
        "two crops of one image": lambda: pairs_of(none, groups, view),
        "two anchors of one class": lambda: same_class_pairs(none, groups)}
    for prefix, kind, amount in (("gaussian-", "latent view", "sigma"), ("renoise-", "re-noised view", "strength")):
        for location in sorted((experiment / "data").glob(f"{prefix}*")):
            if "-x" not in location.name:  # K = 2 sets: view 1 is the latent view
                value = location.name.removeprefix(prefix)
                wanted[f"{kind}, {amount} {value}"] = functools.partial(pairs_of, location, groups, None)
                wanted[f"{kind} + crops, {amount} {value}"] = functools.partial(pairs_of, location, groups, view)
    rows = {name: measure(pairs(), features) for name, pairs in tqdm(wanted.items(), desc="distances",
                                                                      disable=not progress)}
    write_json_atomic(experiment / "distances.json", {"encoder": str(checkpoint), "groups": groups, "rows": rows})
    table = ("| pair | pixel L1 (0-1) | feature cosine distance (none encoder) |\n|---|---|---|\n"
             + "\n".join(f"| {name} | {row['pixel_l1']:.3f} | {row['feature_cosine']:.3f} |" for name, row in rows.items())
             + "\n")
    write_bytes_atomic(experiment / "distances.md", table.encode())
    click.echo(table)


if __name__ == "__main__":
    main()
