"""The walk file: latent directions fitted by ``python -m generate.steer``, and the checks on it.

A walk file is ``torch.save`` of a dict holding only tensors and plain values, so it loads with
``torch.load(..., weights_only=True)``:

    format         "genviews-walks"
    version        1
    method         "fit" (walks learned to imitate transforms) or "pca" (GANSpace-style directions)
    names          direction names, e.g. ["color.red", "color.green", "color.blue", "zoom", ...]
    directions     float32 tensor [directions, latent_dim]: the latent change per unit of alpha,
                   so a steered view is z + sum_t alpha_t * directions[t]
    ranges         [[low, high], ...] per direction: alpha's range, in the units of
                   ``generate.transforms`` (fit) or of the latent (pca)
    transforms     the transforms fitted, in order ([] for pca)
    generator      {"name", "weights_sha256", "latent_dim", "num_classes", "resolution"}
    settings       how the directions were made (lr, batch size, samples, seed, truncation, ...)
    evaluation     fit only: held-out masked MSE per transform for the fitted walks, a random
                   direction of the same norm, and no walk at all
    provenance     package version, git commit, torch version, command line

``python -m generate --view-method steer --walks FILE`` records the file's sha256 in the set's
manifest, so a receiving lab can tell which walks made a set.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import UserError
from common.files import sha256_bytes, write_bytes_atomic

WALKS_FORMAT = "genviews-walks"
WALKS_VERSION = 1
METHODS = ("fit", "pca")
_RANGE = re.compile(r"^\s*([^=\s]+)\s*=\s*([^:]*):(.*)$")


class WalkError(UserError):
    """A walk file or a range that cannot be used; the message is one sentence."""


@dataclass(frozen=True, eq=False)
class Walks:
    """A loaded walk file (``document`` is what was saved) and its sha256."""

    path: Path
    sha256: str
    document: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return list(self.document["names"])

    @property
    def directions(self) -> np.ndarray:
        """float64 [directions, latent_dim] (exactly the stored float32 values)."""
        return self.document["directions"].double().numpy()

    @property
    def ranges(self) -> list[tuple[float, float]]:
        return [(float(low), float(high)) for low, high in self.document["ranges"]]

    @property
    def method(self) -> str:
        return self.document["method"]

    @property
    def generator(self) -> dict[str, Any]:
        return self.document["generator"]


def save_walks(path: Path, document: dict[str, Any]) -> str:
    """Write a walk document whole or not at all; returns the file's sha256."""
    buffer = io.BytesIO()
    torch.save(document, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return sha256_bytes(buffer.getvalue())


def load_walks(path: Path) -> Walks:
    """A walk file, checked field by field; every failure is one sentence."""
    path = Path(path)
    if not path.is_file():
        raise WalkError(f"The walk file {path} does not exist; make one with python -m generate.steer "
                        "--generator NAME --out FILE.")
    data = path.read_bytes()
    try:
        document = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, foreign or unsafe files fail in the unpickler or zip reader
        raise WalkError(f"Cannot read the walk file {path} ({type(error).__name__}: "
                        f"{str(error).strip().splitlines()[0] if str(error).strip() else 'unreadable'})."
                        ) from None
    if not isinstance(document, dict) or document.get("format") != WALKS_FORMAT:
        raise WalkError(f"{path} is not a walk file (a dict of tensors written by python -m "
                        "generate.steer).")
    if document.get("version") != WALKS_VERSION:
        raise WalkError(f"The walk file {path} has version {document.get('version')!r}; this genviews "
                        f"reads version {WALKS_VERSION}.")
    _check_document(document, path)
    return Walks(path=path, sha256=sha256_bytes(data), document=document)


def _check_document(document: dict[str, Any], path: Path) -> None:
    def fail(problem: str) -> WalkError:
        return WalkError(f"The walk file {path} {problem}.")

    directions, names, ranges = (document.get(key) for key in ("directions", "names", "ranges"))
    if (not isinstance(directions, torch.Tensor) or directions.dtype != torch.float32
            or directions.ndim != 2 or 0 in directions.shape):
        raise fail("has no float32 tensor of directions [directions, latent_dim]")
    if not torch.isfinite(directions).all():
        raise fail("has directions that are not finite")
    if (not isinstance(names, list) or len(names) != len(directions)
            or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names)):
        raise fail(f"must name its {len(directions)} directions once each")
    if not isinstance(ranges, list) or len(ranges) != len(names):
        raise fail(f"must give a range for each of its {len(names)} directions")
    for name, bounds in zip(names, ranges):
        if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                or not all(isinstance(value, (int, float)) for value in bounds)):
            raise fail(f"has no [low, high] range for {name!r}")
        check_range(name, float(bounds[0]), float(bounds[1]), f"in {path}")
    if document.get("method") not in METHODS:
        raise fail(f"has method {document.get('method')!r}, not one of {', '.join(METHODS)}")
    generator = document.get("generator")
    if (not isinstance(generator, dict) or not isinstance(generator.get("name"), str)
            or generator.get("latent_dim") != directions.shape[1]):
        raise fail("does not say which generator its directions belong to")


