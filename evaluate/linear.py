"""Linear probe: multinomial logistic regression on frozen features, tuned without the validation set.

Every (learning rate, weight decay) pair of a small grid is trained at once, as one wide linear
layer whose column blocks are the candidate classifiers (one matrix product serves them all).

The full-label probe trains them on the stratified, seeded fit part of the training features; the
pair with the best held-out top-1 (lower held-out loss breaks ties) is retrained on the whole
training set and scored on the validation set, which never takes part in the choice. Features are
standardised with the mean and standard deviation of the rows the classifier is fitted on.

The low-label probe (``evaluate_low_label``) fits on a few labelled images per class instead,
drawn again for each of several seeded draws, and reports the mean and spread over the draws. Each
draw chooses its pair by k-fold cross-validation within its own labelled images, so neither the
validation set nor any other training label takes part. Features are L2-normalised, then
standardised with the mean and standard deviation of every training image (no label is used).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from evaluate.choices import DEFAULT_DRAWS
from evaluate.features import EvaluationError, Features
from evaluate.results import top1_top5

LR_GRID = (0.001, 0.01, 0.1)
WEIGHT_DECAY_GRID = (0.0, 1e-5, 1e-4, 1e-3)
MOMENTUM = 0.9
MIN_STD = 1e-6  # features that never vary (dead units) stay zero instead of dividing by zero
# A few labels over-fit sooner than a whole training set: the low-label grid reaches stronger decay.
LOW_LABEL_WEIGHT_DECAY_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
CROSS_VALIDATION_FOLDS = 5
LOW_LABEL_PREFIX = "linear@"


@dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 100
    batch_size: int = 256
    holdout: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class LowLabelSettings:
    labels_per_class: int
    draws: int = DEFAULT_DRAWS

    def __post_init__(self) -> None:
        # cross-validation needs two images of a class, a sample standard deviation two draws
        if self.labels_per_class < 2 or self.draws < 2:
            raise ValueError(f"A low-label probe needs at least 2 labels per class and 2 draws (got "
                             f"{self.labels_per_class} and {self.draws}).")


class LowLabelResult(NamedTuple):
    top1: float  # mean over the draws
    top5: float | None  # mean over the draws; None with fewer than 5 classes
    over_draws: dict[str, Any]  # top-1 std, min and max over the draws, and every draw's own record
    settings: dict[str, Any]


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


def low_label_metric(labels_per_class: int) -> str:
    """The name results.json and the report give a low-label probe, e.g. linear@10."""
    return f"{LOW_LABEL_PREFIX}{labels_per_class}"


def check_enough_labels(labels: np.ndarray, class_names: Sequence[str], labels_per_class: int) -> None:
    """Refuse, in one sentence, a training set with fewer than ``labels_per_class`` images of a class."""
    counts = np.bincount(labels, minlength=len(class_names))
    short = np.flatnonzero(counts < labels_per_class)
    if len(short) == 0:
        return
    fewest = short[np.argmin(counts[short])]
    example = f"class {class_names[fewest]!r} has {counts[fewest]}"
    which = example if len(short) == 1 else f"{len(short)} classes have fewer ({example})"
    raise EvaluationError(f"--labels-per-class {labels_per_class} needs {labels_per_class} training images of "
                          f"every class, but {which}.")


def draw_labelled(labels: np.ndarray, num_classes: int, labels_per_class: int, seed: int,
                  draw: int) -> np.ndarray:
    """Rows of ``labels_per_class`` images of every class, class after class, each class's in random
    order; drawn without replacement by a generator seeded by (seed, draw) alone."""
    rng = np.random.default_rng([seed, draw])
    return np.concatenate([rng.choice(np.flatnonzero(labels == label), labels_per_class, replace=False)
                           for label in range(num_classes)])


def cross_validation_folds(num_classes: int, labels_per_class: int, count: int) -> np.ndarray:
    """The fold of every row of a draw: a class's rows are in random order, so dealing them out in
    turn gives random folds with the same share of every class."""
    return np.tile(np.arange(labels_per_class) % count, num_classes)


def cross_validate(vectors: torch.Tensor, labels: torch.Tensor, folds: np.ndarray, num_classes: int,
                   candidates: list[tuple[float, float]], settings: ProbeSettings) -> tuple[int, list[float]]:
    """The best candidate by cross-validated top-1 (each fold scored by the candidates trained on the
    other folds), and every candidate's cross-validated top-1."""
    scores, held_labels = [], []
    for fold in np.unique(folds):
        held = torch.from_numpy(folds == fold).to(vectors.device)
        trial = train_classifiers(vectors[~held], labels[~held], num_classes, candidates, settings)
        scores.append(trial.scores(vectors[held]))
        held_labels.append(labels[held])
    return choose_candidate(torch.cat(scores, dim=1), torch.cat(held_labels))


