from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from train.losses import LossConfigError, contrastive_loss, positive_similarity


def reference_loss(embeddings: torch.Tensor, labels: list[int], temperature: float) -> torch.Tensor:
    """SupCon L_out written out term by term with loops over anchor i, positive p and denominator a."""
    n = len(labels)
    unit = [embeddings[i] / torch.sqrt(sum(x * x for x in embeddings[i])) for i in range(n)]
    anchor_losses = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(torch.exp(torch.dot(unit[i], unit[a]) / temperature) for a in range(n) if a != i)
        terms = [torch.log(torch.exp(torch.dot(unit[i], unit[p]) / temperature) / denominator) for p in positives]
        anchor_losses.append(-sum(terms) / len(positives))
    return sum(anchor_losses) / len(anchor_losses)


LABEL_PATTERNS = {
    # view-major layout: all first views, then all second views
    "simclr-pairs": [0, 1, 2, 3, 4, 5] * 2,
    "multipositive-4-views": [0, 1, 2, 3] * 4,
    "supcon-repeated-classes": [2, 0, 1, 2, 2, 0, 3, 1, 1, 0, 3, 2, 0, 1],
    "some-anchors-without-positives": [0, 0, 1, 2, 3, 3, 3, 4, 5, 5],
}


def random_embeddings(count: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(count, 8, generator=generator, dtype=dtype) * 3).requires_grad_()


@pytest.mark.parametrize("pattern", LABEL_PATTERNS)
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_and_gradient_match_the_loop_reference(pattern: str, temperature: float) -> None:
    labels = LABEL_PATTERNS[pattern]
    embeddings = random_embeddings(len(labels), seed=len(pattern))
    loss = contrastive_loss(embeddings, torch.tensor(labels), temperature)
    (gradient,) = torch.autograd.grad(loss, embeddings)

    reference_input = embeddings.detach().clone().requires_grad_()
    expected = reference_loss(reference_input, labels, temperature)
    (expected_gradient,) = torch.autograd.grad(expected, reference_input)

    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-8, atol=1e-10)


def test_two_views_per_group_is_simclr_nt_xent() -> None:
    groups = 5
    embeddings = random_embeddings(2 * groups, seed=3)
    labels = torch.arange(groups).repeat(2)
    temperature = 0.2
    # NT-Xent as cross-entropy: the other view of the same group is the target, self is excluded.
    unit = F.normalize(embeddings, dim=1)
    logits = (unit @ unit.T / temperature).fill_diagonal_(float("-inf"))
    partner = torch.arange(2 * groups).roll(groups)
    nt_xent = F.cross_entropy(logits, partner)

    torch.testing.assert_close(contrastive_loss(embeddings, labels, temperature), nt_xent)


def test_small_temperature_in_float32_stays_finite_and_exact() -> None:
    labels = LABEL_PATTERNS["supcon-repeated-classes"]
    embeddings = random_embeddings(len(labels), seed=5)
    # exp(cosine / 0.005) overflows float32 for any cosine above 0.45: only a max-subtracted
    # formulation survives (the float64 reference does not overflow).
    loss = contrastive_loss(embeddings.detach().float(), torch.tensor(labels), 0.005)
    expected = reference_loss(embeddings.detach(), labels, 0.005)

    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("pattern", ["multipositive-4-views", "some-anchors-without-positives"])
def test_anchor_slices_average_to_the_full_loss_and_gradient(pattern: str) -> None:
    labels = torch.tensor(LABEL_PATTERNS[pattern][:8])  # slices get different numbers of anchors with positives
    embeddings = random_embeddings(8, seed=11)
    full = contrastive_loss(embeddings, labels, 0.3)
    (full_gradient,) = torch.autograd.grad(full, embeddings)

    slices = [slice(0, 4), slice(4, 8)]
    mean_of_slices = sum(contrastive_loss(embeddings, labels, 0.3, anchors=rows) for rows in slices) / len(slices)
    (slices_gradient,) = torch.autograd.grad(mean_of_slices, embeddings)

    torch.testing.assert_close(mean_of_slices, full)
    torch.testing.assert_close(slices_gradient, full_gradient)


def test_batch_without_any_positive_gives_a_zero_that_backpropagates() -> None:
    embeddings = random_embeddings(4, seed=2)
    loss = contrastive_loss(embeddings, torch.arange(4), 0.1)
    loss.backward()

    assert loss.item() == 0.0
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_half_precision_embeddings_are_computed_in_float32() -> None:
    labels = torch.tensor(LABEL_PATTERNS["simclr-pairs"])
    embeddings = random_embeddings(len(labels), seed=9).detach()
    loss = contrastive_loss(embeddings.to(torch.bfloat16), labels, 0.05)

    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(contrastive_loss(embeddings, labels, 0.05).item(), rel=0.05)


@pytest.mark.parametrize("arguments, message", [
    (dict(temperature=0.0), "temperature must be positive"),
    (dict(labels=torch.arange(3)), "labels \\[N\\]"),
    (dict(anchors=slice(8, 12)), "selects no row"),
])
def test_bad_arguments_raise_one_sentence(arguments: dict, message: str) -> None:
    call = dict(embeddings=torch.randn(4, 3), labels=torch.tensor([0, 0, 1, 1]), temperature=0.1) | arguments
    with pytest.raises(LossConfigError, match=message):
        contrastive_loss(**call)


def test_positive_similarity_compares_each_sample_s_first_view_with_its_others() -> None:
    anchor = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # two samples of three views: the first's views are the anchor scaled, the second's opposite
    embeddings = torch.stack([anchor[0], 3 * anchor[0], anchor[0], anchor[1], -anchor[1], -anchor[1]])
    assert positive_similarity(embeddings, views=3).item() == pytest.approx((1 + 1 - 1 - 1) / 4)
    assert positive_similarity(torch.randn(8, 5), views=2).abs() <= 1
