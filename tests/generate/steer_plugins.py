"""Plug-in generators for steering tests, loaded as ``--generator tests.generate.steer_plugins:make_...``.

``SoftBlob`` is a ``torch.nn.Module`` with a ``render_float`` method: one soft disk on a tinted
background, whose centre moves linearly with the latent's first two coordinates, so a shift walk
can imitate a shift exactly and a fit converges in a few dozen steps.
"""

from __future__ import annotations

import torch

from generate.generators import GeneratorOptions

SIDE = 16
CENTRE_SCALE = 0.15  # the blob's centre is 0.5 + CENTRE_SCALE * (z0, z1), in image sides


class SoftBlob(torch.nn.Module):
    latent_dim = 8

    def __init__(self, num_classes: int = 3, resolution: int = SIDE):
        super().__init__()
        self.num_classes = num_classes
        self.resolution = resolution
        self.class_names = [f"blob{index}" for index in range(num_classes)]
        weights = torch.Generator().manual_seed(11)
        self.colour = torch.nn.Parameter(torch.randn(self.latent_dim - 3, 3, generator=weights) / 3)
        self.class_tint = torch.nn.Parameter(torch.rand(max(num_classes, 1), 3, generator=weights))
        self.weights_sha256 = "blob-weights"
        self.device = torch.device("cpu")

    def render_float(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        latents = latents.float()
        grid = (torch.arange(self.resolution, dtype=torch.float32) + 0.5) / self.resolution
        x, y = grid.view(1, 1, -1), grid.view(1, -1, 1)
        centre_x = (0.5 + CENTRE_SCALE * latents[:, 0]).view(-1, 1, 1)
        centre_y = (0.5 + CENTRE_SCALE * latents[:, 1]).view(-1, 1, 1)
        radius = (0.22 * 2.0 ** (0.25 * latents[:, 2])).view(-1, 1, 1)
        distance = torch.sqrt((x - centre_x) ** 2 + (y - centre_y) ** 2 + 1e-8)
        coverage = torch.sigmoid((radius - distance) * self.resolution / 1.5).unsqueeze(1)
        colour = torch.sigmoid(latents[:, 3:] @ self.colour)[:, :, None, None]  # colour: z3..z7
        if classes is None:
            classes = torch.zeros(len(latents), dtype=torch.long)
        tint = self.class_tint[classes]
        return torch.lerp(0.2 + 0.3 * tint[:, :, None, None], colour, coverage)

    def forward(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return (self.render_float(latents, classes) * 255).round().clamp(0, 255).to(torch.uint8)


def make_blob(options: GeneratorOptions) -> SoftBlob:
    return SoftBlob()


def make_blob_other_weights(options: GeneratorOptions) -> SoftBlob:
    blob = SoftBlob()
    blob.weights_sha256 = "other-weights"
    return blob


class RaisingBlob(SoftBlob):
    def render_float(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        raise RuntimeError("no gradients today")


def make_raising_blob(options: GeneratorOptions) -> RaisingBlob:
    return RaisingBlob()


class DetachedBlob(SoftBlob):
    """Has a render_float, but its images do not depend differentiably on the latents."""

    def render_float(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return super().render_float(latents.detach(), classes).detach()


def make_detached_blob(options: GeneratorOptions) -> DetachedBlob:
    return DetachedBlob()