def check_range(name: str, low: float, high: float, where: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise WalkError(f"The range of {name!r} {where} must be finite, not {low:g}:{high:g}.")
    if not low < high:
        kind = "empty" if low == high else "inverted"
        raise WalkError(f"The range of {name!r} {where} is {kind} ({low:g}:{high:g}); give LOW:HIGH "
                        "with LOW below HIGH.")


def check_generator(walks: Walks, name: str, generator: Any) -> None:
    """Refuse walks fitted on another generator, other weights or another latent size."""
    recorded = walks.generator
    here = {"name": name, "weights_sha256": getattr(generator, "weights_sha256", None),
            "latent_dim": generator.latent_dim}
    for key, value in here.items():
        if recorded.get(key) != value:
            raise WalkError(
                f"The walk file {walks.path} was fitted on generator {recorded.get('name')!r} "
                f"(weights sha256 {_short(recorded.get('weights_sha256'))}, latent "
                f"{recorded.get('latent_dim')}), not on {name!r} (weights sha256 "
                f"{_short(here['weights_sha256'])}, latent {generator.latent_dim}); fit walks for "
                "this generator with python -m generate.steer.")


def _short(sha: Any) -> str:
    return "none" if sha is None else f"{str(sha)[:12]}..."


def parse_ranges(items: tuple[str, ...] | list[str], names: list[str], option: str
                 ) -> dict[str, tuple[float, float]]:
    """``NAME=LOW:HIGH`` items -> {direction: (low, high)}; NAME is a direction or a transform
    (``color`` sets color.red, color.green and color.blue)."""
    chosen: dict[str, tuple[float, float]] = {}
    for item in items:
        match = _RANGE.match(item)
        if not match:
            raise WalkError(f"{option} {item!r} is not NAME=LOW:HIGH, e.g. zoom=-0.5:0.5.")
        name, low_text, high_text = match.groups()
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise WalkError(f"{option} {item!r} is not NAME=LOW:HIGH with numbers LOW and HIGH.") from None
        matched = [direction for direction in names
                   if direction == name or direction.split(".")[0] == name]
        if not matched:
            raise WalkError(f"{option} names {name!r}, which is not one of the directions "
                            f"{', '.join(names)}.")
        check_range(name, low, high, f"in {option}")
        chosen.update({direction: (low, high) for direction in matched})
    return chosen


def parse_names(text: str, names: list[str], option: str) -> list[str]:
    """``zoom,color`` -> the directions named (a transform name stands for all its directions),
    in the walk file's order."""
    wanted = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in wanted
               if not any(direction == item or direction.split(".")[0] == item for direction in names)]
    if unknown or not wanted:
        raise WalkError(f"{option} names {unknown[0] if unknown else text!r}, which is not one of the "
                        f"directions {', '.join(names)}.")
    return [direction for direction in names
            if any(direction == item or direction.split(".")[0] == item for item in wanted)]
