"""Checkpoints: written atomically, loaded with ``weights_only=True`` (they travel between labs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one sentence."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary name, fsync, rename: a killed run never leaves a half-written file."""
    temp = path.with_name(path.name + ".partial")
    with open(temp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors and plain values; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path} is not a readable genviews checkpoint "
                              f"({str(error).splitlines()[0]}).") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a genviews checkpoint (no model or config).")
    return state
