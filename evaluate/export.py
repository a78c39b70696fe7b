"""``python -m evaluate export``: a checkpoint's encoder alone, in safetensors, for other labs.

The file holds the encoder's weights under the names of the network the backbone names (a timm
backbone's load into ``timm.create_model(name, num_classes=0)``, a ResNet's into torchvision's
``resnet50()`` without its ``fc``), and the run's backbone, stem and crop size as metadata (text, as safetensors keeps it).
"""

from __future__ import annotations

from pathlib import Path

from common.files import write_bytes_atomic
from train.checkpoint import load_encoder


def export_encoder(checkpoint: Path, out: Path) -> dict[str, str]:
    """Writes the encoder of ``checkpoint`` to ``out`` (atomically); returns the file's metadata."""
    from safetensors.torch import save  # imported here: the other commands do not need it

    encoder, config = load_encoder(checkpoint)
    metadata = {"backbone": config["backbone"], "small_images": str(bool(config["small_images"])).lower(),
                "crop_size": str(config["crop_size"])}
    tensors = {name: value.contiguous() for name, value in encoder.state_dict().items()}
    write_bytes_atomic(out, save(tensors, metadata=metadata))
    return metadata

