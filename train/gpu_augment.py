"""Decode and augment a batch of views on the training device (``--gpu-augment``).

The CPU path (``train.augment.ViewAugment``) decodes each JPEG and augments it in a loader worker.
Here the worker only reads each view's size from its JPEG header and draws the view's parameters
with ``ViewAugment.draw_for_size`` and the same torch generator, so the draws are the CPU path's,
number for number; the JPEG bytes and the parameters travel to the training process
(``train.data.EncodedBatch``), where ``torchvision.io.decode_jpeg`` decodes the batch on the device
(nvJPEG on CUDA) and the augmentations run as batched tensor operations, each sample with its own
parameters (``train.data.DeviceAugment`` puts the pieces together).

What differs from the CPU path: the crop's resize runs in float32 on the device instead of
torchvision's uint8 kernel on the CPU, nvJPEG's inverse DCT is not libjpeg's, and batched colour
steps round a little differently; ``tests/train/test_gpu_augment.py`` and
``tests/train/test_gpu_augment_training.py`` state by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torchvision.transforms.v2.functional as F

from shards.reader import error_summary
from train.augment import AugmentConfig, ViewAugment, ViewParams, blur_kernel_size, shift_hue

NO_STEP = -1  # in ViewParamsBatch.jitter_order: this sample has no colour jitter


@dataclass(frozen=True)
class ViewParamsBatch:
    """The parameters of N views as tensors, so that they collate and move to the device."""

    crops: torch.Tensor  # int64 [N, 4]: top, left, height, width
    flips: torch.Tensor  # bool [N]
    jitter_order: torch.Tensor  # int64 [N, 4]: operation at each step (NO_STEP: no jitter)
    jitter_factors: torch.Tensor  # float32 [N, 4]: brightness, contrast, saturation, hue
    grayscale: torch.Tensor  # bool [N]
    blur_sigmas: torch.Tensor  # float32 [N]; 0: not blurred

    @classmethod
    def from_params(cls, params: Sequence[ViewParams]) -> ViewParamsBatch:
        return cls(
            crops=torch.tensor([p.crop for p in params], dtype=torch.int64).view(-1, 4),
            flips=torch.tensor([p.flip for p in params], dtype=torch.bool),
            jitter_order=torch.tensor([p.jitter_order or (NO_STEP,) * 4 for p in params],
                                      dtype=torch.int64).view(-1, 4),
            jitter_factors=torch.tensor([p.jitter_factors for p in params], dtype=torch.float32).view(-1, 4),
            grayscale=torch.tensor([p.grayscale for p in params], dtype=torch.bool),
            blur_sigmas=torch.tensor([p.blur_sigma for p in params], dtype=torch.float32),
        )

    def select(self, indices: torch.Tensor) -> ViewParamsBatch:
        """The parameters of views ``indices`` (int64), in that order (repeats allowed)."""
        return ViewParamsBatch(*(getattr(self, name)[indices] for name in self.__dataclass_fields__))

    def to(self, device: torch.device) -> ViewParamsBatch:
        return ViewParamsBatch(*(getattr(self, name).to(device, non_blocking=True)
                                 for name in self.__dataclass_fields__))


def draw_params(augment: ViewAugment, sizes: Sequence[tuple[int, int]]) -> ViewParamsBatch:
    """Each view's parameters, from its (height, width), drawn in order as the CPU path would."""
    return ViewParamsBatch.from_params([augment.draw_for_size(height, width) for height, width in sizes])


def decode_views(jpegs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEGs (1-D uint8 tensors of their bytes, on the CPU) -> uint8 [3, H, W] RGB images on
    ``device``, decoded as one batch; raises RuntimeError when any of them does not decode."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device)


def decode_each(jpegs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor | str]:
    """Each JPEG decoded alone: its image, or the decoder's reason (a few words) why it does not
    decode. For a batch that failed to decode, since a batch decoder does not say which JPEG failed."""
    decoded: list[torch.Tensor | str] = []
    for jpeg in jpegs:
        try:
            decoded += decode_views([jpeg], device)
        except RuntimeError as error:
            decoded.append(error_summary(error))
    return decoded


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _luma(images: torch.Tensor) -> torch.Tensor:
    return F.rgb_to_grayscale_image(images, num_output_channels=1)


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    ratio = _per_sample(ratio)
    return (images * ratio + other * (1.0 - ratio)).clamp_(0.0, 1.0)


def _brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (images * _per_sample(factors)).clamp_(0.0, 1.0)


def _contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, _luma(images).mean(dim=(1, 2, 3), keepdim=True), factors)


def _saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, _luma(images), factors)


def _hue(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return shift_hue(images, factors.view(-1, 1, 1))


# Indexed as ViewParams.jitter_order counts: brightness 0, contrast 1, saturation 2, hue 3.
_JITTER_STEPS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    _brightness, _contrast, _saturation, _hue)


class BatchViewAugment:
    """Decoded views and their parameters -> uint8 views [N, 3, crop, crop] on the views' device."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.blur_kernel = blur_kernel_size(config.crop_size)

    def __call__(self, views: Sequence[torch.Tensor], params: ViewParamsBatch) -> torch.Tensor:
        images = self._crops(views, params.crops.tolist())
        images = torch.where(_per_sample(params.flips), images.flip(-1), images)
        images = F.to_dtype_image(images, torch.float32, scale=True)
        images = self._jitter(images, params.jitter_order, params.jitter_factors)
        gray = _luma(images).expand_as(images)
        images = torch.where(_per_sample(params.grayscale), gray, images)
        images = self._blur(images, params.blur_sigmas)
        return F.to_dtype_image(images, torch.uint8, scale=True)

    def _crops(self, views: Sequence[torch.Tensor], crops: list[list[int]]) -> torch.Tensor:
        # One resize per view: crops differ in size, and the antialiased resize has no batched form.
        size = [self.config.crop_size] * 2
        return torch.stack([F.resized_crop_image(view, *crop, size, antialias=True)
                            for view, crop in zip(views, crops)])

    @staticmethod
    def _jitter(images: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """At each of the 4 steps, every sample gets the operation its own order puts there."""
        for step in range(order.shape[1]):
            for operation, adjust in enumerate(_JITTER_STEPS):
                chosen = (order[:, step] == operation).nonzero().squeeze(1)
                if len(chosen):
                    images[chosen] = adjust(images[chosen], factors[chosen, operation])
        return images

    def _blur(self, images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        kernel = [self.blur_kernel] * 2
        for index in sigmas.nonzero().squeeze(1).tolist():  # per sample: each has its own sigma
            sigma = float(sigmas[index])
            images[index] = F.gaussian_blur_image(images[index], kernel, [sigma, sigma])
        return images
