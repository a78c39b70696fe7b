"""How the tools grow with a set's size: N and 10 N groups of the embedded generator.

For each set it measures, every command in a fresh process as a user runs it: generate's wall time
and peak RSS, ``shards info``, ``shards verify`` with one worker and with every core this process may
use, the trainer's start (launch to its first logged step) and evaluate's feature extraction per
image. It prints each figure, the 10 N / N ratio (linear work should be about 10x, start-up and
memory about 1x) and verify's speed-up.

For a projection to larger images it then renders a small set of 4-view 256-px groups and times
verify's per-image cost there on one core (decode and --no-decode), in this process after the
imports, so that start-up does not count.

    python -m benchmarks.scale [--groups 10000] [--image-size 32] [--projection-groups 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.parallel import usable_cores
from evaluate.features import extract_features, load_frozen_encoder
from shards.reader import decode_group_view, open_set
from shards.verify import verify_set

REPO = Path(__file__).resolve().parent.parent
VIEWS = 2
PROJECTION_SIZE, PROJECTION_VIEWS = 256, 4


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command run to its end; a failure stops the benchmark."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage, not every child's maximum
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed with exit code {process.returncode}.")
    return seconds, usage.ru_maxrss / 1024


def render(folder: Path, groups: int, views: int, image_size: int, groups_per_shard: int = 1000) -> tuple[float, float]:
    return run([sys.executable, "-m", "generate", "--n-anchors", str(groups), "--views", str(views),
                "--image-size", str(image_size), "--groups-per-shard", str(groups_per_shard), "--device", "cpu",
                "--out", str(folder), "--no-progress"])


def shards_command(*args: str) -> float:
    return run([sys.executable, "-m", "shards", *args])[0]


def seconds_to_first_step(data: Path, out: Path) -> float:
    """From launching a 2-step run to its first line of metrics.jsonl (logged after step 1)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "train/main.py", "--data", str(data), "--out", str(out),
                                "--backbone", "convnet-small", "--batch-size", "64", "--steps", "2",
                                "--log-every", "1", "--no-progress"], cwd=REPO, stdout=subprocess.DEVNULL)
    metrics = out / "metrics.jsonl"
    while process.poll() is None and not (metrics.exists() and metrics.stat().st_size):
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if process.wait():
        sys.exit(f"train/main.py on {data} failed with exit code {process.returncode}.")
    return seconds


def feature_ms_per_image(checkpoint: Path, data: Path) -> float:
    """evaluate's feature extraction (decode, centre crop, encoder) over the whole set, on the CPU."""
    encoder = load_frozen_encoder(checkpoint, torch.device("cpu"))
    shard_set = open_set(str(data))
    start = time.perf_counter()
    extract_features(encoder, shard_set)
    return (time.perf_counter() - start) * 1000 / shard_set.groups


def measure_set(folder: Path, groups: int, image_size: int, cores: int) -> dict[str, float]:
    figures = {}
    figures["generate s"], figures["generate peak MiB"] = render(folder / "set", groups, VIEWS, image_size)
    figures["info s"] = shards_command("info", str(folder / "set"))
    for workers in (1, cores):
        figures[f"verify --workers {workers} s"] = shards_command("verify", str(folder / "set"), "--no-progress",
                                                                  "--workers", str(workers))
    figures["trainer first step s"] = seconds_to_first_step(folder / "set", folder / "run")
    figures["features ms/image"] = feature_ms_per_image(folder / "run" / "last.pt", folder / "set")
    return figures


def verify_ms_per_image(folder: Path, groups: int) -> dict[str, float]:
    """One core's verify cost per view of 4-view 256-px groups, imports paid before the clock starts."""
    render(folder, groups, PROJECTION_VIEWS, PROJECTION_SIZE, groups_per_shard=25)
    decode_group_view(next(iter(open_set(str(folder)))), 0)  # torch and torchvision imported
    images = groups * PROJECTION_VIEWS
    rates = {}
    for decode in (True, False):
        start = time.perf_counter()
        if not verify_set(folder, decode=decode).intact:
            sys.exit(f"{folder} does not verify.")
        rates["decode" if decode else "no-decode"] = (time.perf_counter() - start) * 1000 / images
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000, help="N: the small set's groups (the large has 10 N)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--projection-groups", type=int, default=100, help="4-view 256-px groups timed for the projection")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the sets in this folder")
    args = parser.parse_args()
    cores = usable_cores()
    print(f"{cores} usable cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        sizes = (args.groups, 10 * args.groups)
        measured = []
        for groups in sizes:
            measured.append(measure_set(root / f"set-{groups}", groups, args.image_size, cores))
            print(f"{groups} groups measured", flush=True)
        rates = verify_ms_per_image(root / "projection", args.projection_groups)

    small, large = measured
    print(f"\n{'figure':28} {sizes[0]:>12,} {sizes[1]:>12,} {'10x ratio':>10}")
    for name in small:
        print(f"{name:28} {small[name]:12.3f} {large[name]:12.3f} {large[name] / small[name]:10.2f}")
    for figures, groups in zip(measured, sizes):
        speed_up = figures["verify --workers 1 s"] / figures[f"verify --workers {cores} s"]
        print(f"verify speed-up, {cores} workers against 1, {groups:,} groups: {speed_up:.2f}x")
    for mode, milliseconds in rates.items():
        print(f"verify {mode}, one core, {PROJECTION_SIZE}-px views: {milliseconds:.3f} ms/image")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
