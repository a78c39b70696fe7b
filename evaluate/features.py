"""The frozen encoder of a checkpoint and its features on a labelled shard set, extracted once and cached.

Each image is view 0 of its group, its shorter side resized to crop / 0.875 and centre-cropped to the
checkpoint's crop size, then normalised with the trainer's own ``train.augment.normalize`` (the
ImageNet mean and std). Features are cached as ``features-<key>.npz`` in the folder the caller
names (``python -m evaluate`` uses ``<run>/eval/features/`` for every metric), the key a hash of
(checkpoint sha256, set manifest sha256, crop size), so a second run reuses them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torch import nn
from tqdm import tqdm

from shards import Group, ShardSet, open_set
from shards.ingest import ordered_map
from shards.manifest import sha256_file
from shards.reader import decode_group_view
from shards.writer import write_bytes_atomic
from train.augment import normalize
from train.checkpoint import load_checkpoint
from train.models import BACKBONES, build_encoder

CENTER_CROP_FRACTION = 0.875  # the crop keeps 87.5% of the resized side, as in ImageNet evaluation
EXTRACT_BATCH = 256
DECODE_THREADS = min(8, os.cpu_count() or 1)
REQUIRED_CONFIG = ("backbone", "small_images", "crop_size", "image_size")


class EvaluationError(Exception):
    """The checkpoint or sets cannot be evaluated together; the message is one sentence for the user."""


class Features(NamedTuple):
    vectors: np.ndarray  # float32 [N, feature_dim], in anchor order
    labels: np.ndarray  # int64 [N]


@dataclass
class FrozenEncoder:
    """A checkpoint's encoder in eval mode on its device, with what identifies it."""

    module: nn.Module
    config: dict[str, Any]
    path: Path
    sha256: str
    device: torch.device

    @property
    def crop_size(self) -> int:
        return int(self.config["crop_size"])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_backbone(backbone: str, small_images: bool) -> str:
    return f"{backbone} ({'small-image' if small_images else 'ImageNet'} stem)"


