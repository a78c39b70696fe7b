"""Feature extraction: the checkpoint's frozen encoder on view 0 of every group, cached once per input."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluate.features import (EvaluationError, cache_name, cached_features, center_view, extract_features,
                               load_frozen_encoder, open_labelled_set)
from shards import decode_view
from tests.evaluate.helpers import CLASSES, write_checkpoint, write_labelled_set
from train.checkpoint import CheckpointError, save_checkpoint


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("features")
    return {"set": write_labelled_set(root / "set", groups=20, seed=1),
            "other": write_labelled_set(root / "other", groups=20, seed=2),
            "checkpoint": write_checkpoint(root / "run" / "last.pt", seed=0),
            "other_checkpoint": write_checkpoint(root / "other-run" / "last.pt", seed=1)}


def test_center_view_scales_the_shorter_side_to_crop_over_0875_and_keeps_the_centre():
    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, :, 1] = 200  # green...
    pixels[:, :10, 0] = 250  # ...with a red band on the left that the centre crop must drop
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG", quality=95)

    view = center_view(decode_view(jpeg.getvalue()), crop_size=28)  # 40x80 -> 32x64 -> centre 28x28

    assert view.dtype == torch.uint8 and view.shape == (3, 28, 28)
    assert view[0].float().mean() < 40 and view[1].float().mean() > 160


def test_encoder_is_frozen_with_the_checkpoint_weights(inputs):
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    saved = torch.load(inputs["checkpoint"], weights_only=True)["model"]

    assert not encoder.module.training
    assert torch.equal(encoder.module.state_dict()["layer4.1.conv2.weight"], saved["encoder.layer4.1.conv2.weight"])
    assert (encoder.crop_size, encoder.image_size) == (32, 32)


@pytest.mark.parametrize("replace_entries, expected", [
    (lambda state: {"model": [1, 2]}, "holds a model that is not a table of named tensors"),
    (lambda state: {"model": {**state["model"], "encoder.conv1.weight": "pixels"}},
     "holds a model that is not a table of named tensors"),
    (lambda state: {"config": ["resnet18"]}, "holds a config that is not a dictionary"),
    (lambda state: {"config": {**state["config"], "backbone": ["resnet18"]}}, r"names backbone \['resnet18'\]"),
    (lambda state: {"config": {**state["config"], "image_size": 0}}, "image_size in its config that is not a"),
], ids=["model list", "model of text", "config list", "backbone list", "image size zero"])
def test_checkpoint_of_another_program_is_refused_in_one_sentence(inputs, tmp_path, replace_entries, expected):
    state = torch.load(inputs["checkpoint"], weights_only=True)
    save_checkpoint(tmp_path / "foreign.pt", {**state, **replace_entries(state)})

    with pytest.raises(CheckpointError, match=expected) as error:
        load_frozen_encoder(tmp_path / "foreign.pt", torch.device("cpu"))
    assert "\n" not in str(error.value) and str(error.value).endswith(".")


def test_features_follow_anchor_order_whatever_the_batch_size(inputs):
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    shard_set = open_labelled_set(str(inputs["set"]), encoder)

    whole = extract_features(encoder, shard_set, batch_size=64)
    in_pieces = extract_features(encoder, shard_set, batch_size=7)

    assert whole.vectors.shape == (20, 512) and whole.vectors.dtype == np.float32
    assert np.isfinite(whole.vectors).all()
    assert whole.labels.tolist() == [anchor % len(CLASSES) for anchor in range(20)]
    np.testing.assert_allclose(in_pieces.vectors, whole.vectors, rtol=1e-4, atol=1e-5)
    assert np.array_equal(in_pieces.labels, whole.labels)


def test_cache_name_changes_with_checkpoint_set_and_crop(inputs):
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    other_encoder = load_frozen_encoder(inputs["other_checkpoint"], torch.device("cpu"))
    shard_set = open_labelled_set(str(inputs["set"]), encoder)
    other_set = open_labelled_set(str(inputs["other"]), encoder)
    cropped = replace(encoder, config={**encoder.config, "crop_size": 24})

    names = {cache_name(encoder, shard_set), cache_name(other_encoder, shard_set),
             cache_name(encoder, other_set), cache_name(cropped, shard_set)}

    assert len(names) == 4
    assert cache_name(encoder, shard_set) == cache_name(load_frozen_encoder(inputs["checkpoint"]), shard_set)


def test_second_run_reads_the_cache_instead_of_the_shards(inputs, tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    for path in inputs["set"].iterdir():
        (data / path.name).write_bytes(path.read_bytes())
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    shard_set = open_labelled_set(str(data), encoder)
    first, cache = cached_features(encoder, shard_set, tmp_path / "out")
    written = cache.stat().st_mtime_ns
    for shard in data.glob("shard-*.tar"):
        shard.unlink()  # only the cache can supply the features now

    again, same_cache = cached_features(encoder, shard_set, tmp_path / "out")

    assert same_cache == cache and cache.stat().st_mtime_ns == written
    assert np.array_equal(again.vectors, first.vectors) and np.array_equal(again.labels, first.labels)
    assert np.load(cache, allow_pickle=False)["vectors"].shape == (20, 512)


def test_damaged_cache_is_extracted_anew(inputs, tmp_path):
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    shard_set = open_labelled_set(str(inputs["set"]), encoder)
    first, cache = cached_features(encoder, shard_set, tmp_path)
    cache.write_bytes(cache.read_bytes()[:100])

    again, _ = cached_features(encoder, shard_set, tmp_path)

    assert np.array_equal(again.vectors, first.vectors)
    assert np.array_equal(np.load(cache, allow_pickle=False)["vectors"], first.vectors)


def test_sets_must_be_labelled_and_of_the_training_image_size(inputs, tmp_path):
    encoder = load_frozen_encoder(inputs["checkpoint"], torch.device("cpu"))
    unlabelled = write_labelled_set(tmp_path / "unlabelled", groups=4, seed=0, labelled=False)
    larger = write_labelled_set(tmp_path / "larger", groups=4, seed=0, size=48)

    with pytest.raises(EvaluationError, match="unlabelled"):
        open_labelled_set(str(unlabelled), encoder)
    with pytest.raises(EvaluationError, match="--image-size 32"):
        open_labelled_set(str(larger), encoder)
