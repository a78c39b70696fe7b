"""The generator registry: a plain dict from name to factory, plus ``module:attr`` plug-ins.

A generator exposes ``latent_dim``, ``num_classes`` (0 when unconditional), ``resolution`` and is
called as ``generator(latents, classes)`` with float32 latents [N, latent_dim] and int64 class
indices [N] (None when unconditional) on its device, returning uint8 images [N, 3, H, W].
Registered generators may also expose ``name``, ``class_names`` and ``weights_sha256`` for the
manifest.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch


class Generator(Protocol):
    latent_dim: int
    num_classes: int
    resolution: int

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor: ...


class GeneratorError(Exception):
    """A generator cannot be made (unknown name, missing weights, ...); the message is one sentence."""


@dataclass(frozen=True)
class GeneratorOptions:
    weights: Path | None
    device: torch.device
    truncation: float
    resolution: int | None = None  # the image size asked for; generators that render at any size use it


Factory = Callable[[GeneratorOptions], Generator]

DEFAULT_GENERATOR = "deadleaves"


def _make_registry() -> dict[str, Factory]:
    from generate.generators import biggan, deadleaves  # biggan imports its package lazily

    return {
        "deadleaves": deadleaves.make_deadleaves,
        **{name: biggan.factory(name) for name in biggan.MODELS},
    }


def make_generator(name: str, options: GeneratorOptions) -> Generator:
    """A registered generator by name, or a plug-in named ``package.module:factory``."""
    if ":" in name:
        return _load_plugin(name)
    registry = _make_registry()
    if name not in registry:
        raise GeneratorError(f"Unknown generator {name!r}; choose one of {', '.join(registry)} "
                             "or name your own as package.module:factory.")
    return registry[name](options)


def _load_plugin(spec: str) -> Generator:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise GeneratorError(f"Cannot load generator {spec!r} ({error}).") from None
    if not callable(factory):
        raise GeneratorError(f"Generator {spec!r} names {type(factory).__name__}, not a factory.")
    try:
        generator = factory()
    except Exception as error:  # the user's code may raise anything; report it in one sentence
        raise GeneratorError(f"Generator factory {spec!r} failed ({type(error).__name__}: {error}).") from None
    missing = [field for field in ("latent_dim", "num_classes", "resolution")
               if not isinstance(getattr(generator, field, None), int)]
    if missing or not callable(generator):
        raise GeneratorError(f"Generator {spec!r} must be callable and have integer "
                             f"latent_dim, num_classes and resolution (missing {missing}).")
    return generator
