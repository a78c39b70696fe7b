"""The validation split: a part of the real train split on which the experiment makes its choices.

``carve`` copies a labelled ImageFolder's images into ``fit/`` and ``val/`` ImageFolders: in every
class, a generator seeded by (seed, class index) alone shuffles the sorted file names and the first
``fraction`` of them go to ``val/``. The record (``split.json``) names every validation image, so the
split can be checked and rebuilt anywhere. The test split is no part of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from common.files import sha256_bytes, write_json_atomic
from shards.ingest import list_folder

PARTS = ("fit", "val")


def carve(train: Path, out: Path, fraction: float, seed: int) -> dict[str, Any]:
    """Write ``out/fit`` and ``out/val`` from the ImageFolder ``train`` and return the split's record
    (also written to ``out/split.json``, last, as the mark that the split is complete)."""
    classes, images, _ = list_folder(train)
    chosen: list[str] = []
    for label, name in enumerate(classes):
        paths = sorted(image.relative for image in images if image.label == label)
        order = np.random.default_rng([seed, label]).permutation(len(paths))
        count = max(1, round(fraction * len(paths)))
        val = {paths[index] for index in order[:count]}
        chosen.extend(sorted(val))
        for relative in paths:
            target = out / ("val" if relative in val else "fit") / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(train / relative, target)
    record = {"source": str(train), "fraction": fraction, "seed": seed,
              "rule": "per class, numpy.random.default_rng([seed, class index]) shuffles the sorted file names; "
                      "the first round(fraction * n) are validation",
              "val_images": len(chosen), "fit_images": len(images) - len(chosen),
              "val_list_sha256": sha256_bytes("\n".join(chosen).encode()), "val": chosen}
    write_json_atomic(out / "split.json", record)
    return record
