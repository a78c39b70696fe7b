"""--gpu-augment's module: the same parameter draws as the CPU path, and views close to its views.

Measured on the CPU (decode and augment on the CPU device, 64 views of three sizes): the largest
difference from the CPU path is 1 level of 255, in about 5 pixels in a million (float rounding
of the batched colour steps). On CUDA the resize and the JPEG decoder differ as well (see
train/gpu_augment.py); benchmarks/gpu_check.sh measures it there.
"""

from __future__ import annotations

import io

import pytest
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

from shards.reader import decode_view
from train.augment import AugmentConfig, ViewAugment, ViewParams
from train.gpu_augment import NO_STEP, BatchViewAugment, ViewParamsBatch, decode_views, draw_params

SIZES = [(64, 64), (48, 80), (96, 72)]
CONFIGS = [AugmentConfig(crop_size=32), AugmentConfig(crop_size=48, crop_scale_min=0.3, blur=True)]


def as_tensors(data: list[bytes]) -> list[torch.Tensor]:
    """JPEG bytes as decode_views takes them: 1-D uint8 tensors on the CPU."""
    return [torch.frombuffer(bytearray(jpeg), dtype=torch.uint8) for jpeg in data]


def jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Smooth random images with some noise, of three sizes, as JPEG."""
    generator = torch.Generator().manual_seed(seed)
    encoded = []
    for index in range(count):
        height, width = SIZES[index % len(SIZES)]
        smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=generator),
                                                 size=(height, width), mode="bicubic")[0]
        noise = torch.randint(-20, 21, (3, height, width), generator=generator)
        image = (smooth.clamp(0, 1) * 255).round().int().add(noise).clamp(0, 255).to(torch.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


@pytest.mark.parametrize("config", CONFIGS)
def test_parameters_are_drawn_exactly_as_the_cpu_path_draws_them(config):
    augment, data = ViewAugment(config), jpegs(40)
    torch.manual_seed(11)
    on_cpu = [augment.draw(decode_view(jpeg)) for jpeg in data]
    after_cpu = torch.rand(1)
    torch.manual_seed(11)
    batch = draw_params(augment, [SIZES[index % 3] for index in range(40)])
    assert torch.equal(torch.rand(1), after_cpu)  # as many random numbers taken
    expected = ViewParamsBatch.from_params(on_cpu)
    for name in expected.__dataclass_fields__:
        assert torch.equal(getattr(batch, name), getattr(expected, name)), name
    assert (batch.jitter_order == NO_STEP).all(dim=1).any() and (batch.jitter_order >= 0).all(dim=1).any()
    assert batch.grayscale.any() and batch.flips.any() and (batch.blur_sigmas > 0).any() == config.blur


def augment_both_ways(config: AugmentConfig, data: list[bytes], device: torch.device):
    augment = ViewAugment(config)
    torch.manual_seed(5)
    on_cpu = torch.stack([augment(decode_view(jpeg)) for jpeg in data])
    torch.manual_seed(5)
    views = decode_views(as_tensors(data), device)
    params = draw_params(augment, [tuple(view.shape[-2:]) for view in views])
    batched = BatchViewAugment(config)(views, params.to(device))
    return on_cpu, batched


@pytest.mark.parametrize("config", CONFIGS)
def test_views_on_the_cpu_device_match_the_cpu_path_within_one_level(config):
    on_cpu, batched = augment_both_ways(config, jpegs(64), torch.device("cpu"))
    assert batched.shape == on_cpu.shape == (64, 3, config.crop_size, config.crop_size)
    assert batched.dtype == torch.uint8
    difference = (batched.int() - on_cpu.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_on_cuda_stay_close_to_the_cpu_path():
    on_cpu, batched = augment_both_ways(CONFIGS[1], jpegs(64), torch.device("cuda"))
    difference = (batched.cpu().int() - on_cpu.int()).abs().float()
    assert difference.mean() < 2.0  # nvJPEG and the float resize differ from libjpeg and uint8


def test_a_batch_without_jitter_or_blur_is_only_cropped_and_flipped():
    config = AugmentConfig(crop_size=16)
    views = decode_views(as_tensors(jpegs(2)), torch.device("cpu"))
    plain = ViewParamsBatch.from_params([
        ViewParams(crop=(0, 0, 64, 64), flip=False, jitter_order=(), jitter_factors=(1.0, 1.0, 1.0, 0.0),
                   grayscale=False, blur_sigma=0.0),
        ViewParams(crop=(8, 16, 32, 48), flip=True, jitter_order=(), jitter_factors=(1.0, 1.0, 1.0, 0.0),
                   grayscale=False, blur_sigma=0.0)])
    out = BatchViewAugment(config)(views, plain)
    assert torch.equal(out[0], F.resized_crop_image(views[0], 0, 0, 64, 64, [16, 16], antialias=True))
    flipped = F.horizontal_flip_image(F.resized_crop_image(views[1], 8, 16, 32, 48, [16, 16], antialias=True))
    assert torch.equal(out[1], flipped)
