"""BigGAN-deep from ``pytorch_pretrained_biggan``, loaded from ``--weights DIR`` or the package's cache.

We load the weights ourselves rather than through ``BigGAN.from_pretrained``: that one downloads
without a timeout, unpickles with ``torch.load`` and ignores missing or unexpected keys.

The last convolution computes ``channel_width`` (128) channels of which the model keeps 3; we cut
it to those 3 (a quarter of the FLOPs at 256 px, half at 512 px), which gives the same numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from generate.classes import imagenet_class_names
from generate.generators.base import GeneratorError, GeneratorOptions, load_network_weights
from generate.generators.runtime import FULL_PRECISION, autocast, prepare_network
from common.files import sha256_file

MODELS = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "pytorch_model.bin"
# How long to wait for the model host before telling the user to fetch the weights by hand.
PROBE_TIMEOUT_S = 5.0
WEIGHTS_LICENSE = "apache-2.0"  # DeepMind's BigGAN-deep weights (TF Hub), ported by pytorch-pretrained-biggan


class BigGANDeep:
    """A loaded BigGAN-deep in eval mode, spectral norm folded into the weights."""

    def __init__(self, name: str, model: torch.nn.Module, options: GeneratorOptions, weights_sha256: str):
        config = model.config
        self.name = name
        self.model = model
        self.forward = prepare_network(model, options)
        self.truncation = options.truncation
        self.precision = options.precision or FULL_PRECISION
        self.weights_sha256 = weights_sha256
        self.license = WEIGHTS_LICENSE
        self.latent_dim = int(config.z_dim)
        self.num_classes = int(config.num_classes)
        self.resolution = int(config.output_dim)
        self.class_names = (imagenet_class_names() if self.num_classes == 1000
                            else [str(index) for index in range(self.num_classes)])
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        one_hot = F.one_hot(classes.to(self.device), self.num_classes).float()
        with autocast(self.precision, self.device):
            images = self.forward(latents.to(self.device, torch.float32), one_hot, self.truncation)
        # Quantise in float32: bf16 cannot hold every level between 128 and 255.
        return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def factory(name: str) -> Callable[[GeneratorOptions], BigGANDeep]:
    return functools.partial(make_biggan, name)


def make_biggan(name: str, options: GeneratorOptions, trim_output: bool | None = None) -> BigGANDeep:
    """BigGAN-deep ``name``; ``trim_output`` cuts the last convolution to the 3 channels kept (by
    default everywhere but in fp32 on CUDA, where cuDNN may pick a kernel that rounds differently
    for 3 channels than for 128, and fp32 must keep the bytes it always had)."""
    if not 0.0 < options.truncation <= 1.0:
        raise GeneratorError(f"BigGAN needs a truncation in (0, 1], not {options.truncation}.")
    package = _import_package()
    if options.weights is None:
        config_path, weights_path = _cached_files(name)
    else:
        config_path, weights_path = _folder_files(Path(options.weights))
    model = _load_model(package, config_path, weights_path).to(options.device)
    remove_spectral_norm(model)  # on the device, so that it divides exactly as eval mode would there
    if trim_output is None:
        trim_output = options.device.type != "cuda" or (options.precision or FULL_PRECISION) != FULL_PRECISION
    if trim_output:
        trim_to_rgb(model)
    return BigGANDeep(name, model, options, sha256_file(weights_path))


def remove_spectral_norm(model: torch.nn.Module) -> None:
    """Fold every spectral norm into its weight, as eval mode computes it, to skip it at inference."""
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)


def trim_to_rgb(model: torch.nn.Module) -> None:
    """Replace the last convolution by one that computes only the 3 channels the model keeps (its
    ``z[:, :3]`` then keeps them all). Needs spectral norm removed first."""
    generator = model.generator
    full = generator.conv_to_rgb
    trimmed = torch.nn.Conv2d(full.in_channels, 3, full.kernel_size, padding=full.padding,
                              device=full.weight.device, dtype=full.weight.dtype)
    with torch.no_grad():
        trimmed.weight.copy_(full.weight[:3])
        trimmed.bias.copy_(full.bias[:3])
    generator.conv_to_rgb = trimmed.eval()


def _import_package():
    try:
        import pytorch_pretrained_biggan
    except ImportError as error:
        raise GeneratorError(f"BigGAN needs the packages pytorch-pretrained-biggan and scipy "
                             f"({error}); pip install them.") from None
    return pytorch_pretrained_biggan


def _folder_files(folder: Path) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise GeneratorError(f"The weights folder {folder} does not exist.")
    paths = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise GeneratorError(f"The weights folder {folder} lacks {' and '.join(missing)}.")
    return paths


def _cached_files(name: str) -> tuple[Path, Path]:
    """The package's cached config and weights for ``name``, downloading them when the host answers."""
    from pytorch_pretrained_biggan import file_utils, model as archive

    urls = archive.PRETRAINED_CONFIG_ARCHIVE_MAP[name], archive.PRETRAINED_MODEL_ARCHIVE_MAP[name]
    cache = Path(file_utils.PYTORCH_PRETRAINED_BIGGAN_CACHE)
    cached = [_cached_file(cache, url) for url in urls]
    if all(cached):
        return cached[0], cached[1]
    advice = (f"download {urls[0]} as {CONFIG_FILE} and {urls[1]} as {WEIGHTS_FILE} into a "
              f"folder and pass --weights DIR")
    failure = _probe(urls[1])
    if failure:
        raise GeneratorError(f"The {name} weights are not in the cache {cache} and cannot be "
                             f"downloaded from {urlparse(urls[1]).hostname} ({failure}); {advice}.")
    try:
        return tuple(Path(file_utils.cached_path(url, cache_dir=str(cache))) for url in urls)
    except Exception as error:  # the package raises whatever requests, boto or the OS raise
        raise GeneratorError(f"Downloading the {name} weights failed ({error}); {advice}.") from None


