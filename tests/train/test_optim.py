from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from train.choices import OptimizerConfigError, parse_warmup
from train.optim import LARS, build_optimizer, lr_at, plan_schedule, scaled_lr, set_lr


def small_network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_scaled_lr_follows_the_linear_rule() -> None:
    assert scaled_lr(0.3, 256) == pytest.approx(0.3)
    assert scaled_lr(0.3, 4096) == pytest.approx(4.8)


def test_schedule_at_key_steps() -> None:
    def schedule(step: int) -> float:
        return lr_at(step, total_steps=110, warmup_steps=10, peak_lr=2.0, final_lr=0.2)

    assert schedule(0) == pytest.approx(0.2)  # 1/10 of the peak on the first step
    assert schedule(4) == pytest.approx(1.0)
    assert schedule(9) == pytest.approx(2.0)
    assert schedule(10) == pytest.approx(2.0)
    assert schedule(60) == pytest.approx(1.1)  # half-way through the cosine: midway between peak and final
    assert schedule(35) == pytest.approx(0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert schedule(110) == pytest.approx(0.2)
    assert schedule(500) == pytest.approx(0.2)
    decay = [schedule(step) for step in range(10, 111)]
    assert all(later < earlier for earlier, later in zip(decay, decay[1:]))


def test_schedule_without_warmup_starts_at_the_peak() -> None:
    assert lr_at(0, total_steps=100, warmup_steps=0, peak_lr=0.5) == pytest.approx(0.5)
    assert lr_at(100, total_steps=100, warmup_steps=0, peak_lr=0.5) == 0.0


def test_warmup_longer_than_training_is_refused() -> None:
    with pytest.raises(OptimizerConfigError, match="Warm-up steps"):
        lr_at(0, total_steps=10, warmup_steps=20, peak_lr=1.0)


def test_unknown_optimizer_names_the_choices() -> None:
    with pytest.raises(OptimizerConfigError, match="Unknown optimizer 'adam'; choose one of sgd, lars, adamw."):
        build_optimizer("adam", small_network(), lr=0.1, weight_decay=1e-4)


@pytest.mark.parametrize("name", ["sgd", "lars", "adamw"])
def test_weight_decay_reaches_weights_but_not_biases_or_norms(name: str) -> None:
    network = small_network()
    before = {key: value.clone() for key, value in network.named_parameters()}
    optimizer = build_optimizer(name, network, lr=0.1, weight_decay=0.5)
    for param in network.parameters():
        param.grad = torch.zeros_like(param)  # only weight decay can move a parameter
    optimizer.step()

    for key, param in network.named_parameters():
        if param.ndim == 1:  # biases and the batch-norm scale and shift
            assert torch.equal(param, before[key]), key
        else:
            assert param.norm() < before[key].norm(), key
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.5, 0.0}


def test_lars_step_matches_a_hand_computed_update() -> None:
    weight = nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))  # norm 5
    bias = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = LARS([{"params": [weight], "weight_decay": 0.1},
                      {"params": [bias], "weight_decay": 0.0, "lars_adapt": False}], lr=0.5, momentum=0.9)
    weight.grad = torch.tensor([0.6, 0.8], dtype=torch.float64)
    bias.grad = torch.tensor([2.0], dtype=torch.float64)
    optimizer.step()

    # d = g + 0.1 w = (0.9, 1.2), |d| = 1.5, trust = 0.001 * 5 / 1.5, v = trust * d = (0.003, 0.004)
    torch.testing.assert_close(weight.detach(), torch.tensor([3.0 - 0.5 * 0.003, 4.0 - 0.5 * 0.004], dtype=torch.float64))
    torch.testing.assert_close(bias.detach(), torch.tensor([1.0 - 0.5 * 2.0], dtype=torch.float64))

    weight.grad = torch.tensor([0.6, 0.8], dtype=torch.float64)
    bias.grad = torch.tensor([2.0], dtype=torch.float64)
    previous = weight.detach().clone()
    optimizer.step()

    decayed = torch.tensor([0.6, 0.8], dtype=torch.float64) + 0.1 * previous
    velocity = 0.9 * torch.tensor([0.003, 0.004], dtype=torch.float64) + 0.001 * previous.norm() / decayed.norm() * decayed
    torch.testing.assert_close(weight.detach(), previous - 0.5 * velocity)
    torch.testing.assert_close(bias.detach(), torch.tensor([0.0 - 0.5 * (0.9 * 2.0 + 2.0)], dtype=torch.float64))


