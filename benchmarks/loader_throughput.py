"""Training input images/s: a shard set through train.data against torchvision's ImageFolder.

Both read the same JPEGs (the ImageFolder holds the set's anchor views, byte for byte), decode one
per sample and make --views (2) augmented views of it with the same recipe, worker count and batch size:
a K = 1 set, the SimCLR case. The ImageFolder runs either torchvision's own transforms (on PIL, the
usual set-up, or on tensors) or train.augment's, which the shard loader uses; the last comparison
isolates the storage format. images/s counts augmented views delivered to the loop; CPU ms/image
is the CPU time of the loop process and its workers per view, which other jobs on the machine
barely change. Each is the best of --rounds rounds, the pipelines taking turns. Without --data it
renders a K = 1 set of 128-px images with the embedded generator first.

``--shard-reads --data SET ...`` times the tar walk alone, in CPU microseconds per group (best of
--rounds): a trainer's first read of a shard (every byte hashed, every member checked as the
whole-group reader checks it) against a later one (only the anchor, one positive and the class read).

``--shards-only --data SET --data SET ...`` compares shard sets with each other instead (e.g. a
1-view and a 4-view set of the same images): the shard loader alone on each, the sets taking
turns, with CPU ms per delivered view, per decoded view (a K-view set decodes min(K, M) JPEGs per
sample for M = --views views, a 1-view set one) and per group, each also as a ratio to the first
row. With --views 1 every set decodes and augments one view per sample, so what differs is reading.
With --gpu-augment each set is also read the way ``train/main.py --gpu-augment`` reads it on a CPU:
the workers only draw parameters, and the loop process decodes and augments each batch with
``train.data.DeviceAugment`` on the CPU device (its CPU time counts too).

    python -m benchmarks.loader_throughput [--data SET] [--groups 1000] [--workers N] [--epochs 3]
    python -m benchmarks.loader_throughput --shards-only --data SET1 --data SET4 [--crop-size 32] [--gpu-augment]
    python -m benchmarks.loader_throughput --shard-reads --data SET1 --data SET4 [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torchvision.transforms.v2.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from torchvision.transforms import v2

from shards import ShardSet, open_set
from train.augment import (BLUR_P, BLUR_SIGMA, GRAYSCALE_P, JITTER, JITTER_P, AugmentConfig, ViewAugment,
                           blur_kernel_size)
from train.data import DeviceAugment, build_loader
from train.sources import DataSource

VIEWS = 2  # augmented views per sample, unless --views says otherwise


def render_set(folder: Path, groups: int) -> str:
    subprocess.run([sys.executable, "-m", "generate", "--n-anchors", str(groups), "--view-method", "none",
                    "--image-size", "128", "--groups-per-shard", "250", "--out", str(folder), "--no-progress"],
                   check=True)
    return str(folder)


def export_anchors(shard_set: ShardSet, folder: Path) -> None:
    """Every group's anchor view as FOLDER/CLASS/ANCHOR.jpg, the bytes unchanged."""
    for group in shard_set:
        class_folder = folder / f"{group.label or 0:04d}"
        class_folder.mkdir(parents=True, exist_ok=True)
        (class_folder / f"{group.anchor:010d}.jpg").write_bytes(group.views[0])


def torchvision_recipe(config: AugmentConfig) -> v2.Compose:
    """The same recipe written with torchvision's own per-image transforms (they take PIL or tensors)."""
    steps = [v2.RandomResizedCrop(config.crop_size, scale=(config.crop_scale_min, 1.0), antialias=True),
             v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(*JITTER)], p=JITTER_P),
             v2.RandomGrayscale(p=GRAYSCALE_P)]
    if config.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(config.crop_size), BLUR_SIGMA)], p=BLUR_P))
    return v2.Compose(steps)


def read_tensor(path: str) -> torch.Tensor:
    return decode_jpeg(read_file(path), mode=ImageReadMode.RGB)


class AugmentedViews:
    """The ImageFolder transform: M augmentations of one decoded image, as uint8 [M, 3, S, S]."""

    def __init__(self, augment: Callable[[Any], Any], views: int = VIEWS):
        self.augment = augment
        self.views = views

    def __call__(self, image: Any) -> torch.Tensor:
        views = [self.augment(image) for _ in range(self.views)]
        return torch.stack([F.pil_to_tensor(view) if not isinstance(view, torch.Tensor) else view
                            for view in views])


