"""Generators defined outside the package, loaded as ``--generator tests.generate.plugin_generators:make_...``."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from generate.generators import GeneratorOptions


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


def make_conditional(options: GeneratorOptions) -> ProjectionGenerator:
    return ProjectionGenerator(num_classes=5)


def make_unconditional(options: GeneratorOptions) -> ProjectionGenerator:
    return ProjectionGenerator(num_classes=0)


def make_broken(options: GeneratorOptions) -> object:
    """Lacks the attributes a generator must have."""
    return object()


class FloatImages(ProjectionGenerator):
    """Returns floats in [0, 1] instead of uint8 images."""

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return super().__call__(latents, classes).float() / 255


def make_float_images(options: GeneratorOptions) -> FloatImages:
    return FloatImages(num_classes=5)


def make_failing(options: GeneratorOptions) -> ProjectionGenerator:
    raise RuntimeError("weights server unreachable")


class FromWeights(ProjectionGenerator):
    """Takes its class names from ``--weights DIR/classes.json``, renders at ``--image-size`` on ``--device``."""

    def __init__(self, options: GeneratorOptions):
        names = json.loads((options.weights / "classes.json").read_text())
        super().__init__(num_classes=len(names))
        self.class_names = names
        self.resolution = options.resolution or 16
        self.device = options.device
        self.weights_sha256 = "from-" + options.weights.name


def make_from_weights(options: GeneratorOptions) -> FromWeights:
    return FromWeights(options)


def _with(**attributes: object):
    def make(options: GeneratorOptions) -> ProjectionGenerator:
        generator = ProjectionGenerator(num_classes=5)
        for name, value in attributes.items():
            setattr(generator, name, value)
        return generator
    return make


make_no_latent = _with(latent_dim=0)
make_negative_classes = _with(num_classes=-1)
make_zero_resolution = _with(resolution=0)
make_bool_latent = _with(latent_dim=True)


class MetaImages(ProjectionGenerator):
    """Returns tensors on the meta device: shapes without data."""

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return torch.empty(len(latents), 3, 32, 32, dtype=torch.uint8, device="meta")


class RaisesWhileRendering(ProjectionGenerator):
    """Fails inside its call, as a generator asking for an absent device does."""

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return super().__call__(latents.to("cuda:7"), classes)


def make_meta_images(options: GeneratorOptions) -> MetaImages:
    return MetaImages(num_classes=5)


def make_raising(options: GeneratorOptions) -> RaisesWhileRendering:
    return RaisesWhileRendering(num_classes=5)
