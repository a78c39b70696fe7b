"""The embedded default generator: a procedural "dead leaves" image model (Baradad et al., 2021).

An image is a background colour under a stack of occluding shapes. Every shape's position, size,
orientation, proportions and colour come from the latent through one fixed linear map followed by
the normal CDF, and edges are soft (a sigmoid about one pixel wide), so the image is a smooth
function of the latent: nearby latents give similar images. The class picks the shape family.
No weights, no download, torch only, any resolution.

``deadleaves-camera`` looks at the same kind of scene through a camera whose zoom, position and
roll are four more fixed directions of the latent. Each shape has its own position in the latent,
so no straight line through plain deadleaves' latent zooms or rotates the whole image (every shape
would move the same way wherever it is); through the camera one does, as it does in a GAN that has
learned its photographs' framing. Its images differ from plain deadleaves' for the same latent.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from generate.generators.base import GeneratorError, GeneratorOptions, refuse_weights

LATENT_DIM = 128
DEFAULT_RESOLUTION = 128
SHAPES_PER_IMAGE = 32
# Per shape: centre x, centre y, size, angle, proportion, shading, red, green, blue; then the
# background colour, which also tints every shape so that each image has its own palette.
PARAMS_PER_SHAPE = 9
BACKGROUND_PARAMS = 3
# The fixed latent -> parameter map; changing this seed changes every image ever generated.
MAPPING_SEED = 20211206
# Standard deviation of a standard normal truncated to |z| <= 2, so that projected latents map to
# roughly uniform parameters at truncation 1.
TRUNCATED_NORMAL_STD = 0.8796
MIN_SIZE, MAX_SIZE = 0.03, 0.3  # shape radius as a fraction of the image side, drawn log-uniformly
EDGE_PIXELS = 0.6  # width of the soft edge in pixels
# deadleaves-camera: its directions come from their own seed, so the shapes' map stays as it is.
CAMERA_SEED = 20261128
# Per unit of a camera direction's (standardised) latent coordinate: log zoom, horizontal and
# vertical shift in image sides, roll in radians. Coordinates reach about +-2.3 at truncation 1.
CAMERA_SCALES = (0.25, 0.08, 0.08, 0.25)

# A shape family maps local coordinates (u, v), the radius and a proportion in [0, 1] to a signed
# distance in image units: negative inside, about -radius at the centre.
SignedDistance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _disk(u, v, size, proportion):
    return torch.sqrt(u * u + v * v) - size


def _ellipse(u, v, size, proportion):
    aspect = 0.25 + 0.4 * proportion
    return torch.sqrt(u * u + (v / aspect) ** 2) - size


def _square(u, v, size, proportion):
    return torch.maximum(u.abs(), v.abs()) - size


def _triangle(u, v, size, proportion):
    # Equilateral, centred on its incentre; size is the inradius.
    return torch.maximum(-v, (math.sqrt(3.0) * u.abs() + v) * 0.5) - 0.6 * size


def _ring(u, v, size, proportion):
    thickness = size * (0.12 + 0.25 * proportion)
    return (torch.sqrt(u * u + v * v) - size + thickness).abs() - thickness


def _bar(u, v, size, proportion):
    return torch.maximum(u.abs() - 2.5 * size, v.abs() - (0.12 + 0.2 * proportion) * size)


def _cross(u, v, size, proportion):
    arm = (0.2 + 0.2 * proportion) * size
    return torch.minimum(torch.maximum(u.abs() - size, v.abs() - arm),
                         torch.maximum(u.abs() - arm, v.abs() - size))


def _half_disk(u, v, size, proportion):
    return torch.maximum(torch.sqrt(u * u + v * v) - size, -v)


SHAPE_FAMILIES: tuple[tuple[str, SignedDistance], ...] = (
    ("disks", _disk),
    ("ellipses", _ellipse),
    ("squares", _square),
    ("triangles", _triangle),
    ("rings", _ring),
    ("bars", _bar),
    ("crosses", _cross),
    ("half-disks", _half_disk),
)


def _latent_mapping() -> torch.Tensor:
    """The fixed [latent_dim, parameters] projection, each column of unit norm."""
    count = SHAPES_PER_IMAGE * PARAMS_PER_SHAPE + BACKGROUND_PARAMS
    matrix = np.random.default_rng(MAPPING_SEED).standard_normal((LATENT_DIM, count))
    matrix /= np.linalg.norm(matrix, axis=0, keepdims=True)
    return torch.from_numpy(matrix)


def _camera_directions() -> torch.Tensor:
    """The fixed [latent_dim, 4] orthonormal directions of zoom, shift x, shift y and roll."""
    directions, _ = np.linalg.qr(np.random.default_rng(CAMERA_SEED).standard_normal((LATENT_DIM, 4)))
    return torch.from_numpy(directions)


class DeadLeaves:
    """Class-conditional dead-leaves images at any resolution, with or without a camera; see the
    module docstring."""

    latent_dim = LATENT_DIM
    num_classes = len(SHAPE_FAMILIES)
    class_names = [name for name, _ in SHAPE_FAMILIES]
    weights_sha256 = None
    # Whatever precision is asked: there is no matrix work for bf16 to speed up, and soft edges a
    # pixel wide need float32 coordinates.
    precision = "fp32"

    def __init__(self, resolution: int, device: torch.device, camera: bool = False):
        self.name = "deadleaves-camera" if camera else "deadleaves"
        self.resolution = resolution
        self.device = device
        self.mapping = _latent_mapping().to(device)
        self.camera = _camera_directions().to(device) if camera else None
        centres = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
        self.x = centres.view(1, 1, resolution)
        self.y = centres.view(1, resolution, 1)
        self.edge = EDGE_PIXELS / resolution

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        return (self.render_float(latents, classes) * 255.0).round_().to(torch.uint8)

    def render_float(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """Float32 images [N, 3, H, W] in [0, 1], differentiable in the latents (``python -m
        generate.steer`` fits latent walks through it); ``__call__`` quantises exactly these."""
        # Normal CDF of the projected latent: a smooth map to (0, 1), uniform-ish at truncation 1.
        # Float64 so that the batch size (which changes the matmul's blocking) cannot change a byte.
        projected = latents.to(self.device, torch.float64) @ self.mapping / TRUNCATED_NORMAL_STD
        params = (0.5 * (1.0 + torch.erf(projected / math.sqrt(2.0)))).float()
        grid = self._camera_grid(latents) if self.camera is not None else (self.x, self.y, self.edge)
        images = torch.empty(len(latents), 3, self.resolution, self.resolution, device=self.device)
        classes = classes.to(self.device)
        for family in classes.unique().tolist():
            chosen = (classes == family).nonzero().squeeze(1)
            where = [part[chosen] for part in grid] if self.camera is not None else grid  # per image
            images[chosen] = self._render(params[chosen], SHAPE_FAMILIES[family][1], *where)
        return images.clamp(0.0, 1.0)

    def _camera_grid(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where each pixel of each image looks in the scene ([N, H, W] x and y), and the soft
        edge's width in scene units ([N, 1, 1]): pixels are rotated by the roll and divided by the
        zoom about the image centre, then shifted, so a walk along one direction zooms (or rolls)
        about the centre exactly."""
        coordinates = (latents.to(self.device, torch.float64) @ self.camera / TRUNCATED_NORMAL_STD).float()
        scales = torch.tensor(CAMERA_SCALES, device=self.device)
        log_zoom, shift_x, shift_y, roll = (coordinates * scales).unbind(1)
        zoom = torch.exp(log_zoom)[:, None, None]
        cos, sin = torch.cos(roll)[:, None, None], torch.sin(roll)[:, None, None]
        px, py = self.x - 0.5, self.y - 0.5
        scene_x = (cos * px + sin * py) / zoom + 0.5 + shift_x[:, None, None]
        scene_y = (cos * py - sin * px) / zoom + 0.5 + shift_y[:, None, None]
        return scene_x, scene_y, self.edge / zoom

    def _render(self, params: torch.Tensor, signed_distance: SignedDistance, x: torch.Tensor,
                y: torch.Tensor, edge: float | torch.Tensor) -> torch.Tensor:
        count = len(params)
        background = params[:, -BACKGROUND_PARAMS:]
        shapes = params[:, :-BACKGROUND_PARAMS].view(count, SHAPES_PER_IMAGE, PARAMS_PER_SHAPE)
        shapes = shapes[..., None, None]  # broadcast each parameter over the image
        centre_x = shapes[:, :, 0] * 1.2 - 0.1  # let shapes overlap the border
        centre_y = shapes[:, :, 1] * 1.2 - 0.1
        size = MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** shapes[:, :, 2]
        angle = (shapes[:, :, 3] - 0.5) * (2.0 * math.pi)
        cos, sin = torch.cos(angle), torch.sin(angle)
        proportion = shapes[:, :, 4]
        shading = (shapes[:, :, 5] - 0.5) * 0.8 / size  # brightness slope across the shape
        tint = _stretch(background)[:, None, :, None, None]
        colour = torch.lerp(tint, _stretch(shapes[:, :, 6:9, 0, 0])[..., None, None], 0.7)
        image = tint[:, 0].expand(count, 3, self.resolution, self.resolution).clone()
        for index in range(SHAPES_PER_IMAGE):
            dx = x - centre_x[:, index]
            dy = y - centre_y[:, index]
            u = cos[:, index] * dx + sin[:, index] * dy
            v = cos[:, index] * dy - sin[:, index] * dx
            distance = signed_distance(u, v, size[:, index], proportion[:, index])
            coverage = torch.sigmoid(distance.neg_().div_(edge)).unsqueeze(1)
            brightness = (u * shading[:, index]).add_(1.0).unsqueeze(1)
            image.lerp_(colour[:, index] * brightness, coverage)
        return image


def _stretch(colour: torch.Tensor) -> torch.Tensor:
    # The CDF of a projected latent is mostly mid-range: push colours away from grey.
    return torch.sigmoid((colour - 0.5) * 6.0)


def make_deadleaves(options: GeneratorOptions, camera: bool = False) -> DeadLeaves:
    name = "deadleaves-camera" if camera else "deadleaves"
    refuse_weights(name, options)
    resolution = options.resolution or DEFAULT_RESOLUTION
    if resolution < 8:
        raise GeneratorError(f"The {name} generator needs a resolution of at least 8 pixels, "
                             f"not {resolution}.")
    return DeadLeaves(resolution, options.device, camera)


def make_deadleaves_camera(options: GeneratorOptions) -> DeadLeaves:
    return make_deadleaves(options, camera=True)
