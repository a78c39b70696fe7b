"""The pixel-space transforms that steered views imitate in latent space (Jahanian et al.).

A transform has one or more parameters, and one latent walk direction is learned per parameter
(``color`` has three: red, green and blue). A parameter's amount ``alpha`` is in the natural units
below, and is drawn from a range while fitting (its default range here) and while generating (the
range recorded in the walk file, or ``--steer-range``):

| direction | alpha | default range |
|---|---|---|
| ``color.red``, ``color.green``, ``color.blue`` | added to the channel (pixels in [0, 1]) | -0.25 .. 0.25 |
| ``brightness``, ``contrast`` | log2 of the factor | -0.5 .. 0.5 |
| ``saturation`` | log2 of the factor | -1 .. 1 |
| ``hue`` | turn of the hue circle | -0.1 .. 0.1 |
| ``zoom`` | log2 of the scale (positive magnifies) | -1 .. 1 |
| ``shiftx``, ``shifty`` | shift as a fraction of the image side (right, down) | -0.25 .. 0.25 |
| ``rotate`` | degrees, counter-clockwise | -45 .. 45 |

The ranges of ``color``, ``zoom``, ``shift`` and ``rotate`` are those of the steerability paper's
code (its colour offset of +-0.5 is on images in [-1, 1]; its zoom of 0.25..4x is narrowed here to
0.5..2x and its shift of up to half the side to a quarter, which a generator without a notion of a
scene can still follow). Geometric and colour transforms are torchvision's (``affine``,
``adjust_brightness``, ...); ``color`` adds an offset per channel, the paper's colour walk, which
torchvision has no function for. ``apply`` returns the transformed images and a mask that is 0
where a geometric transform brings pixels in from outside the image, so the loss ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from common.errors import UserError

DEFAULT_TRANSFORMS = ("color", "zoom", "shiftx", "shifty", "rotate")
MASK_THRESHOLD = 0.999  # a pixel counts when at least this much of it comes from inside the image


class TransformError(UserError):
    """An unknown transform or direction name; the message is one sentence."""


# One image [C, H, W] in [0, 1] and the amounts of the transform's parameters -> the image.
ImageOp = Callable[[torch.Tensor, list[float]], torch.Tensor]


@dataclass(frozen=True)
class Transform:
    name: str
    parameters: tuple[str, ...]  # direction names, one walk each
    default_range: tuple[float, float]  # the same for every parameter of the transform
    geometric: bool  # moves pixels (and so needs a mask), or only changes their colour
    op: ImageOp

    def apply(self, image: torch.Tensor, alphas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed image [C, H, W] and its mask [1, H, W] (1 where the loss counts)."""
        if not self.geometric:
            return self.op(image, alphas), torch.ones_like(image[:1])
        # One call moves the image and a plane of ones, whose coverage becomes the mask.
        moved = self.op(torch.cat([image, torch.ones_like(image[:1])]), alphas)
        return moved[:-1], (moved[-1:] >= MASK_THRESHOLD).to(image.dtype)


def _affine(angle: float = 0.0, shift: tuple[float, float] = (0.0, 0.0),
            log2_scale: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    def op(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        return TF.affine(image, angle=angle, translate=[shift[0] * width, shift[1] * height],
                         scale=2.0 ** log2_scale, shear=[0.0, 0.0],
                         interpolation=InterpolationMode.BILINEAR, fill=0.0)
    return op


def _color(image: torch.Tensor, alphas: list[float]) -> torch.Tensor:
    offset = torch.tensor(alphas, dtype=image.dtype, device=image.device)
    return (image + offset[:, None, None]).clamp(0.0, 1.0)


TRANSFORMS: dict[str, Transform] = {transform.name: transform for transform in (
    Transform("color", ("color.red", "color.green", "color.blue"), (-0.25, 0.25), False, _color),
    Transform("brightness", ("brightness",), (-0.5, 0.5), False,
              lambda image, a: TF.adjust_brightness(image, 2.0 ** a[0])),
    Transform("contrast", ("contrast",), (-0.5, 0.5), False,
              lambda image, a: TF.adjust_contrast(image, 2.0 ** a[0])),
    Transform("saturation", ("saturation",), (-1.0, 1.0), False,
              lambda image, a: TF.adjust_saturation(image, 2.0 ** a[0])),
    Transform("hue", ("hue",), (-0.1, 0.1), False, lambda image, a: TF.adjust_hue(image, a[0])),
    Transform("zoom", ("zoom",), (-1.0, 1.0), True,
              lambda image, a: _affine(log2_scale=a[0])(image)),
    Transform("shiftx", ("shiftx",), (-0.25, 0.25), True,
              lambda image, a: _affine(shift=(a[0], 0.0))(image)),
    Transform("shifty", ("shifty",), (-0.25, 0.25), True,
              lambda image, a: _affine(shift=(0.0, a[0]))(image)),
    Transform("rotate", ("rotate",), (-45.0, 45.0), True,
              lambda image, a: _affine(angle=a[0])(image)),
)}


def parse_transforms(text: str) -> list[Transform]:
    """``color,zoom,...`` -> the transforms, in the order given; unknown or repeated names refused."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise TransformError(f"--transforms needs at least one of {', '.join(TRANSFORMS)}.")
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown:
        raise TransformError(f"Unknown transform {unknown[0]!r}; choose from {', '.join(TRANSFORMS)}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TransformError(f"The transform {repeated[0]!r} is named twice in --transforms.")
    return [TRANSFORMS[name] for name in names]


def apply_transforms(images: torch.Tensor, assignments: list[tuple[Transform, list[float]]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image [N, 3, H, W] in [0, 1] through its own transform and amounts; the images and
    masks [N, 1, H, W]. torchvision takes one set of amounts per call, hence the loop."""
    pairs = [transform.apply(image, alphas) for image, (transform, alphas) in zip(images, assignments)]
    return torch.stack([image for image, _ in pairs]), torch.stack([mask for _, mask in pairs])

