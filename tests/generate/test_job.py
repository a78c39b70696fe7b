"""The batch job end to end: determinism, resume after kill -9, parallel writers, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from generate.cli import CountType, main as generate_main
from generate.generators import GeneratorOptions, make_generator
from generate.job import JobConfig, build_recipe
from generate.sampling import ViewSpec, sample_latents
from shards import SetWriter, open_set
from tests.cli import PLUGIN, assert_clean_failure, cli_env, run_module, tree_digest

CONDITIONAL = f"{PLUGIN}:make_conditional"
UNCONDITIONAL = f"{PLUGIN}:make_unconditional"


def generate(out: Path, *args: object) -> None:
    """Run ``python -m generate`` in this process (fast) and require success."""
    result = CliRunner().invoke(generate_main, ["--out", str(out), "--no-progress", *map(str, args)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def groups_by_anchor(location: Path) -> dict[int, tuple]:
    return {group.anchor: (group.views, group.latents.tobytes(), group.label, group.meta)
            for group in open_set(str(location))}


def test_groups_do_not_depend_on_batch_or_shard_size(tmp_path):
    common = ["--generator", CONDITIONAL, "--n-anchors", 37, "--views", 3, "--seed", 5]
    generate(tmp_path / "a", *common, "--batch-size", 4, "--groups-per-shard", 10)
    generate(tmp_path / "b", *common, "--batch-size", 17, "--groups-per-shard", 6)
    a, b = groups_by_anchor(tmp_path / "a"), groups_by_anchor(tmp_path / "b")
    assert sorted(a) == list(range(37))
    assert a == b


def test_latents_views_and_classes_follow_the_recipe(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 40, "--views", 4,
             "--sigma", 0.3, "--truncation", 0.8, "--seed", 2, "--classes", "1,3,4")
    shard_set = open_set(str(tmp_path / "set"))
    spec = ViewSpec(method="gaussian", views=4, sigma=0.3, truncation=0.8)
    counts = Counter()
    for group in shard_set:
        np.testing.assert_array_equal(group.latents, sample_latents(2, group.anchor, 16, spec))
        offsets = group.latents[1:] - group.latents[0]
        assert 0 < np.abs(offsets).max() <= 0.3 * 2 + 1e-6  # truncated at two sigma
        assert group.meta == {"anchor": group.anchor, "class": group.label, "truncation": 0.8,
                              "view_method": {"name": "gaussian", "sigma": 0.3}}
        counts[group.label] += 1
    assert set(counts) == {1, 3, 4} and max(counts.values()) - min(counts.values()) <= 1
    manifest = shard_set.manifest
    assert manifest["class_subset"] == [1, 3, 4]
    assert manifest["view_method"] == {"name": "gaussian", "sigma": 0.3}
    assert manifest["generator"]["name"] == CONDITIONAL
    assert [row["groups"] for row in manifest["shards"]] == [40]


def test_norm_preserving_views_stay_on_the_prior_shell_and_are_recorded(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 64, "--views", 3,
             "--sigma", 1.0, "--preserve-norm", "--seed", 4)
    shard_set = open_set(str(tmp_path / "set"))
    assert shard_set.manifest["view_method"] == {"name": "gaussian", "sigma": 1.0, "preserve_norm": True}
    latents = np.stack([group.latents for group in shard_set])  # [groups, views, 16]
    spec = ViewSpec(method="gaussian", views=3, sigma=1.0, truncation=1.0, preserve_norm=True)
    np.testing.assert_array_equal(latents[5], sample_latents(4, 5, 16, spec))
    plain = np.stack([sample_latents(4, anchor, 16, ViewSpec("gaussian", 3, 1.0, 1.0)) for anchor in range(64)])
    np.testing.assert_array_equal(latents[:, 0], plain[:, 0])  # the anchor itself is untouched
    norms = np.linalg.norm(latents, axis=-1).mean(axis=0)
    plain_norms = np.linalg.norm(plain, axis=-1).mean(axis=0)
    assert abs(norms[1] / norms[0] - 1) < 0.1  # the views keep the anchors' norm ...
    assert plain_norms[1] / plain_norms[0] > 1.3  # ... where plain views at sigma 1 drift outwards


def test_unconditional_generator_writes_no_classes(tmp_path):
    generate(tmp_path / "set", "--generator", UNCONDITIONAL, "--n-anchors", 5, "--views", 2)
    shard_set = open_set(str(tmp_path / "set"))
    assert shard_set.num_classes == 0
    assert all(group.label is None for group in shard_set)
    with open(shard_set.urls[0], "rb") as shard:
        assert b".cls" not in shard.read()


def test_view_method_none_makes_single_images(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 6, "--view-method", "none")
    shard_set = open_set(str(tmp_path / "set"))
    assert shard_set.views == 1 and all(len(group.views) == 1 for group in shard_set)


def test_rerun_of_a_complete_set_changes_nothing(tmp_path):
    args = ["--generator", CONDITIONAL, "--n-anchors", 12, "--groups-per-shard", 5]
    generate(tmp_path / "set", *args)
    before = tree_digest(tmp_path / "set")
    generate(tmp_path / "set", *args)
    assert tree_digest(tmp_path / "set") == before


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, "the job ended before it could be interrupted"
        assert time.monotonic() < deadline, "the job never reached the point to interrupt"
        time.sleep(0.01)


def test_kill_9_then_rerun_gives_the_uninterrupted_set(tmp_path):
    args = ["--n-anchors", 400, "--views", 2, "--groups-per-shard", 20, "--batch-size", 8,
            "--image-size", 64, "--out", "set", "--no-progress"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    whole = run_module("generate", *args, cwd=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    command = [sys.executable, "-m", "generate", *map(str, args)]
    process = subprocess.Popen(command, cwd=tmp_path / "killed", env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_set = tmp_path / "killed" / "set"
    _wait_for(lambda: (killed_set / "shard-000002.json").exists(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed_set / "manifest.json").exists(), "killed too late to test a resume"

    resumed = run_module("generate", *args, cwd=tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert tree_digest(killed_set) == tree_digest(tmp_path / "whole" / "set")


def test_torchrun_two_processes_match_one_process(tmp_path):
    args = ["--generator", CONDITIONAL, "--n-anchors", 50, "--groups-per-shard", 8, "--out", "set",
            "--no-progress"]
    for folder in ("single", "ranks"):
        (tmp_path / folder).mkdir()
    assert run_module("generate", *args, cwd=tmp_path / "single").returncode == 0
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc-per-node", "2", "-m", "generate", *map(str, args)],
                           cwd=tmp_path / "ranks", env=cli_env(), capture_output=True, text=True,
                           timeout=180)
    assert ranks.returncode == 0, ranks.stderr
    assert tree_digest(tmp_path / "ranks" / "set") == tree_digest(tmp_path / "single" / "set")


def test_job_array_tasks_complete_the_set_together(tmp_path):
    args = ["--generator", CONDITIONAL, "--n-anchors", 30, "--groups-per-shard", 7, "--num-shards", 2]
    generate(tmp_path / "array", *args, "--shard-index", 1)
    assert not (tmp_path / "array" / "manifest.json").exists()
    generate(tmp_path / "array", *args, "--shard-index", 0)
    generate(tmp_path / "single", *args[:-2])
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")


BAD_INPUT = {
    "unknown generator": (["--generator", "stylegan9"], "Unknown generator"),
    "broken plug-in": (["--generator", f"{PLUGIN}:make_broken"], "latent_dim"),
    "missing plug-in": (["--generator", "no_such_module:make"], "Cannot load generator"),
    "plug-in without module": (["--generator", ":make"], "Cannot load generator"),
    "plug-in factory fails": (["--generator", f"{PLUGIN}:make_failing"], "weights server unreachable"),
    "plug-in returns floats": (["--generator", f"{PLUGIN}:make_float_images"], "uint8"),
    "plug-in returns meta tensors": (["--generator", f"{PLUGIN}:make_meta_images"], "meta device"),
    "plug-in fails while rendering": (["--generator", f"{PLUGIN}:make_raising"], "failed while rendering"),
    "plug-in latent_dim 0": (["--generator", f"{PLUGIN}:make_no_latent"], "latent_dim of at least 1"),
    "plug-in negative classes": (["--generator", f"{PLUGIN}:make_negative_classes"], "num_classes"),
    "plug-in resolution 0": (["--generator", f"{PLUGIN}:make_zero_resolution"], "resolution"),
    "plug-in bool latent_dim": (["--generator", f"{PLUGIN}:make_bool_latent"], "not True"),
    "weights for deadleaves": (["--generator", "deadleaves", "--weights", "/tmp"], "takes no weights"),
    "unknown view method": (["--view-method", "rotate"], "rotate"),
    "zero anchors": (["--n-anchors", "0"], "positive whole count"),
    "negative anchors": (["--n-anchors", "-5"], "positive whole count"),
    "bad suffix": (["--n-anchors", "1.3X"], "positive whole count"),
    "fractional count": (["--n-anchors", "1.2345k"], "positive whole count"),
    "one view with gaussian": (["--views", "1"], "--views 2 or more"),
    "negative sigma": (["--sigma", "-0.1"], "--sigma"),
    "sigma nan": (["--sigma", "nan"], "--sigma must be a finite"),
    "truncation inf": (["--truncation", "inf"], "--truncation must be a finite"),
    "classes out of range": (["--generator", CONDITIONAL, "--classes", "2,9"], "outside"),
    "classes on unconditional": (["--generator", UNCONDITIONAL, "--classes", "1"], "unconditional"),
    "independent on unconditional": (["--generator", UNCONDITIONAL, "--view-method", "independent"],
                                     "class-conditional"),
    "shard index past count": (["--num-shards", "2", "--shard-index", "2"], "--shard-index"),
    "missing weights folder": (["--generator", "biggan-deep-128", "--weights", "/no/such/folder"],
                               "/no/such/folder"),
}


def test_a_plugin_receives_weights_device_and_image_size(tmp_path):
    weights = tmp_path / "my-weights"
    weights.mkdir()
    (weights / "classes.json").write_text(json.dumps(["cat", "dog", "owl"]))
    generate(tmp_path / "set", "--generator", f"{PLUGIN}:make_from_weights", "--weights", weights,
             "--device", "cpu", "--image-size", 24, "--n-anchors", 6)
    shard_set = open_set(str(tmp_path / "set"))
    assert shard_set.class_names == ["cat", "dog", "owl"]
    assert shard_set.manifest["generator"]["weights_sha256"] == "from-my-weights"
    assert shard_set.manifest["generator"]["resolution"] == 24 == shard_set.image_size


def refuse(*args: object) -> str:
    """Run ``python -m generate`` in this process, require a clean refusal and return its output."""
    result = CliRunner().invoke(generate_main, [*map(str, args), "--no-progress"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_one_sentence(tmp_path, case):
    flags, fragment = BAD_INPUT[case]
    settings = {"--n-anchors": "4", "--generator": CONDITIONAL, **dict(zip(flags[::2], flags[1::2]))}
    output = refuse(*[item for pair in settings.items() for item in pair], "--out", tmp_path / "set")
    assert fragment in output
    assert not (tmp_path / "set").exists() or os.listdir(tmp_path / "set") == []


def test_preserve_norm_without_gaussian_views_is_refused(tmp_path):
    output = refuse("--n-anchors", 4, "--generator", CONDITIONAL, "--view-method", "independent",
                    "--preserve-norm", "--out", tmp_path / "set")
    assert "--preserve-norm rescales gaussian views" in output and not (tmp_path / "set").exists()


def test_bad_input_from_a_shell_prints_one_line_and_no_traceback(tmp_path):
    for args in (["--n-anchors", "1.3X"], ["--n-anchors", "3", "--sigma", "-1"]):
        result = run_module("generate", *args, "--out", tmp_path / "set")
        assert_clean_failure(result)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].lower().startswith("error:") and len(lines) <= 4  # click adds a usage hint


def test_a_folder_holding_another_set_is_refused_untouched(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 8, "--seed", 1)
    before = tree_digest(tmp_path / "set")
    for other in (["--seed", "2"], ["--sigma", "0.5"], ["--generator", UNCONDITIONAL]):
        assert "different shard set" in refuse("--generator", CONDITIONAL, "--n-anchors", 8,
                                               "--seed", 1, *other, "--out", tmp_path / "set")
    assert tree_digest(tmp_path / "set") == before


def test_an_unfinished_set_of_other_settings_is_refused(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 20,
             "--groups-per-shard", 5, "--seed", 1)
    (tmp_path / "set" / "manifest.json").unlink()  # as if the job were still running
    os.remove(tmp_path / "set" / "shard-000003.json")
    before = tree_digest(tmp_path / "set")
    assert "different shard set" in refuse("--generator", CONDITIONAL, "--n-anchors", 20,
                                           "--groups-per-shard", 5, "--seed", 3,
                                           "--out", tmp_path / "set")
    assert tree_digest(tmp_path / "set") == before


def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"mine")
    assert "not part of a shard set" in refuse("--generator", CONDITIONAL, "--n-anchors", 4,
                                               "--out", tmp_path / "photos")
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"mine"
    assert sorted(os.listdir(tmp_path / "photos")) == ["holiday.jpg"]


def test_the_manifest_records_the_command_and_rows(tmp_path):
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 11, "--groups-per-shard", 4)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    rows = manifest["shards"]
    assert [(row["first_anchor"], row["last_anchor"], row["groups"]) for row in rows] == [
        (0, 3, 4), (4, 7, 4), (8, 10, 3)]
    for row in rows:
        shard = tmp_path / "set" / row["name"]
        assert row["bytes"] == shard.stat().st_size
    assert manifest["provenance"]["package"] == "genviews"


@pytest.mark.parametrize("text, count", [("2000", 2000), ("130k", 130_000), ("1.3M", 1_300_000),
                                         ("4.1M", 4_100_000), ("2.01k", 2010), ("4.03k", 4030)])
def test_anchor_counts_are_read_exactly(text, count):
    assert CountType().convert(text, None, None) == count


def test_processes_finishing_together_all_succeed_and_write_one_manifest(tmp_path):
    """Every rank that sees all records writes the manifest; simultaneous writers must not collide."""
    generate(tmp_path / "set", "--generator", CONDITIONAL, "--n-anchors", 6, "--groups-per-shard", 2)
    manifest = (tmp_path / "set" / "manifest.json").read_bytes()
    (tmp_path / "set" / "manifest.json").unlink()
    generator = make_generator(CONDITIONAL, GeneratorOptions(None, torch.device("cpu"), 1.0))
    config = JobConfig(generator=CONDITIONAL, n_anchors=6,
                       views=ViewSpec("gaussian", 4, sigma=0.2, truncation=1.0),
                       classes=list(range(5)), seed=0, image_size=32, quality=95,
                       groups_per_shard=2, batch_size=64, out=tmp_path / "set")
    recipe = build_recipe(generator, config)
    command = json.loads(manifest)["provenance"]["command"]
    with ThreadPoolExecutor(8) as pool:
        finished = list(pool.map(lambda _: SetWriter(config.out, recipe).finish(command), range(32)))
    assert all(finished)
    assert (tmp_path / "set" / "manifest.json").read_bytes() == manifest
    assert sorted(os.listdir(tmp_path / "set")) == sorted(
        [f"shard-{index:06d}.{ext}" for index in range(3) for ext in ("tar", "json")]
        + ["manifest.json", "README.md", "croissant.json"])
