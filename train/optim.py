"""Optimisers (SGD, LARS, AdamW) with SimCLR's parameter groups, and the learning-rate schedule."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from common.errors import UserError

# Every optimizer, once: its base learning rate (per 256 images) and weight decay.
OPTIMIZERS = {
    "sgd": (0.05, 1e-4),
    "lars": (0.3, 1e-6),
    "adamw": (1e-3, 0.05),
}


class OptimizerConfigError(UserError):
    """The optimiser or schedule asked for is unusable; the message is one sentence for the user."""


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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