def _cached_file(cache: Path, url: str) -> Path | None:
    """The newest file the package cached for ``url``; its name is sha256(url)[.sha256(etag)]."""
    from pytorch_pretrained_biggan.file_utils import url_to_filename

    stem = url_to_filename(url)
    candidates = [path for path in cache.glob(f"{stem}*")
                  if path.suffix != ".json" and path.is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def _probe(url: str) -> str | None:
    """Why ``url`` cannot be downloaded, or None; bounded in time, unlike the package's own request."""
    import requests

    try:
        requests.head(url, allow_redirects=True, timeout=PROBE_TIMEOUT_S).raise_for_status()
    except requests.HTTPError as error:
        return f"HTTP {error.response.status_code}"
    except requests.RequestException as error:
        return type(error).__name__
    return None


def _load_model(package, config_path: Path, weights_path: Path) -> torch.nn.Module:
    try:
        config = package.BigGANConfig.from_json_file(str(config_path))
    except (OSError, ValueError, AttributeError) as error:  # unreadable, not JSON, not an object
        raise GeneratorError(f"Cannot read the BigGAN config {config_path} ({error}).") from None
    try:
        model = package.BigGAN(config)
    except Exception as error:  # a config with wrong fields fails anywhere in the constructor
        raise GeneratorError(f"The BigGAN config {config_path} does not describe a model "
                             f"({type(error).__name__}: {error}).") from None
    upsamplings = sum(bool(layer[0]) for layer in config.layers)
    if config.output_dim != 4 * 2 ** upsamplings:
        raise GeneratorError(f"The BigGAN config {config_path} says output_dim {config.output_dim} "
                             f"but its layers make {4 * 2 ** upsamplings}-pixel images.")
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign files fail in the unpickler or the zip reader
        raise GeneratorError(f"Cannot read the BigGAN weights {weights_path} "
                             f"({type(error).__name__}: {error}).") from None
    if not isinstance(state_dict, dict):
        raise GeneratorError(f"The BigGAN weights {weights_path} are not a state dict.")
    load_network_weights(model, state_dict, f"The BigGAN weights {weights_path}", f"the config {config_path}")
    return model.eval()
