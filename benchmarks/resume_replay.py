"""What a resume inside an epoch costs the loader: time to the first batch of an epoch resumed at
batch --start, against the same from the epoch's start and against making --start batches (what a
replay that decoded them would add). Workers replay their part by reading the tars and drawing the
views' random numbers from JPEG headers, without decoding.

    python -m benchmarks.resume_replay --data SET [--start 15] [--batch-size 16] [--crop-size 112] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

from shards import open_set
from train.augment import AugmentConfig
from train.data import build_loader
from train.sources import DataSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="shard set to read")
    parser.add_argument("--start", type=int, default=15, help="the batch the epoch resumes at")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=112)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sources = [DataSource(open_set(args.data))]

    def epoch(start: int):
        loader = build_loader(sources, batch_size=args.batch_size, augment=AugmentConfig(crop_size=args.crop_size),
                              num_workers=args.workers, seed=0)
        return loader.epoch(0, start=start)

    print("| round | first batch from the start | first batch resumed at --start | --start batches made |")
    print("|---|---|---|---|")
    for round_index in range(1, args.rounds + 1):
        started = time.perf_counter()
        batches = epoch(0)
        next(batches)
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.start):
            next(batches)
        made = time.perf_counter() - started
        started = time.perf_counter()
        next(epoch(args.start))
        resumed = time.perf_counter() - started
        print(f"| {round_index} | {first:.2f} s | {resumed:.2f} s | {made:.2f} s |")


if __name__ == "__main__":
    main()
