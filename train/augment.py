"""Per-view pixel augmentations (the paper's SimCLR-style recipe) and the normalisation step.

The recipe, per view: RandomResizedCrop(crop, scale=(min, 1)), horizontal flip, ColorJitter(0.4,
0.4, 0.4, 0.1) with p=0.8 (the four adjustments in a random order), grayscale with p=0.2, and
optionally GaussianBlur (sigma in [0.1, 2], kernel about 10% of the crop) with p=0.5.

Crops and flips run view by view (``ViewAugment.crop``); the colour steps run on a whole batch of
crops at once with independent random parameters per view (``ViewAugment.colour``), which equals
torchvision's per-image kernels (tested) and is several times faster than calling them per view.
Views stay uint8 through collation (a quarter of the bytes of float32 between processes and to
the device); the training loop calls ``normalize(images)`` on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as F
from torch.nn.functional import conv2d, pad
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale

# Hue offsets (in sixths of a turn) that turn a hue into the red, green and blue channels.
_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


class AugmentConfigError(ValueError):
    """An augmentation setting is unusable; the message is one sentence for the user."""


@dataclass(frozen=True)
class AugmentConfig:
    """What varies between runs; the colour recipe itself is fixed to the paper's."""

    crop_size: int = 128  # the output side, the size of the 128-px sets the paper trains on
    crop_scale_min: float = 0.2  # RandomResizedCrop keeps between this fraction and all of the area
    blur: bool = False  # GaussianBlur, off in the paper's recipe

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise AugmentConfigError(f"The crop size must be at least 8 pixels, not {self.crop_size}.")
        if not 0 < self.crop_scale_min <= 1:
            raise AugmentConfigError(f"The minimum crop scale must be in (0, 1], not {self.crop_scale_min}.")


@dataclass
class ColourParams:
    """Independent colour randomness for N views."""

    order: torch.Tensor  # int64 [N, 4]: a permutation of (brightness, contrast, saturation, hue) per view
    factors: torch.Tensor  # float32 [N, 4]: brightness, contrast, saturation factors and hue shift
    jitter: torch.Tensor  # bool [N]: whether the jitter applies (p=0.8)
    grayscale: torch.Tensor  # bool [N] (p=0.2)
    blur_sigma: torch.Tensor  # float32 [N]: 0 for views that are not blurred


def draw_colour_params(n: int, blur: bool) -> ColourParams:
    """Parameters drawn as torchvision's ColorJitter, RandomGrayscale and GaussianBlur draw them."""
    low = torch.tensor([1 - JITTER[0], 1 - JITTER[1], 1 - JITTER[2], -JITTER[3]])
    high = torch.tensor([1 + JITTER[0], 1 + JITTER[1], 1 + JITTER[2], JITTER[3]])
    sigma = torch.empty(n).uniform_(*BLUR_SIGMA) * (torch.rand(n) < BLUR_P) if blur else torch.zeros(n)
    return ColourParams(order=torch.rand(n, 4).argsort(dim=1), factors=low + (high - low) * torch.rand(n, 4),
                        jitter=torch.rand(n) < JITTER_P, grayscale=torch.rand(n) < GRAYSCALE_P, blur_sigma=sigma)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> luminance [N, 1, H, W]."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def shift_hue(image: torch.Tensor, hue_factor: float | torch.Tensor) -> torch.Tensor:
    """HSV hue rotation of float images in [0, 1] ([..., 3, H, W]), equal to ``F.adjust_hue``.

    ``hue_factor`` may be a tensor that broadcasts against [..., H, W] (one shift per image). About
    three times faster than torchvision's kernel because it never builds the HSV image: it uses
    value, chroma and hue directly (V - C * clamp(min(k, 4 - k), 0, 1)).
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


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * images + (1.0 - ratio) * other).clamp(0.0, 1.0)


def _adjust(images: torch.Tensor, operation: int, factor: torch.Tensor) -> torch.Tensor:
    """One jitter operation with one factor per image ([N, 1, 1, 1]), as torchvision computes it."""
    if operation == 0:
        return (images * factor).clamp(0.0, 1.0)
    if operation == 1:
        return _blend(images, grayscale(images).mean(dim=(1, 2, 3), keepdim=True), factor)
    if operation == 2:
        return _blend(images, grayscale(images), factor)
    return shift_hue(images, factor.view(-1, 1, 1))


def gaussian_blur(images: torch.Tensor, kernel_size: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image, reflect padding (as ``F.gaussian_blur``)."""
    n, channels, height, width = images.shape
    x = torch.linspace(-(kernel_size - 1) / 2, (kernel_size - 1) / 2, kernel_size, dtype=images.dtype)
    kernels = torch.softmax(-0.5 * (x / sigma.view(-1, 1)) ** 2, dim=1).repeat_interleave(channels, dim=0)
    half = kernel_size // 2
    flat = pad(images, (half, half, half, half), mode="reflect").reshape(1, n * channels, height + 2 * half,
                                                                          width + 2 * half)
    flat = conv2d(flat, kernels.view(-1, 1, 1, kernel_size), groups=n * channels)
    flat = conv2d(flat, kernels.view(-1, 1, kernel_size, 1), groups=n * channels)
    return flat.view(n, channels, height, width)


def apply_colour(images: torch.Tensor, params: ColourParams, blur_kernel: int) -> torch.Tensor:
    """The colour steps on float images [N, 3, H, W] in [0, 1], each view with its own parameters."""
    images = images.clone()
    for step in range(4):
        for operation in range(4):
            chosen = torch.nonzero(params.jitter & (params.order[:, step] == operation)).flatten()
            if len(chosen):
                factor = params.factors[chosen, operation].view(-1, 1, 1, 1)
                images[chosen] = _adjust(images[chosen], operation, factor)
    chosen = torch.nonzero(params.grayscale).flatten()
    images[chosen] = grayscale(images[chosen]).expand(-1, 3, -1, -1)
    chosen = torch.nonzero(params.blur_sigma).flatten()
    if len(chosen):
        images[chosen] = gaussian_blur(images[chosen], blur_kernel, params.blur_sigma[chosen])
    return images


def blur_kernel_size(crop_size: int) -> int:
    """About 10% of the crop, odd (SimCLR's choice)."""
    return max(3, int(0.1 * crop_size) // 2 * 2 + 1)


class ViewAugment:
    """The recipe, split into a per-view crop and a batched colour stage; randomness from torch's generator."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.geometry = v2.Compose([
            v2.RandomResizedCrop(config.crop_size, scale=(config.crop_scale_min, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
        ])
        self.blur_kernel = blur_kernel_size(config.crop_size)

    def crop(self, view: torch.Tensor) -> torch.Tensor:
        """uint8 [3, H, W] -> uint8 [3, crop, crop]."""
        return self.geometry(view)

    def colour(self, views: torch.Tensor) -> torch.Tensor:
        """uint8 crops [N, 3, S, S] -> uint8 [N, 3, S, S], independent colour randomness per view."""
        params = draw_colour_params(len(views), self.config.blur)
        images = apply_colour(F.to_dtype(views, torch.float32, scale=True), params, self.blur_kernel)
        return F.to_dtype(images, torch.uint8, scale=True)

    def __call__(self, view: torch.Tensor) -> torch.Tensor:
        """One view alone: uint8 [3, H, W] -> uint8 [3, crop, crop]."""
        return self.colour(self.crop(view).unsqueeze(0))[0]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., 3, H, W] -> float32 normalised with the ImageNet mean and std, on their device."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255.0 - mean) / std
