"""Optimisers (SGD, LARS, AdamW) with SimCLR's parameter groups, and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch
from torch import nn

from train.choices import OPTIMIZERS, OptimizerConfigError, Warmup

class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each tensor is scaled by its trust ratio (You et al., 2017).

    As in SimCLR: the weight decay joins the gradient, d = g + wd * w, and in groups with
    ``lars_adapt`` True d is scaled by trust_coefficient * |w| / |d| (when both norms are non-zero);
    then v = momentum * v + d and w = w - lr * v.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars_adapt=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad.add(param, alpha=group["weight_decay"])
                if group["lars_adapt"]:
                    param_norm, update_norm = torch.linalg.vector_norm(param), torch.linalg.vector_norm(update)
                    trust_ratio = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        torch.ones_like(param_norm))
                    update.mul_(trust_ratio)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights decay; biases and normalisation parameters (the 1-d tensors) do not, and LARS leaves them unscaled."""
    trainable = [param for param in model.parameters() if param.requires_grad]
    return [
        {"params": [param for param in trainable if param.ndim > 1], "weight_decay": weight_decay},
        {"params": [param for param in trainable if param.ndim <= 1], "weight_decay": 0.0},
    ]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``sgd``, ``lars`` or ``adamw`` (which ignores ``momentum``) over SimCLR's parameter groups."""
    if name not in OPTIMIZERS:
        raise OptimizerConfigError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    weights, biases_and_norms = parameter_groups(model, weight_decay)
    if name == "lars":
        return LARS([weights, {**biases_and_norms, "lars_adapt": False}], lr=lr, momentum=momentum)
    if name == "sgd":
        return torch.optim.SGD([weights, biases_and_norms], lr=lr, momentum=momentum)
    return torch.optim.AdamW([weights, biases_and_norms], lr=lr)


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule: ``base_lr`` is the rate for a batch of 256."""
    return base_lr * global_batch / 256


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float, final_lr: float = 0.0) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps`` (reached at its last step), then cosine decay
    to ``final_lr`` at ``total_steps``; steps past the end stay at ``final_lr``."""
    if not 0 <= warmup_steps <= total_steps:
        raise OptimizerConfigError(
            f"Warm-up steps must lie between 0 and the total steps ({total_steps}), got {warmup_steps}.")
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return final_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return final_lr + (peak_lr - final_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Schedule:
    """The resolved schedule of a run: what config.yaml records and the loop follows."""

    total_steps: int
    steps_per_epoch: int
    epochs: int  # passes of the epoch loop; the last one is cut at total_steps
    warmup_steps: int
    peak_lr: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, warmup: Warmup, base_lr: float, global_batch: int) -> str:
        if not self.total_steps:
            return "Schedule: 0 steps; the initial, untrained encoder is saved as a baseline."
        passes = (f"{self.epochs} epochs of {self.steps_per_epoch} steps"
                  if self.epochs * self.steps_per_epoch == self.total_steps else
                  f"{self.epochs} passes of {self.steps_per_epoch}-step epochs, the last cut at step "
                  f"{self.total_steps}")
        warming = (f"linear warm-up over {self.warmup_steps} step{'s' if self.warmup_steps != 1 else ''} "
                   f"(--warmup {warmup}) to" if self.warmup_steps else f"no warm-up (--warmup {warmup}), at")
        return (f"Schedule: {self.total_steps} steps ({passes}); {warming} a peak lr of {self.peak_lr:g} "
                f"({base_lr:g} x global batch {global_batch} / 256), then cosine decay to 0.")


def plan_schedule(*, epochs: int | None, steps: int | None, warmup: Warmup, steps_per_epoch: int,
                  base_lr: float, global_batch: int) -> Schedule:
    """The run's length in steps (``steps``, or ``epochs`` whole epochs), its warm-up and peak lr;
    refuses in one sentence a warm-up that does not end before the run does. 0 steps is a run that
    only saves its initial weights."""
    total = steps if steps is not None else epochs * steps_per_epoch
    warmup_steps = warmup.steps(total, steps_per_epoch) if total else 0
    if total and warmup_steps >= total:
        raise OptimizerConfigError(
            f"--warmup {warmup} is {warmup_steps:.12g} steps, which leaves no step of the run's {total} to decay "
            f"in; give a shorter warm-up, such as a fraction of the run (--warmup 0.05).")
    return Schedule(total_steps=total, steps_per_epoch=steps_per_epoch, epochs=math.ceil(total / steps_per_epoch),
                    warmup_steps=warmup_steps, peak_lr=scaled_lr(base_lr, global_batch))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
