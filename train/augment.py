"""Per-view pixel augmentations (the paper's SimCLR-style recipe) and the normalisation step.

The recipe, per view: RandomResizedCrop(crop, scale=(min, 1)), horizontal flip, ColorJitter(0.4,
0.4, 0.4, 0.1) with p=0.8 (the four adjustments in a random order), grayscale with p=0.2, and
optionally GaussianBlur (sigma in [0.1, 2], kernel about 10% of the crop) with p=0.5. Without colour
(``AugmentConfig.color``) a view is cropped and flipped only, at less than half the CPU time per view
at 32 px: an ablation, since two crops of one image then match by their colours alone (on the
miniature's silhouettes that took linear@10 from 52% to 26%, under the random-init floor).

It calls torchvision's v2 image kernels directly on uint8 tensors (floats for the colour steps),
with the parameters drawn as torchvision's transforms draw them; what is skipped is the transforms'
per-call dispatch, and the hue step uses a kernel three times faster than torchvision's. The result
equals torchvision's functions for the same parameters (tested). Views stay uint8 through collation
(a quarter of the bytes of float32 between processes and to the device); the training loop calls
``normalize(images)`` on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import v2

from common.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P = 0.8
GRAYSCALE_P = 0.2
FLIP_P = 0.5
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)

# Hue offsets (in sixths of a turn) that turn a hue into the red, green and blue channels.
_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


class AugmentConfigError(UserError):
    """An augmentation setting is unusable; the message is one sentence for the user."""


@dataclass(frozen=True)
class AugmentConfig:
    """What varies between runs; the colour recipe itself is fixed to the paper's."""

    crop_size: int = 128  # the output side, the size of the 128-px sets the paper trains on
    crop_scale_min: float = 0.2  # RandomResizedCrop keeps between this fraction and all of the area
    blur: bool = False  # GaussianBlur, off in the paper's recipe
    color: bool = True  # ColorJitter and grayscale; off: crops and flips only

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise AugmentConfigError(f"The crop size must be at least 8 pixels, not {self.crop_size}.")
        if not 0 < self.crop_scale_min <= 1:
            raise AugmentConfigError(f"The minimum crop scale must be in (0, 1], not {self.crop_scale_min}.")


@dataclass(frozen=True)
class ViewParams:
    """Every random choice for one view."""

    crop: tuple[int, int, int, int]  # top, left, height, width in the source image
    flip: bool
    jitter_order: tuple[int, ...]  # brightness 0, contrast 1, saturation 2, hue 3; empty: no jitter
    jitter_factors: tuple[float, float, float, float]  # the last one is the hue shift
    grayscale: bool
    blur_sigma: float  # 0: not blurred


def shift_hue(image: torch.Tensor, hue_factor: float | torch.Tensor) -> torch.Tensor:
    """HSV hue rotation of a float image in [0, 1] ([..., 3, H, W]), equal to ``F.adjust_hue``;
    a tensor ``hue_factor`` of shape [..., 1, 1] shifts each image of a batch by its own amount.

    About three times faster than torchvision's kernel because it never builds the HSV image: with
    value V, chroma C and hue h in sixths of a turn, channel n is V - C * clamp(min(k, 4 - k), 0, 1)
    for k = (n + h + 6 * hue_factor) mod 6.
    """
    value = image.amax(dim=-3)
    chroma = value - image.amin(dim=-3)
    red, green, blue = image.unbind(dim=-3)
    # the hue times the chroma; its sector offset is taken modulo 6 with the channel offsets below
    scaled_hue = torch.where(value == red, green - blue,
                             torch.where(value == green, (blue - red).add_(chroma, alpha=2.0),
                                         (red - green).add_(chroma, alpha=4.0)))
    hue = scaled_hue.div_(torch.where(chroma > 0, chroma, 1.0)).add_(6.0 * hue_factor)  # gray: any hue
    offsets = torch.tensor(_CHANNEL_OFFSETS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    k = (offsets + hue.unsqueeze(-3)).remainder_(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return ramp.mul_(chroma.unsqueeze(-3)).neg_().add_(value.unsqueeze(-3))


def blur_kernel_size(crop_size: int) -> int:
    """About 10% of the crop, odd (SimCLR's choice)."""
    return max(3, int(0.1 * crop_size) // 2 * 2 + 1)


class ViewAugment:
    """One view's augmentation: uint8 [3, H, W] -> uint8 [3, crop, crop], randomness from torch's generator."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.crop = v2.RandomResizedCrop(config.crop_size, scale=(config.crop_scale_min, 1.0), antialias=True)
        self.blur_kernel = blur_kernel_size(config.crop_size)

    def draw(self, view: torch.Tensor) -> ViewParams:
        """The parameters, drawn as torchvision's RandomResizedCrop, ColorJitter, ... draw them."""
        return self.draw_for_size(*view.shape[-2:])

    def draw_for_size(self, height: int, width: int) -> ViewParams:
        """``draw`` for a view of this size that is not decoded (yet): the same random numbers, in
        the same order, so ``train.gpu_augment`` makes the views the CPU path makes."""
        box = self.crop.make_params([torch.empty(3, height, width, device="meta")])
        uniform = torch.rand(12).tolist()
        low = (1 - JITTER[0], 1 - JITTER[1], 1 - JITTER[2], -JITTER[3])
        high = (1 + JITTER[0], 1 + JITTER[1], 1 + JITTER[2], JITTER[3])
        # The same numbers are drawn with colour off, so crops and flips do not depend on it.
        jitter = self.config.color and uniform[0] < JITTER_P
        order = sorted(range(4), key=lambda index: uniform[1 + index]) if jitter else []
        blurred = self.config.blur and uniform[10] < BLUR_P
        return ViewParams(
            crop=(box["top"], box["left"], box["height"], box["width"]),
            flip=uniform[9] < FLIP_P,
            jitter_order=tuple(order),
            jitter_factors=tuple(lo + (hi - lo) * u for lo, hi, u in zip(low, high, uniform[5:9])),
            grayscale=self.config.color and uniform[11] < GRAYSCALE_P,
            blur_sigma=BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * torch.rand(1).item() if blurred else 0.0,
        )

    def apply(self, view: torch.Tensor, params: ViewParams) -> torch.Tensor:
        size = [self.config.crop_size] * 2
        image = F.resized_crop_image(view, *params.crop, size, antialias=True)
        if params.flip:
            image = F.horizontal_flip_image(image)
        image = F.to_dtype_image(image, torch.float32, scale=True)  # colour kernels are ~3x faster on floats
        for operation in params.jitter_order:
            factor = params.jitter_factors[operation]
            if operation == 0:
                image = F.adjust_brightness_image(image, factor)
            elif operation == 1:
                image = F.adjust_contrast_image(image, factor)
            elif operation == 2:
                image = F.adjust_saturation_image(image, factor)
            else:
                image = shift_hue(image, factor)
        if params.grayscale:
            image = F.rgb_to_grayscale_image(image, num_output_channels=3)
        if params.blur_sigma:
            image = F.gaussian_blur_image(image, [self.blur_kernel] * 2, [params.blur_sigma] * 2)
        return F.to_dtype_image(image, torch.uint8, scale=True)

    def __call__(self, view: torch.Tensor) -> torch.Tensor:
        return self.apply(view, self.draw(view))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., 3, H, W] -> float32 normalised with the ImageNet mean and std, on their device."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255.0 - mean) / std
