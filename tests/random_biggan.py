"""BigGAN-deep with random weights that render finite images, saved like the real weights.

Tests use a tiny config; benchmarks use the published architectures, so speed figures need no
download. Both load through ``--weights DIR``, the same code path as real weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _deep_layers(channels: list[int]) -> list[list]:
    """BigGAN-deep's blocks: at each resolution a plain block, then an up-sampling one."""
    layers = []
    for wide, narrow in zip(channels, channels[1:]):
        layers += [[False, wide, wide], [True, wide, narrow]]
    return layers


_COMMON = {"z_dim": 128, "class_embed_dim": 128, "channel_width": 128, "num_classes": 1000,
           "attention_layer_position": 8, "eps": 1e-4, "n_stats": 51}
BIGGAN_DEEP_CONFIGS = {
    "biggan-deep-128": {**_COMMON, "output_dim": 128, "layers": _deep_layers([16, 16, 8, 4, 2, 1])},
    "biggan-deep-256": {**_COMMON, "output_dim": 256, "layers": _deep_layers([16, 16, 8, 8, 4, 2, 1])},
    "biggan-deep-512": {**_COMMON, "output_dim": 512,
                        "layers": _deep_layers([16, 16, 8, 8, 4, 2, 1, 1])},
}

# 32-pixel BigGAN-deep: three up-sampling blocks, attention at 8x8, narrow channels.
TINY_BIGGAN_CONFIG = {
    "output_dim": 32,
    "z_dim": 128,
    "class_embed_dim": 128,
    "channel_width": 8,
    "num_classes": 1000,
    "layers": [[False, 16, 16], [True, 16, 8], [True, 8, 4], [True, 4, 2], [False, 2, 1]],
    "attention_layer_position": 2,
    "eps": 1e-4,
    "n_stats": 51,
}


def random_biggan(config: dict) -> torch.nn.Module:
    """A randomly initialised BigGAN that gives finite images in eval mode.

    The package leaves the final batch norm's affine parameters uninitialised and draws the spectral
    norm vectors at random; we set the former to identity and the latter to the exact top singular
    vectors, so that eval mode normalises every weight by its true spectral norm.
    """
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    torch.manual_seed(0)
    model = BigGAN(BigGANConfig.from_dict(config))
    with torch.no_grad():
        model.generator.bn.weight.fill_(1.0)
        model.generator.bn.bias.zero_()
        for module in model.modules():
            if hasattr(module, "weight_orig"):
                matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
                left, _, right = torch.linalg.svd(matrix, full_matrices=False)
                module.weight_u.copy_(left[:, 0])
                module.weight_v.copy_(right[0])
            if hasattr(module, "gamma"):
                module.gamma.fill_(0.5)  # attention starts switched off; let it show in the output
    return model.eval()


def write_random_biggan(folder: Path, config: dict) -> Path:
    """A folder with config.json and pytorch_model.bin, as the package's downloads have."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.save(random_biggan(config).state_dict(), folder / "pytorch_model.bin")
    return folder
