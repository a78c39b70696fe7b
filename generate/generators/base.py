"""What a generator is: the protocol, the options every factory receives, and the checks on both.

A generator exposes ``latent_dim``, ``num_classes`` (0 when unconditional), ``resolution`` and is
called as ``generator(latents, classes)`` with float32 latents [N, latent_dim] and int64 class
indices [N] (None when unconditional) on its device, returning uint8 images [N, 3, H, W].
It may also expose ``class_names`` (one per class), ``weights_sha256`` (recorded in the manifest),
``device``, ``precision`` (what it renders in: fp32, bf16 or fp16; fp32 when absent) and ``license``
(its weights' licence, for the dataset card; "unknown" when absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from common.errors import UserError
from generate.choices import PRECISIONS


class Generator(Protocol):
    latent_dim: int
    num_classes: int
    resolution: int

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor: ...


class GeneratorError(UserError):
    """A generator cannot be made or used (unknown name, missing weights, bad output)."""


@dataclass(frozen=True)
class GeneratorOptions:
    """What ``python -m generate`` passes to every factory, built-in or plug-in."""

    weights: Path | None
    device: torch.device
    truncation: float
    resolution: int | None = None  # the image size asked for; generators that render at any size use it
    # Numeric precision, one of PRECISIONS; None: fp32, as before precisions existed.
    precision: str | None = None
    # CUDA-only speed options (generate.generators.runtime); a generator without a network ignores them.
    channels_last: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    # Diffusion samplers (generate.generators.diffusion); None: the generator's default. Others ignore them.
    sampling_steps: int | None = None
    guidance: float | None = None


Factory = Callable[[GeneratorOptions], Generator]


def refuse_weights(name: str, options: GeneratorOptions) -> None:
    """For generators that take no weights: a ``--weights`` given to them is a mistake, not a no-op."""
    if options.weights is not None:
        raise GeneratorError(f"The {name} generator takes no weights, but --weights {options.weights} "
                             "was given.")


def check_generator(generator: Any, name: str) -> None:
    """Refuse, in one sentence, an object that does not declare what the protocol asks."""
    minimums = {"latent_dim": 1, "num_classes": 0, "resolution": 1}
    for field, minimum in minimums.items():
        value = getattr(generator, field, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise GeneratorError(f"Generator {name!r} must have an integer {field} of at least {minimum}, "
                                 f"not {value!r}.")
    if not callable(generator):
        raise GeneratorError(f"Generator {name!r} made a {type(generator).__name__}, which is not callable.")
    names = getattr(generator, "class_names", None)
    if names is not None and (not isinstance(names, (list, tuple)) or len(names) != generator.num_classes
                              or not all(isinstance(item, str) for item in names)):
        raise GeneratorError(f"Generator {name!r} must have class_names as a list of "
                             f"{generator.num_classes} strings.")
    precision = getattr(generator, "precision", None)
    if precision is not None and precision not in PRECISIONS:
        raise GeneratorError(f"Generator {name!r} must have a precision among {', '.join(PRECISIONS)}, "
                             f"not {precision!r}.")
    sha = getattr(generator, "weights_sha256", None)
    if sha is not None and not isinstance(sha, str):
        raise GeneratorError(f"Generator {name!r} must have weights_sha256 as a string or None.")
    device = getattr(generator, "device", None)
    if device is not None:
        check_device(device, name)


def check_device(device: Any, name: str) -> None:
    """Refuse, in one sentence, a device a generator declares that this machine does not have (a
    batch sent there would fail inside torch, e.g. "Found no NVIDIA driver")."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise GeneratorError(f"Generator {name!r} declares device {device!r}, which is not a torch device.") from None
    if device.type != "cuda":
        return
    present = torch.cuda.device_count()  # 0 without a driver, without raising
    if (device.index or 0) >= present:
        have = f"only {present} CUDA device{'s' if present > 1 else ''}" if present else "no CUDA device"
        raise GeneratorError(f"Generator {name!r} declares device {device}, but this machine has {have}; "
                             "make it on the device its options give (GeneratorOptions.device).")


def check_images(images: Any, count: int) -> None:
    """Refuse generator output that is not ``count`` uint8 images [count, 3, H, W] holding data."""
    if (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4
            and tuple(images.shape[:2]) == (count, 3) and min(images.shape[2:]) >= 1 and not images.is_meta):
        return
    found = (f"{images.dtype} {list(images.shape)}{' on the meta device' if images.is_meta else ''}"
             if isinstance(images, torch.Tensor) else type(images).__name__)
    raise GeneratorError(f"The generator returned {found}; it must return uint8 images [{count}, 3, H, W].")


def load_network_weights(network: torch.nn.Module, state: dict[str, Any], weights: str, target: str) -> None:
    """Load ``state`` into ``network``, refusing in one sentence weights that do not fit it; the
    messages name the weights and what they should fit, e.g. "The weights P" and "the config C"."""
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even when not strict
        last_line = str(error).strip().splitlines()[-1].strip().rstrip(".")
        raise GeneratorError(f"{weights} do not fit {target} ({last_line}).") from None
    for kind, keys in (("lack", result.missing_keys), ("have unexpected", result.unexpected_keys)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            raise GeneratorError(f"{weights} {kind} keys {shown} for {target}.")