@dataclass
class Measurement:
    images_per_second: float  # views delivered per wall-clock second, timed epochs only
    cpu_ms_per_image: float  # CPU time of the loop process and its workers per view, warm-up included


def measure(make_epochs: Callable[[], Callable[[int], Iterable]], epochs: int) -> Measurement:
    """One warm-up epoch (worker start, page cache), then ``epochs`` timed ones. CPU time counts the
    workers once they are joined, so it holds even when other jobs share the machine."""
    children, own = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    epoch_batches = make_epochs()
    warmup = sum(batch[0].shape[0] * batch[0].shape[1] for batch in epoch_batches(0))
    timed, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        timed += sum(batch[0].shape[0] * batch[0].shape[1] for batch in epoch_batches(epoch))
    seconds = time.perf_counter() - start
    del epoch_batches  # the last reference to the loader: its workers exit and are joined
    gc.collect()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
           + time.process_time() - own)
    return Measurement(timed / seconds, 1000 * cpu / (warmup + timed))


def image_folder_epochs(folder: Path, loader: Callable[[str], Any] | None, augment: Callable,
                        args: argparse.Namespace) -> Callable[[int], Iterable]:
    dataset = ImageFolder(str(folder), transform=AugmentedViews(augment, args.views),
                          **({"loader": loader} if loader else {}))
    batches = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                         num_workers=args.workers, persistent_workers=args.workers > 0)
    return lambda epoch: batches


def shard_epochs(shard_set: ShardSet, config: AugmentConfig, args: argparse.Namespace,
                 gpu_augment: bool = False) -> Callable[[], Callable[[int], Iterable]]:
    """The trainer's input on the CPU: its default loader, or --gpu-augment's with the device step."""
    def make_epochs() -> Callable[[int], Iterable]:
        loader = build_loader([DataSource(shard_set)], batch_size=args.batch_size, views=args.views,
                              augment=config, num_workers=args.workers, seed=0, gpu_augment=gpu_augment)
        if not gpu_augment:
            return loader.epoch
        augment = DeviceAugment(config, torch.device("cpu"), skip_corrupt=False)
        return lambda epoch: map(augment, loader.epoch(epoch))

    return make_epochs


def compare_sets(args: argparse.Namespace) -> None:
    """The shard loader alone on each set (and path), taking turns; figures per view and per group."""
    config = AugmentConfig(crop_size=args.crop_size)
    sets = [open_set(location) for location in args.data]
    paths = ["default", "gpu-augment"] if args.gpu_augment else ["default"]
    runs = [(shard_set, path) for shard_set in sets for path in paths]
    best: dict[int, Measurement] = {}
    for _ in range(args.rounds):
        for index, (shard_set, path) in enumerate(runs):
            found = measure(shard_epochs(shard_set, config, args, path == "gpu-augment"), args.epochs)
            best[index] = Measurement(max(found.images_per_second, best.get(index, found).images_per_second),
                                      min(found.cpu_ms_per_image, best.get(index, found).cpu_ms_per_image))
    print(f"{args.views} views per sample cropped to {args.crop_size} px; batch {args.batch_size}; {args.workers} "
          f"workers; {args.epochs} timed epochs, best of {args.rounds} rounds")
    print(f"{'set':<34}{'K':>3}{'path':>12}{'images/s':>10}{'ratio':>7}{'CPU ms/view':>13}{'ratio':>7}"
          f"{'ms/decoded':>12}{'ratio':>7}{'ms/group':>10}{'ratio':>7}")
    first = None
    for index, (shard_set, path) in enumerate(runs):
        found = best[index]
        decoded = min(shard_set.views, args.views)
        figures = (found.images_per_second, found.cpu_ms_per_image,
                   found.cpu_ms_per_image * args.views / decoded, found.cpu_ms_per_image * args.views)
        first = first or figures
        print(f"{shard_set.location[-34:]:<34}{shard_set.views:>3}{path:>12}"
              + "".join(f"{value:>{width}.{digits}f}{value / base:>6.2f}x"
                        for value, base, width, digits in zip(figures, first, (10, 13, 12, 10), (0, 3, 3, 3))))


