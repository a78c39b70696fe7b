"""Checkpoints: written atomically, loaded with ``weights_only=True`` (they travel between labs)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from shards.writer import write_bytes_atomic


class CheckpointError(Exception):
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
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path} is not a readable genviews checkpoint "
                              f"({str(error).splitlines()[0]}).") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a genviews checkpoint (no model or config).")
    return state
