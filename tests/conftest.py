"""Shared fixtures: a tiny BigGAN-deep with random weights, saved like the real ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.random_biggan import TINY_BIGGAN_CONFIG, write_random_biggan


@pytest.fixture(scope="session")
def tiny_biggan_weights(tmp_path_factory) -> Path:
    """A folder with config.json and pytorch_model.bin of a tiny random BigGAN-deep."""
    return write_random_biggan(tmp_path_factory.mktemp("tiny-biggan"), TINY_BIGGAN_CONFIG)
