"""Weighted kNN on frozen features (Wu et al. 2018, InstDisc): cosine similarity, votes exp(sim / T)."""

from __future__ import annotations

from typing import Any

import torch

from evaluate.features import EvaluationError, Features
from evaluate.results import top1_top5

QUERY_CHUNK = 1024  # validation rows scored at once: bounds the [chunk, train] similarity matrix


def knn_scores(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
               k: int, temperature: float) -> torch.Tensor:
    """Class scores [Q, C]: the sum of exp(sim / T) over each query's k most similar bank rows."""
    bank = torch.nn.functional.normalize(bank, dim=1)
    scores = []
    for chunk in torch.nn.functional.normalize(queries, dim=1).split(QUERY_CHUNK):
        similarity, neighbours = (chunk @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), num_classes, device=chunk.device)
        scores.append(votes.scatter_add_(1, bank_labels[neighbours], (similarity / temperature).exp()))
    return torch.cat(scores)


def evaluate_knn(train: Features, val: Features, num_classes: int, k: int, temperature: float,
                 device: torch.device) -> tuple[float, float | None, dict[str, Any]]:
    """Top-1, top-5 on ``val`` with ``train`` as the memory bank, and the settings record."""
    if k > len(train.labels):
        raise EvaluationError(f"--k {k} is more than the {len(train.labels)} images of the training set.")
    with torch.inference_mode():
        scores = knn_scores(torch.from_numpy(train.vectors).to(device),
                            torch.from_numpy(train.labels).to(device),
                            torch.from_numpy(val.vectors).to(device), num_classes, k, temperature)
        top1, top5 = top1_top5(scores, torch.from_numpy(val.labels).to(device))
    return top1, top5, {"k": k, "temperature": temperature, "similarity": "cosine",
                        "votes": "exp(similarity / temperature)"}
