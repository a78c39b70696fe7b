"""``python -m generate --like``: a set rendered again from its manifest alone, byte for byte."""

from __future__ import annotations

import json

import pytest
import torch

from generate.cli import main as generate_main
from generate.generators.cgan import WEIGHTS_FILE
from generate.walks import save_walks
from shards.cli import cli as shards_cli
from tests.cli import assert_clean_failure, run_in_process, tree_digest
from tests.generate.test_job import generate
from tests.generate.test_steer_views import BLOB, walk_document
from tests.generate.test_views_are_renders import random_cgan

SMALL = ["--n-anchors", 6, "--views", 2, "--sigma", 0.5, "--truncation", 0.7, "--image-size", 16,
         "--groups-per-shard", 2, "--seed", 3]


def shard_files(digest: dict[str, str]) -> dict[str, str]:
    """Shards and records: the files that regeneration must reproduce byte for byte."""
    return {name: sha for name, sha in digest.items() if name.startswith("shard-")}


@pytest.mark.parametrize("name", ["deadleaves", "cgan", "biggan-deep-128"])
def test_a_set_rendered_from_its_manifest_has_the_same_bytes(name, tmp_path, tiny_biggan_weights):
    weights = {"deadleaves": None, "cgan": random_cgan(tmp_path / "cgan"), "biggan-deep-128": tiny_biggan_weights}[name]
    weights_flag = ["--weights", weights] if weights else []
    generate(tmp_path / "set", "--generator", name, *weights_flag, *SMALL)
    generate(tmp_path / "again", "--like", tmp_path / "set", *weights_flag)
    original = shard_files(tree_digest(tmp_path / "set"))
    assert len(original) == 6 and shard_files(tree_digest(tmp_path / "again")) == original
    # Some shards only, from the manifest file itself.
    generate(tmp_path / "some", "--like", tmp_path / "set" / "manifest.json", *weights_flag, "--shards", "0,2")
    some = tree_digest(tmp_path / "some")
    assert "manifest.json" not in some
    assert some == {name: original[name] for name in some} and len(some) == 4


def test_other_weights_are_refused_naming_both_hashes(tmp_path):
    weights = random_cgan(tmp_path / "cgan")
    generate(tmp_path / "set", "--generator", "cgan", "--weights", weights, *SMALL)
    recorded = json.loads((tmp_path / "set" / "manifest.json").read_text())["generator"]["weights_sha256"]
    state = torch.load(weights / WEIGHTS_FILE, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, weights / WEIGHTS_FILE)
    result = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "set", "--weights",
                            weights, "--out", tmp_path / "again", "--no-progress")
    assert_clean_failure(result, f"made with weights of sha256 {recorded}", "have sha256 ")
    assert not (tmp_path / "again").exists()


def test_like_refuses_content_flags_and_foreign_manifests(tmp_path):
    generate(tmp_path / "set", *SMALL)
    given = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "set", "--seed", 4,
                           "--out", tmp_path / "again")
    assert_clean_failure(given, "drop --seed")
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    (tmp_path / "v2.json").write_text(json.dumps({**manifest, "version": 2}))
    newer = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "v2.json",
                           "--out", tmp_path / "again")
    assert_clean_failure(newer, "format version 2")
    outside = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "set", "--shards", "1,3",
                             "--out", tmp_path / "again")
    assert_clean_failure(outside, "--shards names shard 3")
    assert run_in_process(shards_cli, "python -m shards", "subset", tmp_path / "set", tmp_path / "some",
                          "--groups", 2).returncode == 0
    derived = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "some", "--out", tmp_path / "again")
    assert_clean_failure(derived, "was derived (python -m shards subset) from the 1 set(s)", "0 --parent were given")
    assert not (tmp_path / "again").exists()


def test_steered_sets_need_the_walk_file_they_name(tmp_path):
    path = tmp_path / "walks.pt"
    save_walks(path, walk_document())
    steered = ["--generator", BLOB, "--view-method", "steer", "--walks", path, "--steer-directions", "zoom,shiftx",
               "--steer-range", "zoom=-0.5:0.5", "--n-anchors", 4, "--views", 3, "--groups-per-shard", 2]
    generate(tmp_path / "set", *steered)
    generate(tmp_path / "again", "--like", tmp_path / "set", "--walks", path)
    assert shard_files(tree_digest(tmp_path / "again")) == shard_files(tree_digest(tmp_path / "set"))
    recorded = json.loads((tmp_path / "set" / "manifest.json").read_text())["view_method"]["walks_sha256"]
    missing = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "set", "--out", tmp_path / "x")
    assert_clean_failure(missing, f"walks of a file with sha256 {recorded}", "--walks FILE")
    save_walks(tmp_path / "other.pt", {**walk_document(), "ranges": [[-0.5, 0.5]] * 5})
    other = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "set", "--walks",
                           tmp_path / "other.pt", "--out", tmp_path / "x")
    assert_clean_failure(other, "other.pt has sha256", f"made with walks of sha256 {recorded}")
    assert not (tmp_path / "x").exists()


def test_a_derived_set_is_rendered_again_through_its_parents(tmp_path):
    generate(tmp_path / "a", *SMALL)
    generate(tmp_path / "b", *SMALL[:-1], 4)  # another seed
    shards = lambda *args: run_in_process(shards_cli, "python -m shards", *args)  # noqa: E731
    assert shards("subset", tmp_path / "a", tmp_path / "some", "--classes", "0,1,2,3").returncode == 0
    assert shards("merge", tmp_path / "a", tmp_path / "b", tmp_path / "both", "--groups-per-shard", 5).returncode == 0
    assert shards("hollow", tmp_path / "a", tmp_path / "a-hollow").returncode == 0
    generate(tmp_path / "some-again", "--like", tmp_path / "some", "--parent", tmp_path / "a-hollow")
    generate(tmp_path / "both-again", "--like", tmp_path / "both", "--parent", tmp_path / "a-hollow",
             "--parent", tmp_path / "b" / "manifest.json")
    for name in ("some", "both"):
        assert shard_files(tree_digest(tmp_path / f"{name}-again")) == shard_files(tree_digest(tmp_path / name))
    assert not [path for path in tmp_path.iterdir() if "-parents-" in path.name]
    swapped = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "both", "--parent", tmp_path / "b",
                             "--parent", tmp_path / "a", "--out", tmp_path / "x")
    assert_clean_failure(swapped, f"--parent {tmp_path / 'b'} has a manifest of sha256")
    assert not (tmp_path / "x").exists()


def test_job_array_tasks_rebuild_the_set_together(tmp_path):
    generate(tmp_path / "set", *SMALL)
    for task in range(2):
        generate(tmp_path / "again", "--like", tmp_path / "set", "--shard-index", task, "--num-shards", 2)
    assert shard_files(tree_digest(tmp_path / "again")) == shard_files(tree_digest(tmp_path / "set"))
