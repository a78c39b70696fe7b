"""DiT and its VAE with random weights: tiny ones saved in the diffusers layout, or DiT-XL/2-256.

Tests use a tiny DiT (one layer, 4x8x8 latents, 5 classes) with a 16-pixel VAE, saved as
``DiTPipeline.save_pretrained`` writes it, so that it loads through ``--weights DIR`` like real
weights. Benchmarks build DiT-XL/2-256 from its published config with random weights, since none
can be downloaded: its speed is the real model's, its images are noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TINY_TRANSFORMER = {"num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 4, "out_channels": 8,
                    "num_layers": 1, "sample_size": 8, "patch_size": 2, "num_embeds_ada_norm": 5, "norm_num_groups": 4}
TINY_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 2,
            "up_block_types": ("UpDecoderBlock2D",) * 2, "block_out_channels": (8, 8), "latent_channels": 4,
            "norm_num_groups": 4, "layers_per_block": 1, "sample_size": 16}
# facebook/DiT-XL-2-256: the transformer and the Stable Diffusion VAE (stabilityai/sd-vae-ft-ema).
DIT_XL_2_256_TRANSFORMER = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
                            "num_layers": 28, "sample_size": 32, "patch_size": 2, "num_embeds_ada_norm": 1000}
SD_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
          "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512),
          "latent_channels": 4, "layers_per_block": 2, "sample_size": 256, "scaling_factor": 0.18215}


def random_dit(transformer: dict[str, Any], vae: dict[str, Any], device: str = "cpu", seed: int = 0):
    """(DiTTransformer2DModel, AutoencoderKL, DDIMScheduler) with seeded random weights, made on ``device``."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel

    torch.manual_seed(seed)
    with torch.device(device):  # DiT-XL/2's 675M weights initialise in a moment on a GPU
        networks = DiTTransformer2DModel(**transformer), AutoencoderKL(**vae)
    return *networks, DDIMScheduler()  # its schedule stays on the host, as when loaded from a folder


def write_random_dit(folder: Path, transformer: dict[str, Any] = TINY_TRANSFORMER,
                     vae: dict[str, Any] = TINY_VAE) -> Path:
    """A DiT pipeline folder with random weights, as ``DiTPipeline.save_pretrained`` writes it."""
    from diffusers import DiTPipeline

    denoiser, autoencoder, scheduler = random_dit(transformer, vae)
    DiTPipeline(transformer=denoiser, vae=autoencoder, scheduler=scheduler).save_pretrained(folder)
    return folder
