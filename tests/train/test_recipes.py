"""The recipes in configs/ are options the trainer takes: each trains one step on a tiny set, with
the sizes made small on the command line (flags win over --config)."""

from __future__ import annotations

import pytest
import yaml

from tests.cli import REPO
from tests.train.test_main import make_set, train_in_process

RECIPES = sorted((REPO / "configs").glob("*.yaml"))
TINY = ["--backbone", "convnet-small", "--crop-size", "16", "--batch-size", "4", "--steps", "1", "--warmup", "0",
        "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("data") / "set", anchors=16)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_a_recipe_trains_with_its_options(tmp_path, tiny_set, recipe):
    result = train_in_process("--config", recipe, "--data", tiny_set, "--out", tmp_path / "run", *TINY)
    assert result.returncode == 0, result.stderr
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    overridden = {"backbone", "crop_size", "batch_size", "warmup", "epochs"}
    for key, value in yaml.safe_load(recipe.read_text()).items():
        if key not in overridden:
            assert recorded[key] == value, key
