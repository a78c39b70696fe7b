"""Encoders (torchvision ResNets without their classifier) and the projection head on top of them."""

from __future__ import annotations

from typing import Callable

import torch
import torchvision
from torch import nn

BACKBONES: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
}


class ModelConfigError(ValueError):
    """The model asked for does not exist; the message is one sentence for the user."""


class ContrastiveModel(nn.Module):
    """``encoder`` maps images to features [N, feature_dim]; ``projector`` maps those to the loss space."""

    def __init__(self, encoder: nn.Module, feature_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.projector = projection_head(feature_dim, projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(images))


def build_encoder(backbone: str, small_images: bool) -> tuple[nn.Module, int]:
    """A randomly initialised backbone whose output is its pooled features, and their dimension.

    ``small_images`` gives the CIFAR stem (3x3 stride-1 first convolution, no max-pool), which keeps
    enough resolution for images of 64 pixels and less.
    """
    if backbone not in BACKBONES:
        raise ModelConfigError(f"Unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}.")
    network = BACKBONES[backbone](weights=None)
    if small_images:
        network.conv1 = nn.Conv2d(3, network.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(network.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision does
        network.maxpool = nn.Identity()
    feature_dim = network.fc.in_features
    network.fc = nn.Identity()
    return network, feature_dim


def projection_head(feature_dim: int, projection_dim: int) -> nn.Sequential:
    """SimCLR's head: Linear-BN-ReLU-Linear with a hidden layer as wide as the features."""
    return nn.Sequential(
        nn.Linear(feature_dim, feature_dim, bias=False),  # the batch norm that follows has the bias
        nn.BatchNorm1d(feature_dim),
        nn.ReLU(inplace=True),
        nn.Linear(feature_dim, projection_dim),
    )


def build_model(backbone: str, small_images: bool, projection_dim: int = 128) -> ContrastiveModel:
    if projection_dim < 1:
        raise ModelConfigError(f"The projection dimension must be at least 1 (got {projection_dim}).")
    encoder, feature_dim = build_encoder(backbone, small_images)
    return ContrastiveModel(encoder, feature_dim, projection_dim)
