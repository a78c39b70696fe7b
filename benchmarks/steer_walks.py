"""Steered views on the embedded generator: do fitted walks imitate their transforms?

Fits walks on the embedded generator (``deadleaves-camera`` by default: plain ``deadleaves`` has no
latent direction that zooms or rolls the whole image) with ``python -m generate.steer`` (a
subprocess, as a user runs it),
prints the held-out masked MSE of the fitted walks against random directions of the same norm and
against no walk at all, then renders a small steered set per direction group and draws its contact
sheet (``python -m shards show``) so the transforms can be looked at.

    python -m benchmarks.steer_walks [--generator deadleaves-camera] [--minutes 3]
        [--transforms zoom,shiftx,shifty] [--image-size 32] [--lr 0.001] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate.walks import load_walks

SHEET_ANCHORS, SHEET_VIEWS, SHEET_PIXELS = 6, 5, 96


def run(*args: object) -> str:
    command = [sys.executable, "-m", *map(str, args)]
    # One CPU thread: on a shared machine the small sets render faster so (steer uses one anyway).
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="deadleaves-camera", help="deadleaves or deadleaves-camera.")
    parser.add_argument("--minutes", type=float, default=3.0, help="Fitting budget.")
    parser.add_argument("--transforms", default="zoom,shiftx,shifty")
    parser.add_argument("--image-size", type=int, default=32, help="Side at which images are compared.")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="Folder for walks, sets and sheets.")
    options = parser.parse_args()
    out = options.out or Path(tempfile.mkdtemp(prefix="steer-walks-"))
    out.mkdir(parents=True, exist_ok=True)
    walks_path = out / f"{options.generator}.pt"

    started = time.monotonic()
    print(run("generate.steer", "--generator", options.generator, "--transforms", options.transforms,
              "--minutes", options.minutes, "--image-size", options.image_size, "--lr", options.lr,
              "--seed", options.seed, "--device", "cpu", "--no-progress", "--out", walks_path), end="")
    wall = time.monotonic() - started
    walks = load_walks(walks_path)
    settings = walks.document["settings"]
    print(f"\n{options.generator}, {options.transforms} at {options.image_size} px, lr {options.lr:g}, batch "
          f"{settings['batch_size']}: {settings['samples']} samples in {settings['seconds'] / 60:.1f} "
          f"minutes of fitting ({wall / 60:.1f} minutes wall, evaluation included)\n")
    print("| transform | fitted walk | random direction, same norm | no walk | random / fitted | "
          "fitted / no walk |")
    print("|---|---|---|---|---|---|")
    for name, row in walks.document["evaluation"].items():
        print(f"| {name} | {row['fitted']:.5f} | {row['random_direction']:.5f} | {row['no_walk']:.5f} | "
              f"{row['random_direction'] / row['fitted']:.2f} | {row['fitted'] / row['no_walk']:.2f} |")
    norms = walks.document["directions"].norm(dim=1).tolist()
    print("\ndirection norms (latent change per unit of alpha): "
          + ", ".join(f"{name} {norm:.2f}" for name, norm in zip(walks.names, norms)))

    groups = {name.split(".")[0] for name in walks.names}
    for group in sorted(groups):
        folder = out / f"set-{group}"
        run("generate", "--generator", options.generator, "--view-method", "steer", "--walks", walks_path,
            "--steer-directions", group, "--n-anchors", SHEET_ANCHORS, "--views", SHEET_VIEWS,
            "--image-size", SHEET_PIXELS, "--seed", options.seed, "--device", "cpu", "--no-progress",
            "--out", folder)
        sheet = out / f"sheet-{group}.png"
        run("shards", "show", folder, "--groups", SHEET_ANCHORS, "--thumb-size", SHEET_PIXELS,
            "--out", sheet)
        print(f"contact sheet of the {group} walk: {sheet}")


if __name__ == "__main__":
    main()
