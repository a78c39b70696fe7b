"""A small class-conditional GAN fitted to a user's labelled images by ``python -m generate.fit``.

The generator is DCGAN-style: the latent and a learned class code go through a linear layer to a
4x4 map; each stage applies conditional batch norm (the class picks the norm's gain and bias),
ReLU and a stride-2 transposed convolution, doubling the size up to 32 or 64 pixels; a last
conditional batch norm, ReLU and 3x3 convolution make RGB, then tanh. The discriminator is a stack
of stride-2 convolutions with spectral norm on every layer and projection conditioning (the inner
product of a class embedding with the pooled features). Full-size feature maps are kept narrow:
on a CPU they dominate the cost of a training step. A fitted folder holds ``config.json``
(architecture, class names, fit settings) and ``generator.pt`` (the generator's state dict,
tensors only, loaded with ``weights_only=True``)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from common.files import sha256_file
from generate.generators.base import GeneratorError, GeneratorOptions, load_network_weights
from generate.generators.runtime import FULL_PRECISION, autocast, prepare_network

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.pt"
CONFIG_FORMAT = "genviews-cgan"
CONFIG_VERSION = 1
IMAGE_SIZES = (32, 64)
BASE_SIZE = 4  # the generator's first feature map is BASE_SIZE x BASE_SIZE
CLASS_CODE_DIM = 64  # the learned code of each class that the generator's layers are conditioned on


@dataclass(frozen=True)
class Architecture:
    """Everything that decides the networks' shapes; recorded in config.json."""

    num_classes: int
    image_size: int = 32
    latent_dim: int = 64
    g_width: int = 40
    d_width: int = 48

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, not {value!r}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be 32 or 64, not {self.image_size}")

    @property
    def stages(self) -> int:
        """Doublings from BASE_SIZE to image_size."""
        return int(math.log2(self.image_size // BASE_SIZE))

    def generator_channels(self) -> list[int]:
        """Feature channels at 4, 8, ..., image_size pixels: wide where the map is small, narrow
        at full size, where a channel costs the most."""
        width = self.g_width
        return [4 * width, 2 * width] + [width] * (self.stages - 2) + [max(1, width // 2)]

    def discriminator_channels(self) -> list[int]:
        """Feature channels at image_size / 2, ..., 8, 4 pixels."""
        return [self.d_width] * (self.stages - 1) + [2 * self.d_width]

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias the class picks, as linear maps of a class code shared by all
    layers (as in BigGAN): every class then learns at the pace of the shared weights, not of one
    embedding row, which a small learning rate would move too slowly for a fit of minutes."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(CLASS_CODE_DIM, channels)
        self.bias = nn.Linear(CLASS_CODE_DIM, channels)
        for layer in (self.gain, self.bias):  # start as plain batch norm
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, class_code: torch.Tensor) -> torch.Tensor:
        gain = self.gain(class_code).add_(1.0)[:, :, None, None]
        return torch.addcmul(self.bias(class_code)[:, :, None, None], self.norm(x), gain)


class ConditionalGenerator(nn.Module):
    """Latents [N, latent_dim] and classes [N] -> images [N, 3, S, S] in [-1, 1]."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        channels = architecture.generator_channels()
        self.first_channels = channels[0]
        self.class_code = nn.Embedding(architecture.num_classes, CLASS_CODE_DIM)
        self.project = nn.Linear(architecture.latent_dim + CLASS_CODE_DIM,
                                 channels[0] * BASE_SIZE * BASE_SIZE)
        self.norms = nn.ModuleList(ConditionalBatchNorm(width) for width in channels)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(inputs, outputs, 4, stride=2, padding=1)
                                 for inputs, outputs in zip(channels, channels[1:]))
        # A 3x3 convolution makes RGB from full-size features: smoother than a transposed one.
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, latents: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        code = self.class_code(classes)
        x = self.project(torch.cat([latents, code], dim=1))
        x = x.view(len(latents), self.first_channels, BASE_SIZE, BASE_SIZE)
        for norm, up in zip(self.norms, self.ups):
            x = up(torch.relu(norm(x, code)))
        return torch.tanh(self.to_rgb(torch.relu(self.norms[-1](x, code))))


class ProjectionDiscriminator(nn.Module):
    """Images [N, 3, S, S] and classes [N] -> realness scores [N]; spectral norm on every layer."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        channels = architecture.discriminator_channels()
        layers: list[nn.Module] = []
        for inputs, outputs in zip([3] + channels, channels):
            layers += [spectral_norm(nn.Conv2d(inputs, outputs, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.1)]
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(channels[-1], 1))
        self.embed = spectral_norm(nn.Embedding(architecture.num_classes, channels[-1]))

    def forward(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).sum(dim=(2, 3))
        return self.score(pooled).squeeze(1) + (self.embed(classes) * pooled).sum(dim=1)


class CGANGenerator:
    """A fitted conditional generator in eval mode: latents and classes -> uint8 images."""

    name = "cgan"

    def __init__(self, network: ConditionalGenerator, architecture: Architecture,
                 class_names: list[str], weights_sha256: str, options: GeneratorOptions):
        self.precision = options.precision or FULL_PRECISION
        # fp32 is the reference and computes in float64, so that the batch size (which changes
        # kernels' blocking) cannot change a byte; bf16 and fp16 autocast a float32 network.
        self.dtype = torch.float64 if self.precision == FULL_PRECISION else torch.float32
        self.network = network.to(options.device, self.dtype).eval()
        self.forward = prepare_network(self.network, options)
        self.latent_dim = architecture.latent_dim
        self.num_classes = architecture.num_classes
        self.resolution = architecture.image_size
        self.class_names = class_names
        self.weights_sha256 = weights_sha256
        self.device = options.device

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        if classes is None:
            raise GeneratorError("The cgan generator is class-conditional: it needs a class index "
                                 "for every latent.")
        # Eval-mode batch norm uses stored statistics, so an image depends on its own latent alone.
        with autocast(self.precision, self.device):
            images = self.forward(latents.to(self.device, self.dtype), classes.to(self.device))
        return ((images.to(self.dtype) + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def make_cgan(options: GeneratorOptions) -> CGANGenerator:
    """The generator fitted into ``options.weights`` (a folder written by ``python -m generate.fit``).

    It renders at its fitted size (the job resizes to any other) and ignores ``options.truncation``:
    the job's sampler has already scaled the latents by it."""
    if options.weights is None:
        raise GeneratorError("The cgan generator needs --weights DIR, a folder written by "
                             "python -m generate.fit --data IMAGEFOLDER --out DIR; run that first.")
    folder = Path(options.weights)
    architecture, class_names = read_config(folder)
    weights = folder / WEIGHTS_FILE
    network = ConditionalGenerator(architecture)
    load_weights(network, weights)
    return CGANGenerator(network, architecture, class_names, sha256_file(weights), options)


def read_config(folder: Path) -> tuple[Architecture, list[str]]:
    """The architecture and class names recorded in a fitted folder's config.json."""
    if not folder.is_dir():
        raise GeneratorError(f"The weights folder {folder} does not exist; make it with "
                             "python -m generate.fit --data IMAGEFOLDER --out DIR.")
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeneratorError(f"The weights folder {folder} lacks {CONFIG_FILE}; is it a folder "
                             "written by python -m generate.fit?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GeneratorError(f"Cannot read {path} ({error}).") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise GeneratorError(f"{path} is not a {CONFIG_FORMAT} config.")
    if config.get("version") != CONFIG_VERSION:
        raise GeneratorError(f"{path} has version {config.get('version')!r}; this genviews "
                             f"reads version {CONFIG_VERSION}.")
    try:
        architecture = Architecture(**config["architecture"])
    except (KeyError, TypeError, ValueError) as error:
        raise GeneratorError(f"{path} does not describe a cgan architecture ({error}).") from None
    names = config.get("class_names")
    if (not isinstance(names, list) or len(names) != architecture.num_classes
            or not all(isinstance(name, str) for name in names)):
        raise GeneratorError(f"{path} must list {architecture.num_classes} class names as strings.")
    return architecture, names


def config_document(architecture: Architecture, class_names: list[str],
                    extra: dict[str, Any]) -> dict[str, Any]:
    """The config.json of a fitted folder: what ``read_config`` reads, plus ``extra`` (fit
    settings, provenance) for people."""
    return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION,
            "architecture": architecture.as_dict(), "class_names": class_names, **extra}


def load_weights(network: nn.Module, path: Path) -> None:
    """Load a state dict of tensors only, checking that it fits ``network`` exactly."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GeneratorError(f"The weights folder {path.parent} lacks {path.name}.") from None
    except Exception as error:  # corrupt, foreign or unsafe files fail in the unpickler or zip reader
        raise GeneratorError(f"Cannot read the weights {path} "
                             f"({type(error).__name__}: {str(error).splitlines()[0]}).") from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor)
                                              for value in state.values()):
        raise GeneratorError(f"The weights {path} are not a state dict of tensors.")
    load_network_weights(network, state, f"The weights {path}", f"the architecture in its {CONFIG_FILE}")