def encoder_weights(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "encoder."
    return {key[len(prefix):]: value for key, value in model_state.items() if key.startswith(prefix)}


def weights_fit(encoder: nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    expected = {key: tuple(value.shape) for key, value in encoder.state_dict().items()}
    return expected == {key: tuple(value.shape) for key, value in weights.items()}


def identify_backbone(weights: dict[str, torch.Tensor]) -> str | None:
    """Which known backbone the weights come from, or None when none fits."""
    for backbone, small_images in itertools.product(BACKBONES, (True, False)):
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            encoder, _ = build_encoder(backbone, small_images)
        if weights_fit(encoder, weights):
            return describe_backbone(backbone, small_images)
    return None


def load_encoder(path: str | Path, device: torch.device | None = None) -> FrozenEncoder:
    """The encoder of a training checkpoint, frozen; refuses weights that do not fit its config."""
    path = Path(path)
    state = load_checkpoint(path)
    config, model = state["config"], state["model"]
    check_config(config, path)
    if not isinstance(model, dict) or not all(isinstance(key, str) and isinstance(value, torch.Tensor)
                                              for key, value in model.items()):
        raise EvaluationError(f"{path} holds a model that is not a table of named tensors, so it was not "
                              "written by train/main.py.")
    encoder, _ = build_encoder(config["backbone"], bool(config["small_images"]))
    weights = encoder_weights(model)
    if not weights_fit(encoder, weights):
        named = describe_backbone(config["backbone"], bool(config["small_images"]))
        found = identify_backbone(weights)
        held = f"{found} weights" if found else "encoder weights of no known backbone"
        raise EvaluationError(f"{path} holds {held} but its config names {named}.")
    encoder.load_state_dict(weights)
    device = device or best_device()
    return FrozenEncoder(module=encoder.to(device).eval(), config=config, path=path,
                         sha256=sha256_file(path), device=device)


def check_config(config: Any, path: Path) -> None:
    """Refuse a checkpoint config that train/main.py did not write, in one sentence."""
    if not isinstance(config, dict):
        raise EvaluationError(f"{path} holds a config that is not a dictionary, so it was not written by "
                              "train/main.py.")
    missing = [key for key in REQUIRED_CONFIG if key not in config]
    if missing:
        raise EvaluationError(f"{path} has no {', '.join(missing)} in its config, so it was not written "
                              "by train/main.py.")
    if not isinstance(config["backbone"], str) or config["backbone"] not in BACKBONES:
        raise EvaluationError(f"{path} names backbone {config['backbone']!r} in its config, which is none of "
                              f"{', '.join(BACKBONES)}.")
    sizes = [key for key in ("crop_size", "image_size")
             if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1]
    if sizes:
        raise EvaluationError(f"{path} has a {' and '.join(sizes)} in its config that is not a positive "
                              "integer.")


def open_labelled_set(location: str, encoder: FrozenEncoder) -> ShardSet:
    """A labelled set whose images have the size the encoder was trained on."""
    shard_set = open_set(location)
    if shard_set.num_classes == 0:
        raise EvaluationError(f"{location} is unlabelled; evaluation needs class labels (ingest an "
                              "ImageFolder with python -m shards ingest).")
    if shard_set.image_size != encoder.image_size:
        raise EvaluationError(f"{location} holds {shard_set.image_size}-px images but {encoder.path} was "
                              f"trained on {encoder.image_size}-px images; ingest it with "
                              f"--image-size {encoder.image_size}.")
    return shard_set


def check_same_classes(train_set: ShardSet, val_set: ShardSet) -> None:
    if train_set.class_names != val_set.class_names:
        raise EvaluationError(f"{train_set.location} and {val_set.location} have different class lists; "
                              "the training and validation sets must share one.")


def center_view(image: torch.Tensor, crop_size: int) -> torch.Tensor:
    """uint8 [3, crop, crop] of a decoded view: the shorter side resized to crop / 0.875, then the
    centre crop."""
    image = F.resize(image, [round(crop_size / CENTER_CROP_FRACTION)], antialias=True)
    return F.center_crop(image, [crop_size, crop_size])


def batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def extract_features(encoder: FrozenEncoder, shard_set: ShardSet, batch_size: int = EXTRACT_BATCH,
                     progress: bool = False) -> Features:
    """Features of view 0 of every group; threads decode ahead while the encoder runs. A damaged
    shard or view raises CorruptSampleError with one sentence."""
    def prepare(group: Group) -> tuple[torch.Tensor, int]:
        return center_view(decode_group_view(group, 0), encoder.crop_size), group.label

    vectors, labels = [], []
    with ThreadPoolExecutor(DECODE_THREADS) as pool, torch.inference_mode(), \
            tqdm(total=shard_set.groups, desc="features", unit="img", disable=not progress) as bar:
        prepared = ordered_map(pool, prepare, iter(shard_set), 2 * batch_size)
        for batch in batches(prepared, batch_size):
            images = torch.stack([image for image, _ in batch]).to(encoder.device)
            vectors.append(encoder.module(normalize(images)).float().cpu())
            labels.extend(label for _, label in batch)
            bar.update(len(batch))
    return Features(torch.cat(vectors).numpy(), np.asarray(labels, dtype=np.int64))


def cache_name(encoder: FrozenEncoder, shard_set: ShardSet) -> str:
    key = {"checkpoint_sha256": encoder.sha256, "manifest_sha256": shard_set.manifest_sha256,
           "crop_size": encoder.crop_size}
    return "features-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".npz"


def read_cache(path: Path) -> Features | None:
    """Cached features, or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return Features(stored["vectors"], stored["labels"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # written atomically, so only foreign damage gets here: extract anew


def cached_features(encoder: FrozenEncoder, shard_set: ShardSet, folder: Path,
                    progress: bool = False) -> tuple[Features, Path]:
    """The set's features from the cache in ``folder``, extracting and caching them when absent."""
    path = Path(folder) / cache_name(encoder, shard_set)
    features = read_cache(path)
    if features is None:
        features = extract_features(encoder, shard_set, progress=progress)
        buffer = io.BytesIO()
        np.savez(buffer, vectors=features.vectors, labels=features.labels)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buffer.getvalue())
    return features, path
