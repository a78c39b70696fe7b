"""Per-view pixel augmentations (the paper's SimCLR-style recipe) and the normalisation step.

Views stay uint8 from decoding through collation (a quarter of the bytes of float32 between worker
processes and to the device); the training loop calls ``normalize(images)`` on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The paper's recipe: ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale with p=0.2.
JITTER = (0.4, 0.4, 0.4, 0.1)
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)

# Hue offsets (in sixths of a turn) that turn a hue into the red, green and blue channels.
_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


class AugmentConfigError(ValueError):
    """An augmentation setting is unusable; the message is one sentence for the user."""


@dataclass(frozen=True)
class AugmentConfig:
    """What varies between runs; the colour recipe itself is fixed to the paper's."""

    crop_size: int = 128  # the output side, the size of the 128-px sets the paper trains on
    crop_scale_min: float = 0.2  # RandomResizedCrop keeps between this fraction and all of the area
    blur: bool = False  # GaussianBlur (p=0.5, kernel about 10% of the crop), off in the paper's recipe

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise AugmentConfigError(f"The crop size must be at least 8 pixels, not {self.crop_size}.")
        if not 0 < self.crop_scale_min <= 1:
            raise AugmentConfigError(f"The minimum crop scale must be in (0, 1], not {self.crop_scale_min}.")


def shift_hue(image: torch.Tensor, hue_factor: float) -> torch.Tensor:
    """HSV hue rotation of a float image in [0, 1] ([..., 3, H, W]), equal to ``F.adjust_hue``.

    About three times faster than torchvision's tensor kernel because it never builds the HSV
    image: it uses value, chroma and hue directly (V - C * clamp(min(k, 4 - k), 0, 1)).
    """
    value = image.amax(dim=-3)
    chroma = value - image.amin(dim=-3)
    red, green, blue = image.unbind(dim=-3)
    safe_chroma = torch.where(chroma > 0, chroma, 1.0)  # gray pixels: any hue gives the same colour
    hue = torch.where(value == red, ((green - blue) / safe_chroma).remainder(6.0),
                      torch.where(value == green, (blue - red) / safe_chroma + 2.0,
                                  (red - green) / safe_chroma + 4.0))
    offsets = torch.tensor(_CHANNEL_OFFSETS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    k = (offsets + (hue + 6.0 * hue_factor).unsqueeze(-3)).remainder(6.0)
    return value.unsqueeze(-3) - chroma.unsqueeze(-3) * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


class ColorJitter(v2.ColorJitter):
    """torchvision's ColorJitter with the faster hue kernel on float tensors (PIL input is unchanged)."""

    def _call_kernel(self, functional: Callable, inpt: Any, *args: Any, **kwargs: Any) -> Any:
        if functional is F.adjust_hue and isinstance(inpt, torch.Tensor) and inpt.is_floating_point():
            return shift_hue(inpt, kwargs["hue_factor"])
        return super()._call_kernel(functional, inpt, *args, **kwargs)


def blur_kernel_size(crop_size: int) -> int:
    """About 10% of the crop, odd (SimCLR's choice)."""
    return max(3, int(0.1 * crop_size) // 2 * 2 + 1)


def build_augment(config: AugmentConfig) -> v2.Compose:
    """One view's augmentation: uint8 [3, H, W] -> uint8 [3, crop, crop], fresh randomness per call."""
    steps: list[Any] = [
        v2.RandomResizedCrop(config.crop_size, scale=(config.crop_scale_min, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),  # colour kernels run about 3x faster on floats than on uint8
        v2.RandomApply([ColorJitter(*JITTER)], p=JITTER_P),
        v2.RandomGrayscale(p=GRAYSCALE_P),
    ]
    if config.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(config.crop_size), sigma=BLUR_SIGMA)],
                                    p=BLUR_P))
    steps.append(v2.ToDtype(torch.uint8, scale=True))
    return v2.Compose(steps)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., 3, H, W] -> float32 normalised with the ImageNet mean and std, on their device."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255.0 - mean) / std
