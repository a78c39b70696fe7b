from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

from train.augment import (IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, AugmentConfigError, blur_kernel_size,
                           build_augment, normalize, shift_hue)


def random_image(height: int = 40, width: int = 30, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("config", [AugmentConfig(crop_size=24), AugmentConfig(crop_size=32, crop_scale_min=0.5, blur=True)])
def test_a_view_becomes_a_uint8_crop_of_the_asked_size(config: AugmentConfig) -> None:
    augment = build_augment(config)
    for seed in range(20):
        view = augment(random_image(seed=seed))
        assert view.shape == (3, config.crop_size, config.crop_size) and view.dtype == torch.uint8


def test_each_call_draws_fresh_randomness_reproducible_from_torch_seed() -> None:
    augment, image = build_augment(AugmentConfig(crop_size=16)), random_image()
    torch.manual_seed(0)
    first, second = augment(image), augment(image)
    torch.manual_seed(0)
    assert not torch.equal(first, second)
    assert torch.equal(augment(image), first)


def test_pil_images_take_the_same_recipe() -> None:
    pil = F.to_pil_image(random_image())
    view = build_augment(AugmentConfig(crop_size=16))(pil)
    assert isinstance(view, Image.Image) and view.size == (16, 16)


@pytest.mark.parametrize("hue_factor", [-0.5, -0.1, 0.0, 0.03, 0.1, 0.5])
def test_fast_hue_shift_equals_torchvision(hue_factor: float) -> None:
    image = F.to_dtype(random_image(64, 48), torch.float32, scale=True)
    image[:, :8, :8] = 0.3  # gray pixels have no hue
    image[1, 8:16, :8] = image[0, 8:16, :8]  # ties between the largest channels
    torch.testing.assert_close(shift_hue(image, hue_factor), F.adjust_hue(image, hue_factor), atol=1e-5, rtol=0)


def test_blur_kernel_is_odd_and_about_a_tenth_of_the_crop() -> None:
    assert [blur_kernel_size(size) for size in (8, 64, 112, 128, 224)] == [3, 7, 11, 13, 23]


def test_normalize_maps_uint8_to_imagenet_standardised_floats() -> None:
    images = torch.zeros(2, 4, 3, 5, 5, dtype=torch.uint8)
    images[1] = 255
    out = normalize(images)
    assert out.shape == images.shape and out.dtype == torch.float32
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, 0, :, 0, 0], -mean / std)
    torch.testing.assert_close(out[1, 3, :, 4, 4], (1 - mean) / std)


@pytest.mark.parametrize("settings", [{"crop_size": 4}, {"crop_scale_min": 0.0}, {"crop_scale_min": 1.5}])
def test_unusable_settings_are_refused(settings: dict) -> None:
    with pytest.raises(AugmentConfigError):
        AugmentConfig(**settings)
