from __future__ import annotations

import pytest
import torch
from torch import nn

from common.errors import UserError
from train.losses import contrastive_loss
from train.choices import BACKBONE_NAMES
from train.models import BACKBONES, ModelConfigError, build_encoder, build_model


def last_feature_map_size(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    sizes = []
    hook = model.encoder.layer4.register_forward_hook(lambda module, inputs, output: sizes.append(output.shape[-2:]))
    model(images)
    hook.remove()
    return tuple(sizes[0])


def test_the_command_line_offers_every_backbone_built() -> None:
    assert sorted(BACKBONE_NAMES) == sorted(BACKBONES)


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


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def weight_shapes(module: nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in module.state_dict().items()}


def test_convnet_small_has_the_miniature_size_and_shapes() -> None:
    model = build_model("convnet-small", small_images=True, projection_dim=64)
    images = torch.randn(2, 3, 32, 32)

    assert model.feature_dim == 256
    assert model.encoder(images).shape == (2, 256)
    assert model(images).shape == (2, 64)
    assert 380_000 <= parameter_count(model.encoder) <= 400_000
    head = 256 * 256 + 2 * 256 + 256 * 64 + 64  # Linear without bias, BN, Linear: 256-256-64
    assert parameter_count(model) == parameter_count(model.encoder) + head


def test_convnet_small_is_the_same_network_for_either_small_images_value() -> None:
    small, _ = build_encoder("convnet-small", small_images=True)
    large, _ = build_encoder("convnet-small", small_images=False)

    assert weight_shapes(small) == weight_shapes(large)
    assert large(torch.randn(2, 3, 96, 96)).shape == (2, 256)  # pooling makes any size fit


def test_convnet_small_trains_a_step() -> None:
    torch.manual_seed(0)
    model = build_model("convnet-small", small_images=True, projection_dim=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    views = torch.randn(8, 3, 32, 32)
    before = [parameter.detach().clone() for parameter in model.parameters()]

    loss = contrastive_loss(model(views), torch.arange(4).repeat(2), temperature=0.2)
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    assert all(parameter.grad is not None and torch.isfinite(parameter.grad).all()
               for parameter in model.parameters())
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


@pytest.mark.parametrize("small_images", [True, False])
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_builds_on_the_meta_device(backbone: str, small_images: bool) -> None:
    with torch.device("meta"):  # as the evaluator builds them to compare weight shapes
        encoder, feature_dim = build_encoder(backbone, small_images)
    real, real_feature_dim = build_encoder(backbone, small_images)

    assert all(parameter.is_meta for parameter in encoder.parameters())
    assert feature_dim == real_feature_dim
    assert weight_shapes(encoder) == weight_shapes(real)


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ModelConfigError,
                       match="Unknown backbone 'vit'; choose one of resnet18, resnet50, convnet-small or timm:NAME"):
        build_model("vit", small_images=True)
    assert issubclass(ModelConfigError, UserError)  # what every command line reports in one sentence


def test_projection_dimension_must_be_positive() -> None:
    with pytest.raises(ModelConfigError, match="at least 1"):
        build_model("resnet18", small_images=True, projection_dim=0)
