from __future__ import annotations

import pytest
import torch
from torch import nn

from train.models import ModelConfigError, build_model


def last_feature_map_size(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    sizes = []
    hook = model.encoder.layer4.register_forward_hook(lambda module, inputs, output: sizes.append(output.shape[-2:]))
    model(images)
    hook.remove()
    return tuple(sizes[0])


def test_resnet18_small_stem_at_32_pixels() -> None:
    model = build_model("resnet18", small_images=True)
    images = torch.randn(2, 3, 32, 32)

    assert model.feature_dim == 512
    assert model.encoder(images).shape == (2, 512)
    assert model(images).shape == (2, 128)
    # the CIFAR stem only downsamples 8 times: 32 px keeps a 4x4 map where the ImageNet stem keeps 1x1
    assert last_feature_map_size(model, images) == (4, 4)


def test_resnet18_imagenet_stem_at_64_pixels() -> None:
    model = build_model("resnet18", small_images=False, projection_dim=32)
    images = torch.randn(2, 3, 64, 64)

    assert model.encoder(images).shape == (2, 512)
    assert model(images).shape == (2, 32)
    assert last_feature_map_size(model, images) == (2, 2)


def test_resnet50_features_and_projection_head() -> None:
    model = build_model("resnet50", small_images=False)
    images = torch.randn(2, 3, 32, 32)

    assert model.feature_dim == 2048
    assert model.encoder(images).shape == (2, 2048)
    assert model(images).shape == (2, 128)
    linear_shapes = [(layer.in_features, layer.out_features) for layer in model.projector if isinstance(layer, nn.Linear)]
    assert linear_shapes == [(2048, 2048), (2048, 128)]
    assert [type(layer) for layer in model.projector] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ModelConfigError, match="Unknown backbone 'vit'; choose one of resnet18, resnet50."):
        build_model("vit", small_images=True)
    assert issubclass(ModelConfigError, ValueError)


def test_projection_dimension_must_be_positive() -> None:
    with pytest.raises(ModelConfigError, match="at least 1"):
        build_model("resnet18", small_images=True, projection_dim=0)
