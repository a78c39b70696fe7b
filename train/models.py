"""Encoders (torchvision ResNets without their classifier, a small ConvNet, any timm model as
``timm:NAME``) and the projection head."""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Callable

import torch
import torchvision
from torch import nn

from train.choices import TIMM_PREFIX, ModelConfigError, check_backbone


class ContrastiveModel(nn.Module):
    """``encoder`` maps images to features [N, feature_dim]; ``projector`` maps those to the loss space."""

    def __init__(self, encoder: nn.Module, feature_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.projector = projection_head(feature_dim, projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(images))


def init_conv(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's ResNets


def build_resnet(factory: Callable[..., torchvision.models.ResNet], small_images: bool) -> tuple[nn.Module, int]:
    """A torchvision ResNet without its classifier. ``small_images`` gives the CIFAR stem (3x3 stride-1
    first convolution, no max-pool), which keeps enough resolution for images of 64 pixels and less."""
    network = factory(weights=None)
    if small_images:
        network.conv1 = nn.Conv2d(3, network.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        init_conv(network.conv1)
        network.maxpool = nn.Identity()
    feature_dim = network.fc.in_features
    network.fc = nn.Identity()
    return network, feature_dim


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                     bias=False)  # the batch norm that follows has the bias
    init_conv(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def build_convnet_small(small_images: bool) -> tuple[nn.Module, int]:
    """A 4-layer ConvNet for CPU-scale runs on small images: conv-BN-ReLU 32 (stride 2), 64, max-pool,
    128, max-pool, 256, then global average pooling; 0.39 M parameters (0.47 M with a 256-256-64 head).

    ``small_images`` changes nothing: the network is made for small images, and pooling to one
    vector makes it run at any size, so both values build the same weights.
    """
    feature_dim = 256
    network = nn.Sequential(OrderedDict(
        conv1=conv_bn_relu(3, 32, stride=2),
        conv2=conv_bn_relu(32, 64),
        pool2=nn.MaxPool2d(2),
        conv3=conv_bn_relu(64, 128),
        pool3=nn.MaxPool2d(2),
        conv4=conv_bn_relu(128, feature_dim),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
    ))
    return network, feature_dim


# name -> builder(small_images) of (randomly initialised encoder, feature dimension)
BACKBONES: dict[str, Callable[[bool], tuple[nn.Module, int]]] = {
    "resnet18": functools.partial(build_resnet, torchvision.models.resnet18),
    "resnet50": functools.partial(build_resnet, torchvision.models.resnet50),
    "convnet-small": build_convnet_small,
}


def build_timm(name: str) -> tuple[nn.Module, int]:
    """A timm model with timm's own initialisation and no classifier (num_classes=0: its pooled
    features). Vision transformers take any image size (dynamic_img_size interpolates their position
    embeddings), so their weights keep timm's shapes and load into ``timm.create_model(name,
    num_classes=0)``; the models that have no such option are built without it."""
    import timm

    try:
        network = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    except TypeError:  # a convolutional network: any image size already
        network = timm.create_model(name, pretrained=False, num_classes=0)
    return network, network.num_features


def build_encoder(backbone: str, small_images: bool) -> tuple[nn.Module, int]:
    """A randomly initialised backbone whose output is its pooled features, and their dimension;
    ``small_images`` chooses the stem of the torchvision ResNets (timm models are timm's)."""
    if check_backbone(backbone).startswith(TIMM_PREFIX):
        return build_timm(backbone[len(TIMM_PREFIX):])
    return BACKBONES[backbone](small_images)


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
