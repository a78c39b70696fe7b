"""Checkpoints: what they hold, how they are written and read, and how an encoder is rebuilt from one.

A checkpoint is ``{"model": state_dict, "optimizer": ..., "epoch", "step", "config": resolved
options}``, written atomically and loaded with ``weights_only=True`` (checkpoints travel between
labs). ``load_encoder`` is the one way to get a trained encoder back: the evaluator calls it.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.errors import UserError
from common.files import read_head, write_bytes_atomic
from train.models import BACKBONES, ModelConfigError, build_encoder, check_backbone

ENCODER_PREFIX = "encoder."  # the encoder's weights inside the model's state_dict
REQUIRED_CONFIG = ("backbone", "small_images", "crop_size", "image_size")
ZIP_MAGIC = b"PK\x03\x04"  # how every file torch.save writes starts
TEXT_PROBE_BYTES = 4096  # what is read of a file that is not a checkpoint, to say what it is


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one sentence."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written to a temporary name, fsynced and renamed: a killed run never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors and plain values; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    head = read_head(path, TEXT_PROBE_BYTES, CheckpointError)
    if not head.startswith(ZIP_MAGIC):
        raise CheckpointError(f"{path} is not a genviews checkpoint: it is {_file_kind(head)}, not the zip "
                              "archive that torch.save writes.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path} is not a readable genviews checkpoint: {_load_failure(path, error)}.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a genviews checkpoint (no model or config).")
    return state


def _load_failure(path: Path, error: Exception) -> str:
    """Why a file that starts like a zip archive did not load, in the words of a user, not torch's."""
    if not zipfile.is_zipfile(path):
        return "it starts like a zip archive but is cut short or damaged"
    if "Weights only load failed" in str(error):
        return "it holds Python objects that only unpickling would rebuild, and checkpoints are never unpickled"
    return f"it is a zip archive that torch.load cannot read ({type(error).__name__})"


def _file_kind(head: bytes) -> str:
    """What a file that is not a checkpoint looks like, from its first bytes."""
    if not head:
        return "an empty file"
    text = head[:TEXT_PROBE_BYTES].decode("utf-8", "replace")
    if "\ufffd" in text[:-1] or "\0" in text:  # the last character may be cut by the probe
        return "a file of another kind"
    return "a text file"


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder of a training checkpoint on the CPU in eval mode, and the run's config; refuses
    a config train/main.py did not write and weights that do not fit the backbone it names."""
    path = Path(path)
    state = load_checkpoint(path)
    config, model = state["config"], state["model"]
    _check_config(config, path)
    if not isinstance(model, dict) or not all(isinstance(key, str) and isinstance(value, torch.Tensor)
                                              for key, value in model.items()):
        raise CheckpointError(f"{path} holds a model that is not a table of named tensors, so it was not "
                              "written by train/main.py.")
    encoder, _ = build_encoder(config["backbone"], bool(config["small_images"]))
    weights = {key[len(ENCODER_PREFIX):]: value for key, value in model.items()
               if key.startswith(ENCODER_PREFIX)}
    if not _weights_fit(encoder, weights):
        named = _describe_backbone(config["backbone"], bool(config["small_images"]))
        found = _identify_backbone(weights)
        held = f"{found} weights" if found else "encoder weights of no known backbone"
        raise CheckpointError(f"{path} holds {held} but its config names {named}.")
    encoder.load_state_dict(weights)
    return encoder.eval(), config


def _check_config(config: Any, path: Path) -> None:
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a config that is not a dictionary, so it was not written by "
                              "train/main.py.")
    missing = [key for key in REQUIRED_CONFIG if key not in config]
    if missing:
        raise CheckpointError(f"{path} has no {', '.join(missing)} in its config, so it was not written "
                              "by train/main.py.")
    if not isinstance(config["backbone"], str):
        raise CheckpointError(f"{path} names backbone {config['backbone']!r} in its config, which is not a name.")
    try:
        check_backbone(config["backbone"])
    except ModelConfigError as error:
        raise CheckpointError(f"{path} names backbone {config['backbone']!r} in its config, which cannot be "
                              f"built: {error}") from None
    sizes = [key for key in ("crop_size", "image_size")
             if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1]
    if sizes:
        raise CheckpointError(f"{path} has a {' and '.join(sizes)} in its config that is not a positive "
                              "integer.")


def _describe_backbone(backbone: str, small_images: bool) -> str:
    if backbone == "convnet-small":
        return backbone  # one network at every image size: it has no stem to choose
    return f"{backbone} ({'small-image' if small_images else 'ImageNet'} stem)"


def _weights_fit(encoder: nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    expected = {key: tuple(value.shape) for key, value in encoder.state_dict().items()}
    return expected == {key: tuple(value.shape) for key, value in weights.items()}


def _identify_backbone(weights: dict[str, torch.Tensor]) -> str | None:
    """Which known backbone the weights come from, or None when none fits."""
    for backbone, small_images in itertools.product(BACKBONES, (True, False)):
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            encoder, _ = build_encoder(backbone, small_images)
        if _weights_fit(encoder, weights):
            return _describe_backbone(backbone, small_images)
    return None
