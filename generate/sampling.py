"""Latents, views and classes of one anchor group, drawn from (seed, anchor) alone.

Nothing here depends on batch position, shard size or worker count, so any shard can be
regenerated alone and a crashed job resumes without holes or duplicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import UserError

VIEW_METHODS = ("gaussian", "independent", "none", "steer", "gaussian+steer", "renoise")
STEERED_METHODS = ("steer", "gaussian+steer")
DEFAULT_STRENGTH = 0.5  # renoise views: the part of the sampler's steps a view is re-noised and denoised through
TRUNCATION_BOUND = 2.0  # latents and view noise are standard normals truncated to [-2, 2]
_CLASS_STREAM = 0x636C6173  # separates the class-permutation streams from the per-anchor streams
_STEER_STREAM = 0x73746572  # separates each view's walk amounts from the per-anchor streams
_RENOISE_STREAM = 0x6E6F6973  # separates each view's re-noising noise from the per-anchor streams


class ViewConfigError(UserError):
    """View settings that cannot work together; the message is one sentence."""


@dataclass(frozen=True, eq=False)
class Steering:
    """Latent walks for steered views: view v of anchor g is moved by sum_t alpha_t * directions[t],
    each alpha_t uniform in ranges[t] and drawn from (seed, g, v) alone."""

    names: tuple[str, ...]
    directions: np.ndarray  # float64 [len(names), latent_dim]
    ranges: tuple[tuple[float, float], ...]
    walks_sha256: str  # of the walk file, so that a set names the walks that made it
    walks_method: str  # "fit" or "pca"

    def alphas(self, seed: int, anchor: int, view: int) -> np.ndarray:
        rng = np.random.default_rng([seed, _STEER_STREAM, anchor, view])
        low, high = np.array(self.ranges).T
        return rng.uniform(low, high)

    def offset(self, alphas: np.ndarray) -> np.ndarray:
        # A sum in a fixed order, element by element: no BLAS call whose blocking could vary.
        total = np.zeros(self.directions.shape[1])
        for alpha, direction in zip(alphas, self.directions):
            total += alpha * direction
        return total

    def as_manifest(self) -> dict[str, object]:
        return {"walks_sha256": self.walks_sha256, "walks_method": self.walks_method,
                "directions": list(self.names), "ranges": [list(bounds) for bounds in self.ranges]}


@dataclass(frozen=True)
class ViewSpec:
    method: str
    views: int
    sigma: float
    truncation: float
    # Gaussian views scaled back by 1/sqrt(1 + sigma^2), so that they stay on the prior's shell
    # instead of drifting outwards as sigma grows.
    preserve_norm: bool = False
    steering: Steering | None = None  # the walks of steer and gaussian+steer views
    # Renoise views: the anchor's denoised latent re-noised to the level of step strength * T of the
    # sampler and denoised again (SDEdit); None for the other methods.
    strength: float | None = None

    @property
    def gaussian(self) -> bool:
        return self.method in ("gaussian", "gaussian+steer")

    @property
    def steered(self) -> bool:
        return self.method in STEERED_METHODS

    @property
    def renoised(self) -> bool:
        return self.method == "renoise"

    def check(self, conditional: bool, diffusion: bool = False) -> None:
        """Refuse settings that cannot work together; ``diffusion``: the generator has a sampler."""
        if self.method not in VIEW_METHODS:
            raise ViewConfigError(f"Unknown view method {self.method!r}; choose one of "
                                  f"{', '.join(VIEW_METHODS)}.")
        if self.views < 1:
            raise ViewConfigError("--views must be at least 1.")
        if self.method == "none" and self.views != 1:
            raise ViewConfigError("--view-method none makes one image per group: use --views 1.")
        if self.method != "none" and self.views < 2:
            raise ViewConfigError(f"--view-method {self.method} needs --views 2 or more "
                                  "(the anchor plus at least one positive).")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ViewConfigError(f"--sigma must be a finite number of 0 or more, not {self.sigma}.")
        if not (math.isfinite(self.truncation) and self.truncation > 0):
            raise ViewConfigError(f"--truncation must be a finite number above 0, not {self.truncation}.")
        if self.preserve_norm and not self.gaussian:
            raise ViewConfigError("--preserve-norm rescales gaussian views; it needs --view-method "
                                  "gaussian or gaussian+steer.")
        if self.steered and self.steering is None:
            raise ViewConfigError(f"--view-method {self.method} moves views along latent walks: give "
                                  "--walks FILE, made by python -m generate.steer.")
        if self.steering is not None and not self.steered:
            raise ViewConfigError("--walks steers views; it needs --view-method steer or gaussian+steer.")
        if self.method == "independent" and not conditional:
            raise ViewConfigError("--view-method independent draws a fresh latent of the same "
                                  "class, so it needs a class-conditional generator.")
        if self.strength is not None and not self.renoised:
            raise ViewConfigError("--strength sets how far renoise views are re-noised; it needs "
                                  "--view-method renoise.")
        if self.renoised and not (self.strength is not None and 0 < self.strength <= 1):
            raise ViewConfigError(f"--strength must lie in (0, 1] (the part of the sampler's steps a view is "
                                  f"re-noised and denoised through), not {self.strength}.")
        if self.renoised and not diffusion:
            raise ViewConfigError("--view-method renoise re-noises and denoises the anchor's latent with a "
                                  "diffusion sampler, so it needs a diffusion generator (dit-xl-2-256, "
                                  "dit-xl-2-512 or diffusers); GANs and other generators have none.")

    def as_manifest(self) -> dict[str, object]:
        method: dict[str, object] = {"name": self.method}
        if self.gaussian:
            method["sigma"] = self.sigma
            if self.preserve_norm:
                method["preserve_norm"] = True
        if self.steered:
            method.update(self.steering.as_manifest())
        if self.renoised:
            method["strength"] = self.strength
        return method


def truncated_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normal samples redrawn until they lie within [-2, 2] (BigGAN's truncation trick)."""
    values = rng.standard_normal(size)
    outside = np.abs(values) > TRUNCATION_BOUND
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > TRUNCATION_BOUND
    return values


