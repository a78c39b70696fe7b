"""Training input images/s: a shard set through train.data against torchvision's ImageFolder.

Both read the same JPEGs (the ImageFolder holds the set's anchor views, byte for byte), decode one
per sample and make two augmented views of it with the same recipe, worker count and batch size:
a K = 1 set, the SimCLR case. The ImageFolder runs augment view by view, with torchvision's own
transforms or with train.augment's kernels; the shard loader crops view by view and runs the colour
steps once per batch. images/s counts augmented views delivered to the loop. Without --data
it renders a K = 1 set of 128-px images with the embedded generator first.

    python benchmarks/loader_throughput.py [--data SET] [--groups 1000] [--workers 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torchvision.transforms.v2.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from shards import ShardSet, open_set
from torchvision.transforms import v2

from train.augment import (BLUR_P, BLUR_SIGMA, GRAYSCALE_P, JITTER, JITTER_P, AugmentConfig, ViewAugment,
                           blur_kernel_size)
from train.data import DataSource, build_loader

VIEWS = 2


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
    """The ImageFolder transform: VIEWS augmentations of one decoded image, as uint8 [VIEWS, 3, S, S]."""

    def __init__(self, augment: Callable[[Any], Any]):
        self.augment = augment

    def __call__(self, image: Any) -> torch.Tensor:
        views = [self.augment(image) for _ in range(VIEWS)]
        return torch.stack([F.pil_to_tensor(view) if not isinstance(view, torch.Tensor) else view
                            for view in views])


def images_per_second(epoch_batches: Callable[[int], Iterable], epochs: int) -> float:
    """Views per second over ``epochs`` epochs, after one warm-up epoch (worker start, page cache)."""
    for _ in epoch_batches(0):
        pass
    images, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        for batch in epoch_batches(epoch):
            images += batch[0].shape[0] * batch[0].shape[1]
    return images / (time.perf_counter() - start)


def image_folder_rate(folder: Path, loader: Callable[[str], Any] | None, augment: Callable, args) -> float:
    dataset = ImageFolder(str(folder), transform=AugmentedViews(augment),
                          **({"loader": loader} if loader else {}))
    batches = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                         num_workers=args.workers, persistent_workers=args.workers > 0)
    return images_per_second(lambda epoch: batches, args.epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="shard set to read (default: render a K = 1 set)")
    parser.add_argument("--groups", type=int, default=1000, help="groups to render without --data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--crop-size", type=int, default=AugmentConfig().crop_size)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        location = args.data or render_set(Path(scratch) / "set", args.groups)
        shard_set = open_set(location)
        folder = Path(scratch) / "imagefolder"
        export_anchors(shard_set, folder)
        config = AugmentConfig(crop_size=args.crop_size)
        recipe = torchvision_recipe(config)

        loader = build_loader([DataSource(shard_set)], batch_size=args.batch_size, views=VIEWS, augment=config,
                              num_workers=args.workers, seed=0)
        rows = [
            ("shard set (train.data)", images_per_second(loader.epoch, args.epochs)),
            ("ImageFolder, torchvision on PIL", image_folder_rate(folder, None, recipe, args)),
            ("ImageFolder, torchvision on tensors", image_folder_rate(folder, read_tensor, recipe, args)),
            ("ImageFolder, train.augment per view", image_folder_rate(folder, read_tensor, ViewAugment(config), args)),
        ]

    print(f"{shard_set.groups} groups x {shard_set.views} views of {shard_set.image_size} px, {VIEWS} views "
          f"per sample cropped to {args.crop_size} px, batch {args.batch_size}, {args.workers} workers, "
          f"{args.epochs} timed epochs")
    if shard_set.views > 1:
        print("note: this set has K > 1, so the shard loader decodes two JPEGs per sample, ImageFolder one")
    print(f"{'pipeline':<36}{'images/s':>10}")
    for name, rate in rows:
        print(f"{name:<36}{rate:>10.0f}")
    best_folder = max(rate for _, rate in rows[1:])
    print(f"{'ratio shards / best ImageFolder':<36}{rows[0][1] / best_folder:>9.2f}x")


if __name__ == "__main__":
    main()