def fit_draw(vectors: torch.Tensor, labels: torch.Tensor, val_vectors: torch.Tensor, val_labels: torch.Tensor,
             folds: np.ndarray, num_classes: int, settings: ProbeSettings) -> dict[str, Any]:
    """One draw's record: its classifier chosen by cross-validation, retrained on the whole draw and
    scored on the validation set."""
    candidates = list(itertools.product(LR_GRID, LOW_LABEL_WEIGHT_DECAY_GRID))
    best, cv_top1 = cross_validate(vectors, labels, folds, num_classes, candidates, settings)
    final = train_classifiers(vectors, labels, num_classes, [candidates[best]], settings)
    top1, top5 = top1_top5(final.scores(val_vectors)[0], val_labels)
    lr, weight_decay = candidates[best]
    return {"top1": top1, "top5": top5, "lr": lr, "weight_decay": weight_decay, "cv_top1": cv_top1[best]}


def summarise_draws(draws: list[dict[str, Any]]) -> tuple[float, float | None, dict[str, Any]]:
    """Mean top-1 and top-5 over the draws, and the spread of top-1 (sample std, min, max)."""
    top1 = [draw["top1"] for draw in draws]
    top5 = [draw["top5"] for draw in draws]
    mean_top5 = None if None in top5 else float(np.mean(top5))
    return float(np.mean(top1)), mean_top5, {"top1_std": float(np.std(top1, ddof=1)), "top1_min": min(top1),
                                             "top1_max": max(top1), "per_draw": draws}


def low_label_vectors(train: Features, val: Features, device: torch.device) -> list[torch.Tensor]:
    """Both sets' features L2-normalised, then standardised with the mean and std of every training
    image: those need no label, so every draw shares them."""
    unit = [torch.nn.functional.normalize(torch.from_numpy(features.vectors).to(device), dim=1)
            for features in (train, val)]
    return standardise(*unit)


def low_label_record(low_label: LowLabelSettings, fold_count: int, settings: ProbeSettings) -> dict[str, Any]:
    return {
        "labels_per_class": low_label.labels_per_class,
        "draws": low_label.draws,
        "draw_generator": "numpy.random.default_rng([seed, draw])",
        "regularisation": f"chosen in each draw by {fold_count}-fold cross-validation on the draw's labelled "
                          "images alone",
        "folds": fold_count,
        "lr_grid": list(LR_GRID),
        "weight_decay_grid": list(LOW_LABEL_WEIGHT_DECAY_GRID),
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "momentum": MOMENTUM,
        "seed": settings.seed,
        "features": "L2-normalised, then standardised with the mean and std of every training image",
    }


def evaluate_low_label(train: Features, val: Features, class_names: Sequence[str], low_label: LowLabelSettings,
                       settings: ProbeSettings, device: torch.device) -> LowLabelResult:
    """The low-label probe: ``low_label.draws`` draws of ``labels_per_class`` training images per class,
    each fitted (settings chosen by cross-validation within the draw) and scored on ``val``."""
    num_classes, per_class = len(class_names), low_label.labels_per_class
    check_enough_labels(train.labels, class_names, per_class)
    fold_count = min(CROSS_VALIDATION_FOLDS, per_class)
    folds = cross_validation_folds(num_classes, per_class, fold_count)
    draws = []
    with torch.inference_mode():
        vectors, val_vectors = low_label_vectors(train, val, device)
        labels, val_labels = (torch.from_numpy(features.labels).to(device) for features in (train, val))
        for draw in range(low_label.draws):
            rows = draw_labelled(train.labels, num_classes, per_class, settings.seed, draw)
            rows = torch.from_numpy(rows).to(device)
            record = fit_draw(vectors[rows], labels[rows], val_vectors, val_labels, folds, num_classes, settings)
            draws.append({"draw": draw, **record})
    top1, top5, over_draws = summarise_draws(draws)
    return LowLabelResult(top1, top5, over_draws, low_label_record(low_label, fold_count, settings))
