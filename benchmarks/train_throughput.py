"""Training images/s with the real shard loader against the same batch held in memory.

The ratio says whether the input pipeline keeps up with the model (1.0: training never waits for
data). Without --data it renders a set with the embedded generator first.

    python -m benchmarks.train_throughput [--data SET] [--backbone resnet18] [--image-size 64]
    python -m benchmarks.train_throughput --no-channels-last   # the memory format's share, as a ratio
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from train.augment import AugmentConfig
from train.data import Batch, build_loader
from train.sources import open_sources
from train.loop import training_step
from train.models import build_model
from train.optim import build_optimizer


def images_per_second(batches: Iterable[Batch], step: Callable[[Batch], torch.Tensor], steps: int,
                      warmup: int) -> float:
    batches = iter(batches)
    for batch in itertools.islice(batches, warmup):
        step(batch)
    images, start = 0, time.perf_counter()
    for batch in itertools.islice(batches, steps):
        loss = step(batch)
        images += batch.images.shape[0] * batch.images.shape[1]
    loss.item()  # waits for the device
    return images / (time.perf_counter() - start)


def render_set(folder: Path, groups: int, image_size: int) -> str:
    subprocess.run([sys.executable, "-m", "generate", "--n-anchors", str(groups), "--image-size",
                    str(image_size), "--out", str(folder), "--no-progress"], check=True)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="shard set to read (default: render one)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="the channels-last memory format, the trainer's default on CUDA and CPUs")
    parser.add_argument("--small-stem", action=argparse.BooleanOptionalAction, default=True,
                        help="the 3x3 stride-1 stem the trainer uses at 64 px and below")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        groups = args.batch_size * (args.steps + args.warmup + 1)
        data = args.data or render_set(Path(scratch) / "set", groups, args.image_size)
        loader = build_loader(open_sources([data]), batch_size=args.batch_size, views=2,
                              augment=AugmentConfig(crop_size=args.image_size),
                              num_workers=args.workers, pin_memory=args.device != "cpu")
        torch.manual_seed(0)
        model = build_model(args.backbone, small_images=args.small_stem).to(args.device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer("sgd", model, lr=0.01, weight_decay=1e-4)
        precision = (torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16
                     else contextlib.nullcontext())

        def step(batch: Batch) -> torch.Tensor:
            return training_step(model, optimizer, batch, supervised=False, temperature=0.1,
                                 precision=precision, channels_last=args.channels_last)

        from_loader = images_per_second(loader.epoch(0), step, args.steps, args.warmup)
        held = next(iter(loader.epoch(1)))
        in_memory = images_per_second(itertools.repeat(held), step, args.steps, args.warmup)

    setup = ", ".join(["small stem" if args.small_stem else "ImageNet stem", args.device]
                      + (["bf16"] if args.bf16 else [])
                      + (["channels-last"] if args.channels_last else ["contiguous"]))
    print(f"\n{args.backbone} ({setup}) at {args.image_size} px, batch {args.batch_size} x 2 views, "
          f"{args.workers} workers, {torch.get_num_threads()} threads")
    print("| input | images/s |\n|---|---|")
    print(f"| shard loader | {from_loader:.1f} |")
    print(f"| batch in memory | {in_memory:.1f} |")
    print(f"| ratio loader / memory | {from_loader / in_memory:.2f} |")


if __name__ == "__main__":
    main()
