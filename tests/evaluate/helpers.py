"""Tiny labelled sets whose images depend on their class, and checkpoints of a random model (a
resnet18 unless told otherwise)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from shards.schema import Group
from tests.shards.helpers import write_set
from train.checkpoint import save_checkpoint
from train.models import build_model

# One colour and one stripe width per class; every image adds its own brightness shift and noise.
PALETTE = {"red": (190, 50, 50), "green": (50, 190, 50), "blue": (50, 50, 190), "gold": (190, 170, 40),
           "violet": (150, 50, 190)}
CLASSES = list(PALETTE)
SIZE = 32


def class_image(label: int, rng: np.random.Generator, size: int = SIZE) -> bytes:
    stripes = (np.arange(size) // (2 + label)) % 2 * 50.0
    pixels = (np.array(PALETTE[CLASSES[label]], dtype=np.float32)[None, None, :] + stripes[None, :, None]
              + rng.uniform(-40, 40) + rng.normal(0, 30, (size, size, 3)))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_labelled_set(directory: Path, groups: int, seed: int, classes: int = len(CLASSES),
                       size: int = SIZE, labelled: bool = True, groups_per_shard: int = 16) -> Path:
    """A real (K = 1) set of ``groups`` images, classes in turn, every image drawn from (seed, anchor)."""
    names = CLASSES[:classes] if labelled else []
    recipe: dict[str, Any] = {
        "kind": "real", "groups": groups, "views": 1,
        "image": {"codec": "jpeg", "quality": 90, "size": size},
        "generator": None, "view_method": {"name": "none"},
        "classes": names, "class_subset": list(range(len(names))),
        "seed": seed, "groups_per_shard": groups_per_shard,
    }
    members = []
    for anchor in range(groups):
        label = anchor % classes
        image = class_image(label, np.random.default_rng([seed, anchor]), size)
        members.append(Group(anchor=anchor, views=[image], label=label if labelled else None,
                             meta={"anchor": anchor, "class": label if labelled else None}))
    write_set(directory, members, recipe)
    return directory


def write_checkpoint(path: Path, seed: int = 0, weights_backbone: str = "resnet18", **config: Any) -> Path:
    """A checkpoint of a randomly initialised model saved as the trainer saves one; ``config`` overrides
    entries of its run config (``backbone`` included, to name another backbone than the weights')."""
    torch.manual_seed(seed)
    model = build_model(weights_backbone, small_images=True, projection_dim=16)
    run_config = {"backbone": weights_backbone, "small_images": True, "projection_dim": 16, "crop_size": SIZE,
                  "image_size": SIZE, "method": "supcon", "data": ["sets/colours"], "epochs": 3, **config}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": model.state_dict(), "config": run_config, "epoch": 3, "step": 9,
                           "optimizer": {}})
    return path
