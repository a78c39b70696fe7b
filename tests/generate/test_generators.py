"""The embedded deadleaves generator, made through the registry as the job makes it."""

from __future__ import annotations

import pytest
import torch

from generate.generators import GeneratorError, GeneratorOptions, make_generator

CPU = torch.device("cpu")


def deadleaves(resolution: int | None = 64):
    return make_generator("deadleaves", GeneratorOptions(weights=None, device=CPU, truncation=1.0,
                                                         resolution=resolution))


def truncated_normal(count: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(count, dim, generator=torch.Generator().manual_seed(seed)).clamp(-2.0, 2.0)


def mean_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    return (first.float() - second.float()).abs().mean().item()


def test_registry_makes_deadleaves_with_its_description():
    generator = deadleaves(resolution=None)
    assert generator.name == "deadleaves" and generator.resolution == 128
    assert generator.num_classes == len(generator.class_names) >= 8
    assert len(set(generator.class_names)) == generator.num_classes
    assert generator.weights_sha256 is None
    assert 64 <= generator.latent_dim <= 128


@pytest.mark.parametrize("resolution", [16, 33, 96])
def test_images_are_uint8_rgb_of_the_asked_size(resolution):
    generator = deadleaves(resolution)
    images = generator(truncated_normal(5, generator.latent_dim, seed=1), torch.arange(5))
    assert images.dtype == torch.uint8 and images.device == CPU
    assert images.shape == (5, 3, resolution, resolution)
    assert int(images.max()) - int(images.min()) > 128  # uses the range, not a flat image


def test_a_tiny_resolution_is_refused():
    with pytest.raises(GeneratorError, match="at least 8 pixels"):
        deadleaves(resolution=4)


def test_same_latents_give_the_same_bytes_whatever_the_batch():
    z = truncated_normal(11, deadleaves().latent_dim, seed=2)
    classes = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 0, 3, 3])
    batch = deadleaves()(z, classes)
    assert torch.equal(batch, deadleaves()(z, classes))
    one_by_one = torch.cat([deadleaves()(z[i:i + 1], classes[i:i + 1]) for i in range(len(z))])
    assert torch.equal(batch, one_by_one)


def test_every_class_looks_different_from_every_other():
    generator = deadleaves()
    z = truncated_normal(4, generator.latent_dim, seed=3)
    images = [generator(z, torch.full((4,), family)) for family in range(generator.num_classes)]
    for first in range(generator.num_classes):
        for second in range(first + 1, generator.num_classes):
            assert mean_distance(images[first], images[second]) > 10, (first, second)


def test_image_distance_grows_smoothly_with_latent_distance():
    generator = deadleaves()
    z = truncated_normal(16, generator.latent_dim, seed=4)
    noise = truncated_normal(16, generator.latent_dim, seed=5)
    classes = torch.arange(16) % generator.num_classes
    anchors = generator(z, classes)
    distances = [mean_distance(anchors, generator(z + sigma * noise, classes))
                 for sigma in (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)]
    independent = mean_distance(anchors, generator(truncated_normal(16, generator.latent_dim, 6),
                                                   classes))
    assert distances == sorted(distances) and len(set(distances)) == len(distances)
    assert distances[0] < 0.05 * independent
    assert distances[1] < 0.25 * independent
    assert distances[-1] < independent
