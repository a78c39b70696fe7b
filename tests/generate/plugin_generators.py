"""Generators defined outside the package, loaded as ``--generator tests.generate.plugin_generators:make_...``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ProjectionGenerator:
    """A smooth toy generator: a fixed random projection of the latent to an 8x8 image, upsampled."""

    latent_dim = 16
    resolution = 32

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.class_names = [f"tone{index}" for index in range(num_classes)]
        weights = torch.Generator().manual_seed(7)
        self.projection = torch.randn(self.latent_dim, 3 * 8 * 8, generator=weights) / 4
        self.class_offsets = torch.randn(max(num_classes, 1), 3 * 8 * 8, generator=weights)

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        pixels = latents @ self.projection
        if classes is not None:
            pixels = pixels + self.class_offsets[classes]
        small = torch.sigmoid(pixels).reshape(-1, 3, 8, 8)
        return (F.interpolate(small, size=self.resolution, mode="bilinear") * 255).round().to(torch.uint8)


def make_conditional() -> ProjectionGenerator:
    return ProjectionGenerator(num_classes=5)


def make_unconditional() -> ProjectionGenerator:
    return ProjectionGenerator(num_classes=0)


def make_broken() -> object:
    """Lacks the attributes a generator must have."""
    return object()


class FloatImages(ProjectionGenerator):
    """Returns floats in [0, 1] instead of uint8 images."""

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return super().__call__(latents, classes).float() / 255


def make_float_images() -> FloatImages:
    return FloatImages(num_classes=5)


def make_failing() -> ProjectionGenerator:
    raise RuntimeError("weights server unreachable")
