"""The names, defaults and parsing of training's options that need no torch, so that
``train/main.py --help`` and the checks of a command line start at once; the models and optimisers
import them from here."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from common.errors import UserError


class ModelConfigError(UserError):
    """The model asked for does not exist; the message is one sentence for the user."""


# Backbones built by train.models (timm's come as timm:NAME).
BACKBONE_NAMES = ("resnet18", "resnet50", "convnet-small")
TIMM_PREFIX = "timm:"


def check_backbone(backbone: str) -> str:
    """The backbone's name as given, or ModelConfigError in one sentence."""
    if backbone in BACKBONE_NAMES:
        return backbone
    if not backbone.startswith(TIMM_PREFIX):
        raise ModelConfigError(f"Unknown backbone {backbone!r}; choose one of {', '.join(BACKBONE_NAMES)} or "
                               f"{TIMM_PREFIX}NAME (any model of timm).")
    try:
        import timm  # imported only for timm backbones: it takes seconds
    except ImportError:
        raise ModelConfigError(f"--backbone {backbone} needs timm; pip install timm.") from None
    if not timm.is_model(backbone[len(TIMM_PREFIX):]):
        raise ModelConfigError(f"timm has no model {backbone[len(TIMM_PREFIX):]!r}; timm.list_models() lists them.")
    return backbone


# Every optimizer, once: its base learning rate (per 256 images) and weight decay.
OPTIMIZERS = {
    "sgd": (0.05, 1e-4),
    "lars": (0.3, 1e-6),
    "adamw": (1e-3, 0.05),
}


class OptimizerConfigError(UserError):
    """The optimiser or schedule asked for is unusable; the message is one sentence for the user."""


WARMUP_SYNTAX = "a fraction of the run (0.05), a number of steps (500steps) or a number of epochs (2epochs)"
_WARMUP = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(steps?|epochs?)?\s*$")


@dataclass(frozen=True)
class Warmup:
    """A warm-up length as the user gave it: a fraction of the run, steps or epochs."""

    amount: float
    unit: str  # "run", "steps" or "epochs"

    def __str__(self) -> str:
        return f"{self.amount:g}" if self.unit == "run" else f"{self.amount:g}{self.unit}"

    def steps(self, total_steps: int, steps_per_epoch: int) -> int:
        if self.unit == "steps":
            return int(self.amount)
        if self.unit == "epochs":
            return round(self.amount * steps_per_epoch)
        # at least one step of warm-up for any fraction above 0; round first so 0.1 x 30 is 3, not 4
        return math.ceil(round(self.amount * total_steps, 6))


def parse_warmup(text: Any) -> Warmup:
    """``0.05`` (a fraction of the run, below 1), ``500steps`` or ``2epochs`` (``2.5epochs`` too);
    raises OptimizerConfigError with one sentence about the value otherwise."""
    found = _WARMUP.match(str(text))
    if not found:
        raise OptimizerConfigError(f"{str(text)!r} is not {WARMUP_SYNTAX}.")
    amount, unit = float(found.group(1)), (found.group(2) or "run").rstrip("s")
    unit = {"run": "run", "step": "steps", "epoch": "epochs"}[unit]
    if not math.isfinite(amount):  # 1e400 overflows to inf
        raise OptimizerConfigError(f"{str(text)!r} is too large to be a warm-up length.")
    if unit == "run" and amount >= 1:
        raise OptimizerConfigError(f"{str(text)!r} is a fraction of the run, which must be below 1; write "
                                   f"{amount:g}epochs or {amount:g}steps for a length.")
    if unit == "steps" and not amount.is_integer():
        raise OptimizerConfigError(f"{str(text)!r} is not a whole number of steps.")
    return Warmup(amount, unit)
