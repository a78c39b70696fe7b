from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as F

from train.augment import (IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, AugmentConfigError, ViewAugment,
                           apply_colour, blur_kernel_size, draw_colour_params, normalize, shift_hue)


def random_images(n: int, height: int = 24, width: int = 20, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("config", [AugmentConfig(crop_size=24), AugmentConfig(crop_size=32, crop_scale_min=0.5, blur=True)])
def test_views_become_uint8_crops_of_the_asked_size(config: AugmentConfig) -> None:
    augment = ViewAugment(config)
    crops = torch.stack([augment.crop(image) for image in random_images(20, 40, 30)])
    assert crops.shape == (20, 3, config.crop_size, config.crop_size) and crops.dtype == torch.uint8
    views = augment.colour(crops)
    assert views.shape == crops.shape and views.dtype == torch.uint8
    assert augment(random_images(1)[0]).shape == (3, config.crop_size, config.crop_size)


def test_every_view_gets_its_own_randomness_reproducible_from_torch_seed() -> None:
    augment = ViewAugment(AugmentConfig(crop_size=16))
    same = random_images(1)[0].expand(8, -1, -1, -1)
    torch.manual_seed(0)
    views = augment.colour(torch.stack([augment.crop(image) for image in same]))
    assert len({bytes(view.numpy()) for view in views}) == 8
    torch.manual_seed(0)
    assert torch.equal(augment.colour(torch.stack([augment.crop(image) for image in same])), views)


def test_colour_parameters_follow_the_recipe() -> None:
    torch.manual_seed(0)
    params = draw_colour_params(20000, blur=True)
    assert all(sorted(row) == [0, 1, 2, 3] for row in params.order[:200].tolist())
    assert abs(params.jitter.float().mean() - 0.8) < 0.02 and abs(params.grayscale.float().mean() - 0.2) < 0.02
    assert abs((params.blur_sigma > 0).float().mean() - 0.5) < 0.02
    blurred = params.blur_sigma[params.blur_sigma > 0]
    assert 0.1 <= blurred.min() and blurred.max() <= 2.0
    low, high = params.factors.min(dim=0).values, params.factors.max(dim=0).values
    torch.testing.assert_close(low, torch.tensor([0.6, 0.6, 0.6, -0.1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(high, torch.tensor([1.4, 1.4, 1.4, 0.1]), atol=1e-3, rtol=0)
    assert (draw_colour_params(100, blur=False).blur_sigma == 0).all()


def test_batched_colour_equals_torchvision_per_view() -> None:
    torch.manual_seed(1)
    images = F.to_dtype(random_images(12), torch.float32, scale=True)
    params = draw_colour_params(12, blur=True)
    assert params.grayscale.any() and not params.jitter.all() and (params.blur_sigma == 0).any()
    expected = []
    for image, order, factors, jitter, gray, sigma in zip(images, params.order, params.factors, params.jitter,
                                                          params.grayscale, params.blur_sigma):
        adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
        for operation in order.tolist() if jitter else []:
            image = adjust[operation](image, float(factors[operation]))
        if gray:
            image = F.rgb_to_grayscale(image, num_output_channels=3)
        if sigma > 0:
            image = F.gaussian_blur(image, [5, 5], [float(sigma)] * 2)
        expected.append(image)
    torch.testing.assert_close(apply_colour(images, params, blur_kernel=5), torch.stack(expected),
                               atol=2e-5, rtol=0)


@pytest.mark.parametrize("hue_factor", [-0.5, -0.1, 0.0, 0.03, 0.1, 0.5])
def test_fast_hue_shift_equals_torchvision(hue_factor: float) -> None:
    image = F.to_dtype(random_images(1, 64, 48)[0], torch.float32, scale=True)
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