def read_cost(shard_set: ShardSet, first_read: bool, rounds: int) -> float:
    """Best CPU microseconds per group of one pass over every shard, as a trainer's first read of a
    shard (``check_sha256``) or a later one reads it."""
    def choose(anchor: int) -> list[int]:
        return [0, 1 % shard_set.views]

    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for index in range(len(shard_set.shard_rows)):
            for _group in shard_set.chosen_views(index, choose, check_sha256=first_read):
                pass
        best = min(best, time.process_time() - start)
    return 1e6 * best / shard_set.groups


def compare_reads(args: argparse.Namespace) -> None:
    print(f"CPU microseconds per group, best of {args.rounds} passes over every shard")
    print(f"{'set':<34}{'K':>3}{'first read':>12}{'later read':>12}{'ratio':>7}")
    for location in args.data:
        shard_set = open_set(location)
        first, later = read_cost(shard_set, True, args.rounds), read_cost(shard_set, False, args.rounds)
        print(f"{shard_set.location[-34:]:<34}{shard_set.views:>3}{first:>12.1f}{later:>12.1f}{first / later:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append",
                        help="shard set to read (default: render a K = 1 set); repeat with --shards-only")
    parser.add_argument("--shards-only", action="store_true",
                        help="compare the given shard sets with each other, without ImageFolder")
    parser.add_argument("--shard-reads", action="store_true",
                        help="time a trainer's first and later reads of the given sets' shards, without decoding")
    parser.add_argument("--gpu-augment", action="store_true",
                        help="with --shards-only: also read each set as --gpu-augment does, on the CPU")
    parser.add_argument("--groups", type=int, default=1000, help="groups to render without --data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--crop-size", type=int, default=AugmentConfig().crop_size)
    parser.add_argument("--views", type=int, default=VIEWS, help="augmented views per sample (M)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--rounds", type=int, default=2, help="measure every pipeline this many times")
    args = parser.parse_args()
    if args.shard_reads:
        if not args.data:
            parser.error("--shard-reads times the sets given with --data")
        compare_reads(args)
        return
    if args.shards_only:
        if not args.data:
            parser.error("--shards-only compares the sets given with --data")
        compare_sets(args)
        return
    if args.data and len(args.data) > 1:
        parser.error("give one --data (several only with --shards-only)")
    if args.gpu_augment:
        parser.error("--gpu-augment goes with --shards-only")

    with tempfile.TemporaryDirectory() as scratch:
        location = args.data[0] if args.data else render_set(Path(scratch) / "set", args.groups)
        shard_set = open_set(location)
        folder = Path(scratch) / "imagefolder"
        export_anchors(shard_set, folder)
        config = AugmentConfig(crop_size=args.crop_size)
        recipe = torchvision_recipe(config)

        pipelines = {
            "shard set, train.data": shard_epochs(shard_set, config, args),
            "ImageFolder, torchvision on PIL": lambda: image_folder_epochs(folder, None, recipe, args),
            "ImageFolder, torchvision on tensors": lambda: image_folder_epochs(folder, read_tensor, recipe, args),
            "ImageFolder, train.augment": lambda: image_folder_epochs(folder, read_tensor, ViewAugment(config),
                                                                      args),
        }
        best: dict[str, Measurement] = {}
        for _ in range(args.rounds):
            for name, make_epochs in pipelines.items():
                found = measure(make_epochs, args.epochs)
                best[name] = Measurement(max(found.images_per_second, best.get(name, found).images_per_second),
                                         min(found.cpu_ms_per_image, best.get(name, found).cpu_ms_per_image))

    print(f"{shard_set.groups} groups x {shard_set.views} views of {shard_set.image_size} px; {args.views} views per "
          f"sample cropped to {args.crop_size} px; batch {args.batch_size}; {args.workers} workers; "
          f"{args.epochs} timed epochs, best of {args.rounds} rounds")
    if shard_set.views > 1:
        print("note: this set has K > 1, so the shard loader decodes two JPEGs per sample, ImageFolder one")
    shards = best["shard set, train.data"]
    print(f"{'pipeline':<38}{'images/s':>10}{'shards/this':>13}{'CPU ms/image':>14}{'this/shards':>13}")
    for name, found in best.items():
        print(f"{name:<38}{found.images_per_second:>10.0f}"
              f"{shards.images_per_second / found.images_per_second:>12.2f}x"
              f"{found.cpu_ms_per_image:>14.3f}{found.cpu_ms_per_image / shards.cpu_ms_per_image:>12.2f}x")

if __name__ == "__main__":
    main()
