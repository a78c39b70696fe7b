"""The generator registry: a plain dict from name to factory, plus ``module:attr`` plug-ins.

The protocol and the options every factory receives live in ``generate.generators.base``. A
plug-in factory receives the same ``GeneratorOptions`` as the built-ins; what it makes is checked
and wrapped (``PlugIn``) so that its mistakes reach the user as one sentence.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from generate.choices import DEFAULT_GENERATOR
from generate.generators import biggan, cgan, deadleaves, diffusion
from generate.generators.base import (Factory, Generator, GeneratorError, GeneratorOptions, check_generator,
                                      check_images)
from generate.generators.runtime import apply_process_settings, check_runtime

REGISTRY: dict[str, Factory] = {
    "deadleaves": deadleaves.make_deadleaves,
    "deadleaves-camera": deadleaves.make_deadleaves_camera,
    "cgan": cgan.make_cgan,
    **{name: biggan.factory(name) for name in biggan.MODELS},
    **{name: diffusion.factory(name) for name in diffusion.NAMES},
}

__all__ = ["DEFAULT_GENERATOR", "REGISTRY", "Generator", "GeneratorError", "GeneratorOptions",
           "check_images", "make_generator"]


def make_generator(name: str, options: GeneratorOptions) -> Generator:
    """A registered generator by name, or a plug-in named ``package.module:factory``."""
    if ":" not in name and name not in REGISTRY:
        raise GeneratorError(f"Unknown generator {name!r}; choose one of {', '.join(REGISTRY)} "
                             "or name your own as package.module:factory.")
    check_runtime(options)
    apply_process_settings(options)
    return make_plugin(name, options) if ":" in name else REGISTRY[name](options)


class PlugIn:
    """A user's generator, checked once when made; a failure inside a call becomes one sentence."""

    def __init__(self, spec: str, generator: Any) -> None:
        check_generator(generator, spec)
        self.spec = spec
        self.generator = generator
        self.latent_dim: int = generator.latent_dim
        self.num_classes: int = generator.num_classes
        self.resolution: int = generator.resolution
        self.class_names: list[str] | None = getattr(generator, "class_names", None)
        self.weights_sha256: str | None = getattr(generator, "weights_sha256", None)
        self.precision: str | None = getattr(generator, "precision", None)
        self.license: str | None = getattr(generator, "license", None)
        self.device = getattr(generator, "device", None)
        if self.device is None and isinstance(generator, torch.nn.Module):
            self.device = next(generator.parameters(), torch.empty(0)).device

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        try:
            images = self.generator(latents, classes)
        except torch.OutOfMemoryError:
            raise  # not the plug-in's fault: the job reports it with the batch size
        except Exception as error:  # the user's code may raise anything; report it in one sentence
            raise GeneratorError(f"Generator {self.spec!r} failed while rendering "
                                 f"({type(error).__name__}: {error}).") from None
        check_images(images, len(latents))
        return images


def make_plugin(spec: str, options: GeneratorOptions) -> PlugIn:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise GeneratorError(f"Cannot load generator {spec!r} ({error}).") from None
    if not callable(factory):
        raise GeneratorError(f"Generator {spec!r} names {type(factory).__name__}, not a factory.")
    try:
        generator = factory(options)
    except GeneratorError:
        raise
    except Exception as error:  # the user's code may raise anything; report it in one sentence
        raise GeneratorError(f"Generator factory {spec!r} failed ({type(error).__name__}: {error}).") from None
    return PlugIn(spec, generator)
