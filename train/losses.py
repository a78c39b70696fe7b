"""The one contrastive loss behind SimCLR, SupCon and multi-positive training (SupCon's L_out).

Which samples are positives of each other is said by ``labels`` alone:

- SimCLR and multi-positive: the group id of each view, so all views of a group are positives of each
  other (two views per group gives SimCLR's NT-Xent exactly). Group ids must be unique across the
  whole global batch: train/data.py gives ``set_index * GROUP_ID_STRIDE + anchor``, which holds
  across ranks (each reads its own shards) and across mixed sets.
- SupCon: the class index, from the same class table on every rank.

Everything else in the (global) batch is a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import UserError
from train import distributed


class LossConfigError(UserError):
    """The loss was asked for something it cannot compute; the message is one sentence."""


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float,
                     anchors: slice | None = None) -> torch.Tensor:
    """SupCon's L_out over ``embeddings`` [N, D] (L2-normalised here) with positives given by ``labels`` [N].

    For anchor i with positives P(i) = {p != i : labels[p] == labels[i]}:
    loss_i = -1/|P(i)| * sum_{p in P(i)} log(exp(s_ip / t) / sum_{a != i} exp(s_ia / t)).
    The loss is the mean of loss_i over the anchors that have at least one positive; the others only
    serve as negatives. Without any such anchor it is a zero that still backpropagates.

    ``anchors`` picks the rows computed as anchors (a rank's own rows of a gathered batch); the
    result is their share of the full-batch loss, scaled so that the mean over equal-sized slices
    covering the batch equals the full-batch loss, even when the slices hold different numbers of
    anchors with positives.
    """
    if temperature <= 0:
        raise LossConfigError(f"The temperature must be positive (got {temperature}).")
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1] or len(labels) < 2:
        raise LossConfigError(f"The loss needs embeddings [N, D] and labels [N] with N >= 2 "
                              f"(got {tuple(embeddings.shape)} and {tuple(labels.shape)}).")
    total = len(labels)
    rows = range(total)[anchors or slice(None)]
    if len(rows) == 0:
        raise LossConfigError(f"The anchor slice {anchors} selects no row of a batch of {total}.")
    # Half-precision similarities lose too much at small temperatures: compute in float32 at least.
    unit = F.normalize(embeddings.to(torch.promote_types(embeddings.dtype, torch.float32)), dim=1)
    anchor_index = torch.arange(rows.start, rows.stop, rows.step, device=labels.device)
    is_self = anchor_index[:, None] == torch.arange(total, device=labels.device)[None, :]
    logits = (unit[anchor_index] @ unit.T / temperature).masked_fill(is_self, float("-inf"))
    # logsumexp subtracts the row max, so exp never overflows however small the temperature.
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[anchor_index][:, None] == labels[None, :]) & ~is_self
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1).clamp(min=1)
    anchors_with_positives = _count_labels_seen_twice(labels)
    return per_anchor.sum() * (total / len(rows)) / max(anchors_with_positives, 1)


def _count_labels_seen_twice(labels: torch.Tensor) -> int:
    """How many samples of the batch share their label with another sample (the anchors with positives)."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


def distributed_contrastive_loss(local_embeddings: torch.Tensor, local_labels: torch.Tensor,
                                 temperature: float) -> torch.Tensor:
    """This rank's anchors against the embeddings of every rank (negatives carry gradient).

    Every rank must pass the same number of rows. Under DDP the mean of the ranks' losses is the
    loss of the global batch and the averaged gradients are its single-process gradients; in one
    process this is ``contrastive_loss`` itself.
    """
    embeddings = distributed.gather_with_grad(local_embeddings)
    labels = distributed.all_gather_no_grad(local_labels)
    start = distributed.rank() * len(local_labels)
    return contrastive_loss(embeddings, labels, temperature, anchors=slice(start, start + len(local_labels)))


def positive_similarity(embeddings: torch.Tensor, views: int) -> torch.Tensor:
    """The mean cosine similarity of each sample's first view to its other views (rows sample by
    sample, ``views`` each): how close training has pulled a group's views together."""
    unit = F.normalize(embeddings.unflatten(0, (-1, views)), dim=-1)
    return (unit[:, :1] * unit[:, 1:]).sum(-1).mean()