def test_lars_reduces_the_loss_of_a_toy_regression() -> None:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(64, 5, generator=generator)
    targets = inputs @ torch.randn(5, 1, generator=generator)
    model = nn.Linear(5, 1, bias=False)
    optimizer = LARS(model.parameters(), lr=1.0, trust_coefficient=0.02)

    def loss() -> torch.Tensor:
        return ((model(inputs) - targets) ** 2).mean()

    initial = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.5 * initial


def test_set_lr_updates_every_group() -> None:
    optimizer = build_optimizer("sgd", small_network(), lr=0.1, weight_decay=1e-4)
    set_lr(optimizer, lr_at(0, total_steps=10, warmup_steps=2, peak_lr=1.0))
    assert [group["lr"] for group in optimizer.param_groups] == [0.5, 0.5]


# --- the run's schedule: its length, warm-up and peak --------------------------------------------

@pytest.mark.parametrize("text, unit, steps", [
    ("0.05", "run", 5), ("0.1", "run", 10), ("0.001", "run", 1), ("0", "run", 0), (0.25, "run", 25),
    ("500steps", "steps", 500), ("1 step", "steps", 1), ("2epochs", "epochs", 14), ("2.5epochs", "epochs", 18),
])
def test_warmup_is_a_fraction_a_number_of_steps_or_of_epochs(text, unit: str, steps: int) -> None:
    warmup = parse_warmup(text)
    assert warmup.unit == unit and warmup.steps(total_steps=100, steps_per_epoch=7) == steps
    assert parse_warmup(str(warmup)) == warmup  # what config.yaml records reads back the same


@pytest.mark.parametrize("text, fragment", [
    ("1", "must be below 1; write 1epochs or 1steps"), ("10", "write 10epochs or 10steps"),
    ("2.5steps", "not a whole number of steps"), ("ten", "is not a fraction of the run (0.05)"),
    ("-0.1", "is not a fraction"), ("3 weeks", "is not a fraction"),
])
def test_a_warmup_that_is_no_length_is_refused_in_one_sentence(text: str, fragment: str) -> None:
    with pytest.raises(OptimizerConfigError, match=re.escape(fragment)):
        parse_warmup(text)


def test_a_schedule_in_steps_runs_whole_epochs_and_cuts_the_last() -> None:
    schedule = plan_schedule(epochs=None, steps=12, warmup=parse_warmup("0.25"), steps_per_epoch=5,
                             base_lr=0.3, global_batch=512)
    assert (schedule.total_steps, schedule.epochs, schedule.warmup_steps) == (12, 3, 3)
    assert schedule.peak_lr == pytest.approx(0.6)
    assert "12 steps (3 passes of 5-step epochs, the last cut at step 12)" in schedule.describe(
        parse_warmup("0.25"), 0.3, 512)
    by_epochs = plan_schedule(epochs=8, steps=None, warmup=parse_warmup("1epochs"), steps_per_epoch=3,
                              base_lr=0.05, global_batch=256)
    assert (by_epochs.total_steps, by_epochs.epochs, by_epochs.warmup_steps) == (24, 8, 3)
    untrained = plan_schedule(epochs=None, steps=0, warmup=parse_warmup("0.05"), steps_per_epoch=3, base_lr=0.05,
                              global_batch=256)
    assert (untrained.total_steps, untrained.epochs, untrained.warmup_steps) == (0, 0, 0)


def test_a_warmup_at_or_past_the_end_of_the_run_is_refused() -> None:
    for warmup, total in (("10epochs", "30"), ("24steps", "24")):
        with pytest.raises(OptimizerConfigError, match=rf"--warmup {warmup} is {total} steps, which leaves no step "
                                                       r"of the run's 24 to decay in; give a shorter warm-up"):
            plan_schedule(epochs=8, steps=None, warmup=parse_warmup(warmup), steps_per_epoch=3, base_lr=0.05,
                          global_batch=256)
