"""The frozen encoder of a checkpoint and its features on a labelled shard set, extracted once and cached.

Each image is view 0 of its group, its shorter side resized to crop / 0.875 and centre-cropped to the
checkpoint's crop size, then normalised with the trainer's own ``train.augment.normalize`` (the
ImageNet mean and std). Features are cached as ``features-<key>.npz`` in the folder the caller
names (``python -m evaluate`` uses ``--out``/features/, or ``<run>/eval/features/`` shared by every
metric), the key a hash of (checkpoint sha256, set manifest sha256, crop size), so a second run
reuses them.
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

from common.errors import UserError
from common.files import make_folder, sha256_file, write_bytes_atomic
from common.parallel import ordered_map
from shards import Group, ShardSet, open_set
from shards.reader import decode_group_view
from train.augment import normalize
from train.checkpoint import load_encoder

CENTER_CROP_FRACTION = 0.875  # the crop keeps 87.5% of the resized side, as in ImageNet evaluation
EXTRACT_BATCH = 256
DECODE_THREADS = min(8, os.cpu_count() or 1)


class EvaluationError(UserError):
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


def load_frozen_encoder(path: str | Path, device: torch.device | None = None) -> FrozenEncoder:
    """The encoder of a training checkpoint (rebuilt by ``train.checkpoint.load_encoder``), frozen
    on ``device``."""
    path = Path(path)
    encoder, config = load_encoder(path)
    device = device or best_device()
    return FrozenEncoder(module=encoder.to(device), config=config, path=path, sha256=sha256_file(path),
                         device=device)


def open_labelled_set(location: str, encoder: FrozenEncoder, allow_pipe: bool = False) -> ShardSet:
    """A labelled set whose images have the size the encoder was trained on (``allow_pipe``: a
    pipe:COMMAND location may run its command)."""
    shard_set = open_set(location, allow_pipe)
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
    if not vectors:
        raise EvaluationError(f"{shard_set.location} holds no images, so there is nothing to evaluate on.")
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
        make_folder(path.parent)
        write_bytes_atomic(path, buffer.getvalue())
    return features, path
