"""A labelled ImageFolder of grey-like silhouettes drawn as RGB: the miniature experiment's real data.

Ten classes of light shapes on dark backgrounds, each image with its own position, scale,
rotation, stretch, shading and noise, so that a class is recognisable but not a fixed template. The
two grey levels are the same in every image: a level of its own would let an encoder trained on
crops and flips tell images apart by colour alone, and learn nothing of shape. Every image comes
from a generator seeded by (seed, split, class, index) alone: the folder is the same on any machine.

    python -m experiments.silhouettes --out data/silhouettes
"""

from __future__ import annotations

import math
from pathlib import Path
import click
import numpy as np
from PIL import Image, ImageDraw

from common import commands
from common.numbers import seed_range
from common.console import exit_with

SPLITS = ("train", "test")
SUPERSAMPLE = 4  # shapes are drawn this many times larger, then averaged down: soft, antialiased edges
CIRCLE_VERTICES = 48
# Ranges of the random draws, as fractions of the image side: wide enough that a class is no fixed
# template, narrow enough that a pixel-space 20-NN names most test images (the miniature's data).
RADIUS = (0.3, 0.45)
CENTRE_JITTER = 0.12  # shapes may touch the border: pixel-space neighbours must not solve the task
SHAPE_GREY, BACKGROUND_GREY = 0.85, 0.15  # levels in [0, 1], before shading and noise

# A shape is a list of (polygon, filled) parts in unit coordinates (radius about 1, centred):
# filled parts are drawn first, unfilled ones cut holes.
Part = tuple[np.ndarray, bool]


def _polygon(points: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


def _circle(radius: float = 1.0, dx: float = 0.0) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * math.pi, CIRCLE_VERTICES, endpoint=False)
    return np.stack([dx + radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = np.arange(2 * points) * math.pi / points - math.pi / 2
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, 2 * CIRCLE_VERTICES, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 16.0


SHAPES: tuple[tuple[str, list[Part]], ...] = (
    ("disk", [(_circle(1.0), True)]),
    ("square", [(_polygon([(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)]), True)]),
    ("triangle", [(_polygon([(0.0, -1.0), (0.95, 0.7), (-0.95, 0.7)]), True)]),
    ("cross", [(_polygon([(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3),
                          (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]),
                True)]),
    ("ring", [(_circle(1.0), True), (_circle(0.55), False)]),
    ("bar", [(_polygon([(-1.0, -0.25), (1.0, -0.25), (1.0, 0.25), (-1.0, 0.25)]), True)]),
    ("star", [(_star(), True)]),
    ("heart", [(_heart(), True)]),
    ("crescent", [(_circle(1.0), True), (_circle(0.85, dx=0.5), False)]),
    ("diamond", [(_polygon([(0.0, -1.0), (0.55, 0.0), (0.0, 1.0), (-0.55, 0.0)]), True)]),
)


def class_names(classes: int = len(SHAPES)) -> list[str]:
    """Folder names, in class order: ``0-disk``, ``1-square``, ..."""
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes must lie in 1..{len(SHAPES)}, not {classes}")
    return [f"{index}-{name}" for index, (name, _) in enumerate(SHAPES[:classes])]


def _mask(parts: list[Part], rng: np.random.Generator, size: int) -> np.ndarray:
    """Float coverage in [0, 1] of one randomly placed, scaled and rotated shape."""
    big = size * SUPERSAMPLE
    radius = rng.uniform(*RADIUS) * big
    centre = big / 2 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, size=2) * big
    angle = rng.uniform(0.0, 2.0 * math.pi)
    aspect = rng.uniform(0.9, 1.1)  # a mild stretch, so no class is one rigid template
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for points, filled in parts:
        placed = (points * [aspect, 1.0 / aspect]) @ rotation.T * radius + centre
        draw.polygon([tuple(point) for point in placed], fill=255 if filled else 0)
    coverage = np.asarray(canvas, dtype=np.float32).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE)
    return coverage.mean(axis=(1, 3)) / 255.0


def _shaded(grey: float, rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A grey level under a linear brightness ramp in a random direction: [size, size, 1]."""
    direction = rng.uniform(0.0, 2.0 * math.pi)
    axis = (np.arange(size) + 0.5) / size - 0.5
    ramp = math.cos(direction) * axis[None, :] + math.sin(direction) * axis[:, None]
    return grey * (1.0 + strength * rng.uniform(-1.0, 1.0) * ramp)[..., None]


def draw_silhouette(class_index: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One uint8 RGB image [size, size, 3] of class ``class_index``."""
    coverage = _mask(SHAPES[class_index][1], rng, size)[..., None]
    image = (coverage * _shaded(SHAPE_GREY, rng, size, 0.2)
             + (1.0 - coverage) * _shaded(BACKGROUND_GREY, rng, size, 0.3))
    image = image + rng.normal(0.0, 0.02, size=(size, size, 3))  # a little sensor noise, per channel
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_silhouettes(out: Path, train_per_class: int, test_per_class: int, size: int = 32,
                      classes: int = len(SHAPES), seed: int = 0) -> None:
    """Write ``out/{train,test}/CLASS/NNNNN.png``; the same arguments give the same files."""
    names = class_names(classes)
    for split_index, (split, count) in enumerate(zip(SPLITS, (train_per_class, test_per_class))):
        for class_index, name in enumerate(names):
            if count == 0:
                continue
            folder = Path(out) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng([seed, split_index, class_index, index])
                Image.fromarray(draw_silhouette(class_index, rng, size)).save(
                    folder / f"{index:05d}.png")


@commands.command()
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="New or empty folder for the ImageFolder (train/ and test/).")
@click.option("--train-per-class", type=click.IntRange(1), default=800, help="Train images per class.")
@click.option("--test-per-class", type=click.IntRange(0), default=200, help="Test images per class.")
@click.option("--size", type=click.IntRange(8, 1024), default=32, help="Image side in pixels.")
@click.option("--classes", type=click.IntRange(1, len(SHAPES)), default=len(SHAPES),
              help="Number of shape classes.")
@click.option("--seed", type=seed_range(), default=0, help="Seed; each image comes from (seed, split, class, index).")
def main(out: Path, train_per_class: int, test_per_class: int, size: int, classes: int,
         seed: int) -> None:
    """Write a labelled ImageFolder of shape silhouettes (the miniature experiment's real data)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        exit_with(f"{out} already exists and is not an empty folder; choose a new one.")
    write_silhouettes(out, train_per_class, test_per_class, size=size, classes=classes, seed=seed)
    click.echo(f"Wrote {classes * train_per_class} train and {classes * test_per_class} test "
               f"images of {classes} classes to {out}.")


if __name__ == "__main__":
    main()
