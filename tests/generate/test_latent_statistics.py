"""The latents a set is rendered from have the distribution the paper's recipe names: anchors are
independent truncated normals scaled by the truncation, gaussian views lie sigma-scaled truncated
noise away from their anchor, independent views are fresh draws. Checked on the statistics of many
anchors, so that a sampler that ignores its seed stream, sigma or truncation fails."""

from __future__ import annotations

import numpy as np
import pytest

from generate.sampling import ViewSpec, sample_latents

ANCHORS, DIM = 400, 32
TRUNCATED_STD = 0.8796  # the standard deviation of a standard normal truncated to [-2, 2]


def latents_of(spec: ViewSpec, seed: int = 7) -> np.ndarray:
    """[anchors, views, dim]."""
    return np.stack([sample_latents(seed, anchor, DIM, spec) for anchor in range(ANCHORS)])


@pytest.mark.parametrize("truncation", [1.0, 0.4])
def test_anchors_are_independent_truncated_normals_scaled_by_the_truncation(truncation):
    anchors = latents_of(ViewSpec(method="gaussian", views=2, sigma=0.5, truncation=truncation))[:, 0]
    assert np.abs(anchors).max() <= 2 * truncation + 1e-6
    assert anchors.std() == pytest.approx(truncation * TRUNCATED_STD, rel=0.05)
    assert np.abs(anchors.mean()) < 0.05 * truncation
    correlation = np.corrcoef(anchors[:-1].ravel(), anchors[1:].ravel())[0, 1]  # neighbouring anchors
    assert abs(correlation) < 0.05 and len({row.tobytes() for row in anchors}) == ANCHORS


@pytest.mark.parametrize("sigma", [0.2, 0.8])
def test_gaussian_views_are_sigma_scaled_truncated_noise_around_their_anchor(sigma):
    groups = latents_of(ViewSpec(method="gaussian", views=3, sigma=sigma, truncation=1.0))
    offsets = groups[:, 1:] - groups[:, :1]
    assert offsets.std() == pytest.approx(sigma * TRUNCATED_STD, rel=0.05)
    assert np.abs(offsets).max() <= 2 * sigma + 1e-6
    assert abs(np.corrcoef(offsets[:, 0].ravel(), offsets[:, 1].ravel())[0, 1]) < 0.05  # views independent


def test_independent_views_are_fresh_draws_and_seeds_give_other_sets():
    groups = latents_of(ViewSpec(method="independent", views=2, sigma=0.0, truncation=1.0))
    assert groups[:, 1].std() == pytest.approx(TRUNCATED_STD, rel=0.05)
    assert abs(np.corrcoef(groups[:, 0].ravel(), groups[:, 1].ravel())[0, 1]) < 0.05
    other_seed = latents_of(ViewSpec(method="independent", views=2, sigma=0.0, truncation=1.0), seed=8)
    assert abs(np.corrcoef(groups.ravel(), other_seed.ravel())[0, 1]) < 0.05