def anchor_class(seed: int, anchor: int, classes: list[int]) -> int:
    """Balanced assignment: each block of len(classes) anchors holds every class once, in an order
    drawn from (seed, block), so class counts differ by at most one whatever the anchor range."""
    block, position = divmod(anchor, len(classes))
    order = np.random.default_rng([seed, _CLASS_STREAM, block]).permutation(len(classes))
    return classes[int(order[position])]


def sample_latents(seed: int, anchor: int, latent_dim: int, spec: ViewSpec) -> np.ndarray:
    """float32 [views, latent_dim]: the anchor's latent first, then its positives."""
    return sample_group(seed, anchor, latent_dim, spec)[0]


def sample_group(seed: int, anchor: int, latent_dim: int,
                 spec: ViewSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """The latents (float32 [views, latent_dim], the anchor's first) and, for steered views, each
    view's walk amounts (float64 [views, directions], zeros for the anchor; else None).

    The gaussian noise comes from the anchor's stream exactly as for gaussian views, and the walk
    amounts of view v from a stream of (seed, anchor, v) of their own: a gaussian+steer view is the
    gaussian view of the same seed, moved along the walks. A renoise view's row is the noise that
    re-noises the anchor's denoised latent, from a stream of (seed, anchor, v) of its own too."""
    rng = np.random.default_rng([seed, anchor])
    anchor_latent = spec.truncation * truncated_normal(rng, latent_dim)
    rows = [anchor_latent]
    if spec.renoised:
        rows += [truncated_normal(np.random.default_rng([seed, _RENOISE_STREAM, anchor, view]), latent_dim)
                 for view in range(1, spec.views)]
        return np.stack(rows).astype(np.float32), None
    steering = spec.steering if spec.steered else None
    alphas = [np.zeros(len(steering.names))] if steering else None
    for view in range(1, spec.views):
        if spec.gaussian:
            latent = anchor_latent + spec.sigma * truncated_normal(rng, latent_dim)
            if spec.preserve_norm:
                latent = latent / math.sqrt(1.0 + spec.sigma ** 2)
        elif steering:
            latent = anchor_latent
        else:  # independent: a fresh latent; the class is shared by the caller
            latent = spec.truncation * truncated_normal(rng, latent_dim)
        if steering:
            alphas.append(steering.alphas(seed, anchor, view))
            latent = latent + steering.offset(alphas[-1])
        rows.append(latent)
    return np.stack(rows).astype(np.float32), (np.stack(alphas) if steering else None)
