"""Linear probe: multinomial logistic regression on frozen features, tuned on a split of the training set.

Every (learning rate, weight decay) pair of a small grid is trained at once, as one wide linear
layer whose column blocks are the candidate classifiers (one matrix product serves them all), on
the stratified, seeded fit part of the training features; the pair with the best held-out top-1
(lower held-out loss breaks ties) is retrained on the whole training set and scored on the
validation set, which never takes part in the choice. Features are standardised with the mean and
standard deviation of the rows the classifier is fitted on.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evaluate.features import EvaluationError, Features
from evaluate.results import top1_top5

LR_GRID = (0.001, 0.01, 0.1)
WEIGHT_DECAY_GRID = (0.0, 1e-5, 1e-4, 1e-3)
MOMENTUM = 0.9
MIN_STD = 1e-6  # features that never vary (dead units) stay zero instead of dividing by zero


@dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 100
    batch_size: int = 256
    holdout: float = 0.2
    seed: int = 0


@dataclass
class LinearClassifiers:
    """G classifiers side by side: ``weight`` [D, G*C] and ``bias`` [G*C], block g for candidate g."""

    weight: torch.Tensor
    bias: torch.Tensor
    num_classes: int

    def scores(self, vectors: torch.Tensor) -> torch.Tensor:
        """Class scores [G, N, C] of every candidate."""
        logits = torch.addmm(self.bias, vectors, self.weight)
        return logits.view(len(vectors), -1, self.num_classes).transpose(0, 1)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows): ``fraction`` of every class, drawn with the seed; a class keeps one row."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        count = min(round(fraction * len(rows)), len(rows) - 1)
        held.append(rows[:count])
        fit.append(rows[count:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))


def standardise(fit: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Every tensor standardised with the mean and standard deviation of ``fit``."""
    mean, std = fit.mean(dim=0), fit.std(dim=0).clamp_min(MIN_STD)
    return [(tensor - mean) / std for tensor in (fit, *others)]


def train_classifiers(vectors: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      candidates: list[tuple[float, float]], settings: ProbeSettings) -> LinearClassifiers:
    """One classifier per (lr, weight decay) candidate, by SGD with momentum and a cosine schedule.

    The gradient of the mean cross-entropy is written out (softmax minus one-hot), so the
    candidates share each mini-batch and one matrix product; weight decay spares the bias.
    """
    rows, dim = vectors.shape
    device, count = vectors.device, len(candidates)
    lrs = torch.tensor([lr for lr, _ in candidates], device=device).repeat_interleave(num_classes)
    decays = torch.tensor([wd for _, wd in candidates], device=device).repeat_interleave(num_classes)
    model = LinearClassifiers(torch.zeros(dim, count * num_classes, device=device),
                              torch.zeros(count * num_classes, device=device), num_classes)
    weight_velocity, bias_velocity = torch.zeros_like(model.weight), torch.zeros_like(model.bias)
    generator = torch.Generator().manual_seed(settings.seed)
    total_steps = settings.epochs * math.ceil(rows / settings.batch_size)
    step = 0
    for _ in range(settings.epochs):
        order = torch.randperm(rows, generator=generator).to(device)
        for batch in order.split(settings.batch_size):
            inputs = vectors[batch]
            grad = torch.softmax(model.scores(inputs), dim=2)  # [G, B, C]
            grad[:, torch.arange(len(batch), device=device), labels[batch]] -= 1.0
            grad = grad.transpose(0, 1).reshape(len(batch), -1) / len(batch)  # [B, G*C]
            schedule = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            weight_velocity.mul_(MOMENTUM).add_(inputs.T @ grad + decays * model.weight)
            bias_velocity.mul_(MOMENTUM).add_(grad.sum(dim=0))
            model.weight.sub_(schedule * lrs * weight_velocity)
            model.bias.sub_(schedule * lrs * bias_velocity)
            step += 1
    return model


def choose_candidate(scores: torch.Tensor, labels: torch.Tensor) -> tuple[int, list[float]]:
    """The index of the best candidate by held-out top-1, then lower loss; and every top-1."""
    accuracy = (scores.argmax(dim=2) == labels).float().mean(dim=1)
    loss = torch.nn.functional.cross_entropy(scores.transpose(1, 2), labels.expand(len(scores), -1),
                                             reduction="none").mean(dim=1)
    loss = torch.nan_to_num(loss, nan=math.inf)  # a diverged candidate loses every tie
    best = min(range(len(scores)), key=lambda index: (-accuracy[index].item(), loss[index].item()))
    return best, accuracy.tolist()


def evaluate_linear(train: Features, val: Features, num_classes: int, settings: ProbeSettings,
                    device: torch.device) -> tuple[float, float | None, dict[str, Any]]:
    """Top-1, top-5 on ``val`` and the settings record (grid, choice, held-out accuracy)."""
    fit_rows, held_rows = stratified_holdout(train.labels, settings.holdout, settings.seed)
    if len(held_rows) == 0:
        raise EvaluationError(f"--holdout {settings.holdout} of {len(train.labels)} training images holds "
                              "out none; use a larger --holdout or training set.")
    vectors = torch.from_numpy(train.vectors).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    candidates = list(itertools.product(LR_GRID, WEIGHT_DECAY_GRID))
    with torch.inference_mode():
        fit_part, held_part = standardise(vectors[fit_rows], vectors[held_rows])
        trial = train_classifiers(fit_part, labels[fit_rows], num_classes, candidates, settings)
        best, held_accuracy = choose_candidate(trial.scores(held_part), labels[held_rows])
        all_train, val_vectors = standardise(vectors, torch.from_numpy(val.vectors).to(device))
        final = train_classifiers(all_train, labels, num_classes, [candidates[best]], settings)
        top1, top5 = top1_top5(final.scores(val_vectors)[0], torch.from_numpy(val.labels).to(device))
    lr, weight_decay = candidates[best]
    return top1, top5, {
        "lr": lr,
        "weight_decay": weight_decay,
        "holdout_top1": held_accuracy[best],
        "lr_grid": list(LR_GRID),
        "weight_decay_grid": list(WEIGHT_DECAY_GRID),
        "holdout": settings.holdout,
        "holdout_groups": len(held_rows),
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "momentum": MOMENTUM,
        "seed": settings.seed,
        "features": "standardised with the mean and std of the training rows",
    }
