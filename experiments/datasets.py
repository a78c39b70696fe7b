"""The labelled image sets of the suite, each written as an ImageFolder (train/ and test/) from what
the project's declared dependencies install, with no download:

- ``silhouettes``: the project's own shapes (``experiments.silhouettes``), 10 classes;
- ``digits``: scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``, 1,797
  images of 8x8 pixels, 10 classes, BSD-3-Clause; from the UCI optical digits set), upscaled;
- ``glyphs``: the letters A to J drawn from the fonts that matplotlib ships (DejaVu, STIX, Computer
  Modern), each with its own font, size, rotation, place and two random colours.

Every image comes from a generator seeded by the dataset's seed and the image alone, so a folder is
the same on any machine. ``needs_color_augment`` is the suite's one rule for pixel augmentation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from experiments.silhouettes import write_silhouettes

GLYPHS = "ABCDEFGHIJ"
GLYPH_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
               "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf",
               "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf",
               "cmb10.ttf")
# Colour augmentation iff the pixels' channels differ by more than this (mean over pixels of
# max - min over R, G, B, on 0..255): grey images with per-channel noise stay below it.
COLOR_SPREAD = 16.0


def write_digits(out: Path, train_per_class: int, test_per_class: int, size: int = 32, seed: int = 0) -> None:
    """scikit-learn's 8x8 digits, bicubically upscaled to ``size``: per class, in an order drawn with
    the seed, ``test_per_class`` test images, then up to ``train_per_class`` of the rest (174 to 183
    images per class in all)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        rows = rng.permutation(np.flatnonzero(digits.target == label))
        train_end = test_per_class + train_per_class
        for split, chosen in (("test", rows[:test_per_class]), ("train", rows[test_per_class:train_end])):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for row in chosen:
                grey = Image.fromarray((digits.images[row] * (255 / 16)).round().astype(np.uint8))
                grey.resize((size, size), Image.BICUBIC).convert("RGB").save(folder / f"{row:05d}.png")


def draw_glyph(letter: str, rng: np.random.Generator, size: int, fonts: Path) -> Image.Image:
    """One letter in a random font, size, rotation and place, in a random colour on another."""
    background = rng.integers(0, 256, size=3)
    foreground = (background + rng.integers(96, 160, size=3)) % 256  # far enough apart to read
    scale = 4  # drawn large, then reduced: antialiased edges
    canvas = Image.new("RGB", (size * scale, size * scale), tuple(int(v) for v in background))
    font = ImageFont.truetype(str(fonts / GLYPH_FONTS[rng.integers(len(GLYPH_FONTS))]),
                              int(size * scale * rng.uniform(0.55, 0.8)))
    layer = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(layer).text((canvas.width / 2, canvas.height / 2), letter, fill=255, font=font, anchor="mm")
    angle = rng.uniform(-20.0, 20.0)
    shift = rng.uniform(-0.1, 0.1, size=2) * canvas.width
    layer = layer.rotate(angle, resample=Image.BICUBIC, translate=tuple(shift))
    canvas.paste(Image.new("RGB", canvas.size, tuple(int(v) for v in foreground)), mask=layer)
    return canvas.resize((size, size), Image.LANCZOS)


def write_glyphs(out: Path, train_per_class: int, test_per_class: int, size: int = 32, seed: int = 0) -> None:
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for split_index, (split, count) in enumerate((("train", train_per_class), ("test", test_per_class))):
        for label, letter in enumerate(GLYPHS):
            folder = out / split / letter
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng([seed, split_index, label, index])
                draw_glyph(letter, rng, size, fonts).save(folder / f"{index:05d}.png")


def writers(train_per_class: int, test_per_class: int) -> dict[str, Callable[[Path], None]]:
    """Dataset name -> a function that writes it into an empty folder."""
    return {
        "silhouettes": lambda out: write_silhouettes(out, train_per_class, test_per_class),
        "digits": lambda out: write_digits(out, train_per_class, test_per_class),
        "glyphs": lambda out: write_glyphs(out, train_per_class, test_per_class),
    }


def color_spread(folder: Path, sample: int = 200) -> float:
    """Mean over pixels of (max - min over R, G, B), on 0..255, over up to ``sample`` train images
    taken evenly from the sorted file list."""
    paths = sorted((folder / "train").rglob("*.png"))
    step = max(1, math.ceil(len(paths) / sample))
    spreads = []
    for path in paths[::step]:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        spreads.append(float((pixels.max(axis=2) - pixels.min(axis=2)).mean()))
    return float(np.mean(spreads))


def needs_color_augment(folder: Path) -> bool:
    """The suite's rule: colour jitter and grayscale iff the images are not grey (see COLOR_SPREAD)."""
    return color_spread(folder) > COLOR_SPREAD
