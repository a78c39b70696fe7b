"""``python -m generate --view-method steer|gaussian+steer --walks FILE``: steered views, as
reproducible as gaussian ones, recorded in the set, and refused in one sentence when they cannot be."""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from common.files import sha256_file
from generate.cli import main as generate_main
from generate.sampling import Steering, ViewSpec, sample_group, sample_latents, truncated_normal
from generate.walks import WALKS_FORMAT, WALKS_VERSION, save_walks
from shards import open_set
from tests.cli import tree_digest

BLOB = "tests.generate.steer_plugins:make_blob"
NAMES = ["color.red", "color.green", "color.blue", "zoom", "shiftx"]
RANGES = [[-0.25, 0.25]] * 3 + [[-1.0, 1.0], [-0.25, 0.25]]


def walk_document(generator: str = BLOB, sha: str | None = "blob-weights", latent_dim: int = 8) -> dict:
    directions = torch.randn(len(NAMES), latent_dim, generator=torch.Generator().manual_seed(5))
    return {"format": WALKS_FORMAT, "version": WALKS_VERSION, "method": "fit", "names": list(NAMES),
            "directions": directions, "ranges": [list(bounds) for bounds in RANGES],
            "transforms": ["color", "zoom", "shiftx"], "settings": {"lr": 1e-3}, "evaluation": {},
            "generator": {"name": generator, "weights_sha256": sha, "latent_dim": latent_dim,
                          "num_classes": 3}, "provenance": {"command": ["tests"]}}


@pytest.fixture
def walks(tmp_path: Path) -> Path:
    path = tmp_path / "walks.pt"
    save_walks(path, walk_document())
    return path


