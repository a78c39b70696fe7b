"""What each method takes as positives: SupCon the classes, SimCLR and multi-positive every view of a
group. Checked on the trainer's own step against the loop reference of the loss, and on the command
line, where --method supcon and --method simclr must train differently from the same start."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from train.augment import normalize
from train.data import Batch
from train.loop import training_step
from train.models import build_model
from train.optim import build_optimizer
from tests.train.test_losses import reference_loss
from tests.train.test_main import FAST, labelled_set, read_metrics, train_in_process  # noqa: F401 (fixture)

TEMPERATURE = 0.2
GROUP_IDS = torch.tensor([10, 11, 12, 13, 14, 15])
CLASSES = torch.tensor([0, 1, 0, 1, 2, 2])  # classes repeat across groups: SupCon and SimCLR disagree


def batch_of(views: int) -> Batch:
    images = torch.randint(0, 256, (len(GROUP_IDS), views, 3, 16, 16), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    return Batch(images=images, group_ids=GROUP_IDS, labels=CLASSES, skipped=0)


def reference(model: torch.nn.Module, batch: Batch, positives: torch.Tensor, views: int) -> torch.Tensor:
    """The loop reference of the loss on ``views`` views of every group, with ``positives`` per group."""
    embeddings = copy.deepcopy(model)(normalize(batch.images[:, :views].flatten(0, 1)))
    return reference_loss(embeddings.detach().double(), positives.repeat_interleave(views).tolist(), TEMPERATURE)


@pytest.mark.parametrize("method, views, right, wrong", [
    ("supcon", 2, "classes", "group ids"),
    ("simclr", 2, "group ids", "classes"),
    ("multipos", 4, "group ids, all 4 views", "group ids, 2 views"),
])
def test_the_training_step_takes_the_method_s_positives(method, views, right, wrong):
    torch.manual_seed(0)
    model = build_model("convnet-small", small_images=True, projection_dim=16)
    batch = batch_of(views)
    positives = {"classes": (CLASSES, views), "group ids": (GROUP_IDS, views),
                 "group ids, all 4 views": (GROUP_IDS, 4), "group ids, 2 views": (GROUP_IDS, 2)}
    candidates = {name: reference(model, batch, *positives[name]) for name in (right, wrong)}
    assert abs(candidates[right] - candidates[wrong]) > 0.05  # the batch tells the two apart
    loss = training_step(model, build_optimizer("adamw", model, 1e-3, 0.0), batch, supervised=method == "supcon",
                         temperature=TEMPERATURE, precision=contextlib.nullcontext(), channels_last=False)
    assert loss.item() == pytest.approx(candidates[right].item(), rel=1e-4), f"{method} does not use {right}"


def test_supcon_on_the_command_line_trains_on_classes(tmp_path, labelled_set):
    """Same seed, same first batch, same initial weights: only the positives differ between methods."""
    first_losses = {}
    for run, method in (("simclr", "simclr"), ("simclr-again", "simclr"), ("supcon", "supcon")):
        result = train_in_process("--data", labelled_set, "--out", tmp_path / run, "--steps", 1, "--method", method,
                                  "--seed", 3, *FAST)
        assert result.returncode == 0, result.stderr
        first_losses[run] = read_metrics(tmp_path / run)[0]["loss"]
    assert first_losses["simclr"] == first_losses["simclr-again"]
    assert abs(first_losses["supcon"] - first_losses["simclr"]) > 0.05, first_losses
