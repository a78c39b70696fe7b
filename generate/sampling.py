"""Latents, views and classes of one anchor group, drawn from (seed, anchor) alone.

Nothing here depends on batch position, shard size or worker count, so any shard can be
regenerated alone and a crashed job resumes without holes or duplicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import UserError

VIEW_METHODS = ("gaussian", "independent", "none")
TRUNCATION_BOUND = 2.0  # latents and view noise are standard normals truncated to [-2, 2]
_CLASS_STREAM = 0x636C6173  # separates the class-permutation streams from the per-anchor streams


class ViewConfigError(UserError):
    """View settings that cannot work together; the message is one sentence."""


@dataclass(frozen=True)
class ViewSpec:
    method: str
    views: int
    sigma: float
    truncation: float
    # Gaussian views scaled back by 1/sqrt(1 + sigma^2), so that they stay on the prior's shell
    # instead of drifting outwards as sigma grows.
    preserve_norm: bool = False

    def check(self, conditional: bool) -> None:
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
        if self.preserve_norm and self.method != "gaussian":
            raise ViewConfigError("--preserve-norm rescales gaussian views; it needs --view-method gaussian.")
        if self.method == "independent" and not conditional:
            raise ViewConfigError("--view-method independent draws a fresh latent of the same "
                                  "class, so it needs a class-conditional generator.")

    def as_manifest(self) -> dict[str, object]:
        if self.method == "gaussian" and self.preserve_norm:
            return {"name": "gaussian", "sigma": self.sigma, "preserve_norm": True}
        if self.method == "gaussian":
            return {"name": "gaussian", "sigma": self.sigma}
        return {"name": self.method}


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
    rng = np.random.default_rng([seed, anchor])
    anchor_latent = spec.truncation * truncated_normal(rng, latent_dim)
    rows = [anchor_latent]
    for _ in range(spec.views - 1):
        if spec.method == "gaussian":
            view = anchor_latent + spec.sigma * truncated_normal(rng, latent_dim)
            rows.append(view / math.sqrt(1.0 + spec.sigma ** 2) if spec.preserve_norm else view)
        else:  # independent: a fresh latent; the class is shared by the caller
            rows.append(spec.truncation * truncated_normal(rng, latent_dim))
    return np.stack(rows).astype(np.float32)