def generate(out: Path, *args: object) -> None:
    result = CliRunner().invoke(generate_main, ["--out", str(out), "--no-progress", "--generator", BLOB,
                                                *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def groups_by_anchor(location: Path) -> dict[int, tuple]:
    return {group.anchor: (group.views, group.latents.tobytes(), group.label, group.meta)
            for group in open_set(str(location))}


def steering_of(path: Path) -> Steering:
    document = torch.load(path, weights_only=True)
    return Steering(names=tuple(NAMES), directions=document["directions"].double().numpy(),
                    ranges=tuple(tuple(bounds) for bounds in RANGES), walks_sha256=sha256_file(path),
                    walks_method="fit")


def test_steered_views_are_the_anchor_moved_along_the_walks_and_recorded(tmp_path, walks):
    generate(tmp_path / "set", "--view-method", "steer", "--walks", walks, "--n-anchors", 12,
             "--views", 4, "--seed", 7)

    shard_set = open_set(str(tmp_path / "set"))
    expected_method = {"name": "steer", "walks_sha256": sha256_file(walks), "walks_method": "fit",
                       "directions": NAMES, "ranges": RANGES}
    assert shard_set.manifest["view_method"] == expected_method
    directions = torch.load(walks, weights_only=True)["directions"].double().numpy()
    for group in shard_set:
        assert group.meta["view_method"] == expected_method
        alphas = group.meta["alphas"]
        assert len(alphas) == 4 and alphas[0] == dict.fromkeys(NAMES, 0.0)
        for view in range(1, 4):
            amounts = np.array([alphas[view][name] for name in NAMES])
            assert all(low <= amount <= high for amount, (low, high) in zip(amounts, RANGES))
            moved = group.latents[0].astype(np.float64) + amounts @ directions
            np.testing.assert_allclose(group.latents[view], moved, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(group.latents, sample_latents(
            7, group.anchor, 8, ViewSpec("steer", 4, 0.2, 1.0, steering=steering_of(walks))))


def test_gaussian_plus_steer_views_are_the_gaussian_views_moved_along_the_walks(tmp_path, walks):
    generate(tmp_path / "both", "--view-method", "gaussian+steer", "--walks", walks, "--n-anchors", 6,
             "--sigma", 0.3, "--seed", 2)
    generate(tmp_path / "gaussian", "--n-anchors", 6, "--sigma", 0.3, "--seed", 2)

    both, gaussian = open_set(str(tmp_path / "both")), groups_by_anchor(tmp_path / "gaussian")
    assert both.manifest["view_method"]["name"] == "gaussian+steer"
    assert both.manifest["view_method"]["sigma"] == 0.3
    steering = steering_of(walks)
    for group in both:
        plain = np.frombuffer(gaussian[group.anchor][1], dtype=np.float32).reshape(4, 8)
        offsets = np.stack([steering.offset(np.array([view[name] for name in NAMES]))
                            for view in group.meta["alphas"]])
        np.testing.assert_allclose(group.latents, plain + offsets, rtol=0, atol=1e-5)
        assert np.array_equal(group.latents[0], plain[0])


@pytest.mark.parametrize("method", ["steer", "gaussian+steer"])
def test_steered_sets_do_not_depend_on_batches_shards_tasks_or_a_resume(tmp_path, walks, method):
    # The steered copies of tests/generate/test_job.py's batch-size, job-array and resume tests: the
    # walks add their own random draws per group, which must stay as independent of the run as the rest.
    recipe = ["--view-method", method, "--walks", walks, "--n-anchors", 23, "--views", 3, "--seed", 5]
    common = [*recipe, "--groups-per-shard", 6, "--batch-size", 13]
    generate(tmp_path / "single", *common)
    generate(tmp_path / "regrouped", *recipe, "--groups-per-shard", 10, "--batch-size", 4)
    groups = groups_by_anchor(tmp_path / "single")
    assert sorted(groups) == list(range(23)) and groups_by_anchor(tmp_path / "regrouped") == groups

    generate(tmp_path / "array", *common, "--num-shards", 2, "--shard-index", 1)
    assert not (tmp_path / "array" / "manifest.json").exists()
    generate(tmp_path / "array", *common, "--num-shards", 2, "--shard-index", 0)
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")

    generate(tmp_path / "resumed", *common)
    for name in ("manifest.json", "shard-000002.json", "shard-000001.json"):  # as a crash leaves it
        os.remove(tmp_path / "resumed" / name)
    (tmp_path / "resumed" / "shard-000001.tar").write_bytes(b"half a shard")
    generate(tmp_path / "resumed", *common)
    assert tree_digest(tmp_path / "resumed") == tree_digest(tmp_path / "single")


def test_steer_range_and_directions_choose_what_the_views_use(tmp_path, walks):
    generate(tmp_path / "set", "--view-method", "steer", "--walks", walks, "--n-anchors", 8,
             "--steer-directions", "shiftx,color", "--steer-range", "shiftx=0.1:0.2",
             "--steer-range", "color=-0.05:0")

    shard_set = open_set(str(tmp_path / "set"))
    method = shard_set.manifest["view_method"]
    assert method["directions"] == ["color.red", "color.green", "color.blue", "shiftx"]
    assert method["ranges"] == [[-0.05, 0.0]] * 3 + [[0.1, 0.2]]
    for group in shard_set:
        for view in group.meta["alphas"][1:]:
            assert sorted(view) == sorted(method["directions"])
            assert 0.1 <= view["shiftx"] <= 0.2 and -0.05 <= view["color.red"] <= 0.0


def old_sample_latents(seed: int, anchor: int, latent_dim: int, spec: ViewSpec) -> np.ndarray:
    """The sampler as it was before steered views, kept to prove existing sets unchanged."""
    rng = np.random.default_rng([seed, anchor])
    anchor_latent = spec.truncation * truncated_normal(rng, latent_dim)
    rows = [anchor_latent]
    for _ in range(spec.views - 1):
        if spec.method == "gaussian":
            view = anchor_latent + spec.sigma * truncated_normal(rng, latent_dim)
            rows.append(view / math.sqrt(1.0 + spec.sigma ** 2) if spec.preserve_norm else view)
        else:
            rows.append(spec.truncation * truncated_normal(rng, latent_dim))
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("spec", [ViewSpec("gaussian", 4, 0.2, 1.0), ViewSpec("gaussian", 3, 1.0, 0.7, True),
                                  ViewSpec("independent", 5, 0.2, 0.5), ViewSpec("none", 1, 0.2, 1.0)],
                         ids=["gaussian", "preserve-norm", "independent", "none"])
def test_unsteered_views_are_drawn_exactly_as_before(spec):
    for anchor in range(20):
        latents, alphas = sample_group(3, anchor, 16, spec)
        assert alphas is None
        np.testing.assert_array_equal(latents, old_sample_latents(3, anchor, 16, spec))
    assert spec.as_manifest() == {"gaussian": {"name": "gaussian", "sigma": spec.sigma},
                                  "independent": {"name": "independent"}, "none": {"name": "none"}
                                  }[spec.method] | ({"preserve_norm": True} if spec.preserve_norm else {})


class Payload:
    """Unpickling this would create a file: proof that a walk file was not unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def other_weights(document: dict) -> dict:
    return {**document, "generator": {**document["generator"], "weights_sha256": "f00d" * 16}}


def inverted_range(document: dict) -> dict:
    return {**document, "ranges": [[0.25, -0.25]] + document["ranges"][1:]}


BAD_WALKS = {  # name: (walk file bytes or None for none, extra flags, fragment of the sentence)
    "missing walk file": (None, [], "does not exist"),
    "not a torch file": (b"these are not walks", [], "Cannot read the walk file"),
    "a pickled object": (pickle.dumps(Payload(Path("/tmp/genviews-walk-unpickled")), protocol=2), [],
                         "Cannot read the walk file"),
    "a tensor, not a dict": (saved(torch.zeros(3, 8)), [], "is not a walk file"),
    "a dict of other tensors": (saved({"weights": torch.zeros(3)}), [], "is not a walk file"),
    "directions not a tensor": (saved({**walk_document(), "directions": [[0.0] * 8] * 5}), [],
                                "no float32 tensor of directions"),
    "walks of another generator": (saved(walk_document("deadleaves", None, 128)), [],
                                   "fitted on generator 'deadleaves'"),
    "walks of other weights": (saved(other_weights(walk_document())), [], "weights sha256 f00df00df00d"),
    "inverted range in the file": (saved(inverted_range(walk_document())), [], "is inverted"),
    "inverted --steer-range": (saved(walk_document()), ["--steer-range", "zoom=0.5:-0.5"], "is inverted"),
    "empty --steer-range": (saved(walk_document()), ["--steer-range", "zoom=0.3:0.3"], "is empty"),
    "unknown direction in --steer-range": (saved(walk_document()), ["--steer-range", "blur=0:1"],
                                           "'blur', which is not one of the directions"),
    "unknown --steer-directions": (saved(walk_document()), ["--steer-directions", "zoom,tilt"], "'tilt'"),
}


@pytest.mark.parametrize("case", sorted(BAD_WALKS))
def test_a_walk_file_that_cannot_be_used_is_refused_in_one_sentence(tmp_path, case):
    content, flags, fragment = BAD_WALKS[case]
    path = tmp_path / "walks.pt"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(generate_main, ["--generator", BLOB, "--view-method", "steer",
                                                "--walks", str(path), "--n-anchors", 4, *flags,
                                                "--out", str(tmp_path / "set"), "--no-progress"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "set").exists()
    assert not Path("/tmp/genviews-walk-unpickled").exists()


@pytest.mark.parametrize("flags, fragment", [
    (["--view-method", "steer"], "give --walks FILE"),
    (["--view-method", "gaussian+steer"], "give --walks FILE"),
    (["--view-method", "gaussian", "--walks", "WALKS"], "it needs --view-method steer or gaussian+steer"),
    (["--view-method", "independent", "--walks", "WALKS"], "it needs --view-method steer"),
    (["--view-method", "steer", "--steer-range", "zoom=0:1"], "give it"),
    (["--view-method", "steer", "--walks", "WALKS", "--views", "1"], "--views 2 or more"),
    (["--view-method", "steer", "--walks", "WALKS", "--preserve-norm"], "--preserve-norm rescales"),
], ids=["steer without walks", "gaussian+steer without walks", "walks with gaussian",
        "walks with independent", "range without walks", "one view", "preserve-norm with steer"])
def test_steering_settings_that_do_not_fit_together_are_refused(tmp_path, walks, flags, fragment):
    flags = [str(walks) if flag == "WALKS" else flag for flag in flags]
    result = CliRunner().invoke(generate_main, ["--generator", BLOB, "--n-anchors", 4, *flags,
                                                "--out", str(tmp_path / "set"), "--no-progress"])
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert not (tmp_path / "set").exists()
