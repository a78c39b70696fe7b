from __future__ import annotations

import re

import pytest
import torch
import torchvision.transforms.v2.functional as F

from train.augment import (IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, AugmentConfigError, ViewAugment,
                           blur_kernel_size, normalize, shift_hue)


def random_images(n: int, height: int = 24, width: int = 20, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("config", [AugmentConfig(crop_size=24),
                                    AugmentConfig(crop_size=32, crop_scale_min=0.5, blur=True)])
def test_a_view_becomes_a_uint8_crop_of_the_asked_size(config: AugmentConfig) -> None:
    augment = ViewAugment(config)
    for image in random_images(20, 40, 30):
        view = augment(image)
        assert view.shape == (3, config.crop_size, config.crop_size) and view.dtype == torch.uint8


def test_every_call_draws_fresh_randomness_reproducible_from_torch_seed() -> None:
    augment, image = ViewAugment(AugmentConfig(crop_size=16)), random_images(1)[0]
    torch.manual_seed(0)
    views = [augment(image) for _ in range(8)]
    assert len({bytes(view.numpy()) for view in views}) == 8
    torch.manual_seed(0)
    assert all(torch.equal(augment(image), view) for view in views)


def test_parameters_are_drawn_as_the_recipe_says() -> None:
    torch.manual_seed(0)
    image = random_images(1, 60, 80)[0]
    augment = ViewAugment(AugmentConfig(crop_size=16, crop_scale_min=0.3, blur=True))
    draws = [augment.draw(image) for _ in range(4000)]

    def share(predicate) -> float:
        return sum(map(predicate, draws)) / len(draws)

    assert abs(share(lambda p: bool(p.jitter_order)) - 0.8) < 0.03
    assert abs(share(lambda p: p.grayscale) - 0.2) < 0.03
    assert abs(share(lambda p: p.flip) - 0.5) < 0.03
    assert abs(share(lambda p: p.blur_sigma > 0) - 0.5) < 0.03
    assert all(sorted(p.jitter_order) == [0, 1, 2, 3] for p in draws if p.jitter_order)
    assert len({p.jitter_order for p in draws}) == 25  # all 24 orders, and none
    factors = torch.tensor([p.jitter_factors for p in draws])
    torch.testing.assert_close(factors.min(dim=0).values, torch.tensor([0.6, 0.6, 0.6, -0.1]), atol=2e-3, rtol=0)
    torch.testing.assert_close(factors.max(dim=0).values, torch.tensor([1.4, 1.4, 1.4, 0.1]), atol=2e-3, rtol=0)
    sigmas = [p.blur_sigma for p in draws if p.blur_sigma > 0]
    assert 0.1 <= min(sigmas) and max(sigmas) <= 2.0
    areas = [p.crop[2] * p.crop[3] / (60 * 80) for p in draws]
    assert min(areas) >= 0.28 and max(areas) <= 1.0 and 0.5 < sum(areas) / len(areas) < 0.8
    no_blur = ViewAugment(AugmentConfig(crop_size=16))
    assert all(no_blur.draw(image).blur_sigma == 0 for _ in range(100))


def test_without_colour_a_view_is_the_same_crop_and_flip_with_its_colours_kept() -> None:
    image = random_images(1, 40, 30)[0]
    coloured = ViewAugment(AugmentConfig(crop_size=16))
    plain = ViewAugment(AugmentConfig(crop_size=16, color=False))
    torch.manual_seed(3)
    with_colour = [coloured.draw(image) for _ in range(200)]
    torch.manual_seed(3)
    without = [plain.draw(image) for _ in range(200)]
    assert [(p.crop, p.flip) for p in without] == [(p.crop, p.flip) for p in with_colour]
    assert not any(p.jitter_order or p.grayscale for p in without)
    assert sum(bool(p.jitter_order) for p in with_colour) > 100
    params = without[0]
    expected = F.resized_crop_image(image, *params.crop, [16, 16], antialias=True)
    if params.flip:
        expected = F.horizontal_flip_image(expected)
    assert torch.equal(plain.apply(image, params), expected)


def test_views_equal_torchvision_functions_with_the_same_parameters() -> None:
    config = AugmentConfig(crop_size=24, blur=True)
    augment = ViewAugment(config)
    torch.manual_seed(3)
    adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    seen_jitter = seen_gray = seen_blur = 0
    for image in random_images(30, 40, 36, seed=1):
        params = augment.draw(image)
        expected = F.resized_crop(image, *params.crop, [24, 24], antialias=True)
        expected = F.to_dtype(F.horizontal_flip(expected) if params.flip else expected, torch.float32, scale=True)
        for operation in params.jitter_order:
            expected = adjust[operation](expected, params.jitter_factors[operation])
        if params.grayscale:
            expected = F.rgb_to_grayscale(expected, num_output_channels=3)
        if params.blur_sigma:
            expected = F.gaussian_blur(expected, [blur_kernel_size(24)] * 2, [params.blur_sigma] * 2)
        expected = F.to_dtype(expected, torch.uint8, scale=True)
        difference = (augment.apply(image, params).int() - expected.int()).abs()
        assert difference.max() <= 1 and (difference > 0).float().mean() < 0.01  # float rounding at the end
        seen_jitter += bool(params.jitter_order)
        seen_gray += params.grayscale
        seen_blur += params.blur_sigma > 0
    assert seen_jitter and seen_gray and seen_blur


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


@pytest.mark.parametrize("settings, message", [
    ({"crop_size": 4}, "The crop size must be at least 8 pixels, not 4."),
    ({"crop_scale_min": 0.0}, "The minimum crop scale must be in (0, 1], not 0.0."),
    ({"crop_scale_min": 1.5}, "The minimum crop scale must be in (0, 1], not 1.5."),
])
def test_unusable_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(AugmentConfigError, match=f"^{re.escape(message)}$"):
        AugmentConfig(**settings)
