"""``shards verify --regenerate N``: a set's groups rendered again tell whether it is what its manifest says."""

from __future__ import annotations

import hashlib
import json
import shutil

import torch

from generate.encoding import encode_jpeg
from generate.generators import GeneratorOptions, make_generator
from generate.job import JobConfig
from generate.like import settings_of
from generate.provenance import check_group, sample_anchors
from generate.verify import main as verify_main
from shards.cli import cli as shards_cli
from shards.reader import decode_view, open_set
from tests.cli import assert_clean_failure, run_in_process, run_module
from tests.generate.test_job import generate

SET = ["--n-anchors", 12, "--views", 2, "--image-size", 16, "--groups-per-shard", 3]


def swap_in_shard(target, donor, index: int) -> None:
    """Put ``donor``'s shard ``index`` into ``target``, with a manifest row and record that match its bytes."""
    name = f"shard-{index:06d}"
    shutil.copyfile(donor / f"{name}.tar", target / f"{name}.tar")
    data = (target / f"{name}.tar").read_bytes()
    facts = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["shards"][index].update(facts)
    (target / "manifest.json").write_text(json.dumps(manifest))
    record = json.loads((target / f"{name}.json").read_text())
    (target / f"{name}.json").write_text(json.dumps({**record, **facts}))


def test_sampled_groups_are_spread_over_the_shards(tmp_path):
    generate(tmp_path / "set", *SET)
    chosen = sample_anchors(open_set(str(tmp_path / "set")), 8, seed=0)
    assert len(chosen) == 4 and sum(map(len, chosen.values())) == 8
    assert all(anchor // 3 == shard for shard, anchors in chosen.items() for anchor in anchors)
    assert chosen == sample_anchors(open_set(str(tmp_path / "set")), 8, seed=0)


def test_a_genuine_set_passes_and_a_shard_of_another_seed_is_named(tmp_path):
    generate(tmp_path / "set", *SET, "--seed", 3)
    generate(tmp_path / "other", *SET, "--seed", 4)
    genuine = run_module("shards", "verify", tmp_path / "set", "--regenerate", 8, "--no-progress")
    assert genuine.returncode == 0, genuine.stderr
    assert "8 groups rendered again match" in genuine.stdout

    shutil.copytree(tmp_path / "set", tmp_path / "forged")
    swap_in_shard(tmp_path / "forged", tmp_path / "other", 2)
    assert run_module("shards", "verify", tmp_path / "forged", "--no-progress").returncode == 0  # the format holds
    forged = run_module("shards", "verify", tmp_path / "forged", "--regenerate", 8, "--no-progress")
    assert_clean_failure(forged, "differ from", "(in shard-000002.tar)")
    assert "is intact" not in forged.stdout and "4 shards match its manifest" in forged.stdout
    named = [line for line in forged.stdout.splitlines() if line.startswith("anchor ")]
    assert named and all("(shard-000002.tar): its latents are not those of the manifest's seed" in line
                         for line in named)


def test_views_from_another_stack_pass_within_the_tolerance_and_fail_on_the_same_stack(tmp_path):
    generate(tmp_path / "set", *SET, "--seed", 3)
    shard_set = open_set(str(tmp_path / "set"))
    generator = make_generator("deadleaves", GeneratorOptions(weights=None, device=torch.device("cpu"),
                                                               truncation=1.0, resolution=16))
    settings = settings_of(shard_set.manifest, None)
    config = JobConfig(generator="deadleaves", n_anchors=12, views=settings.views, classes=settings.classes,
                       seed=3, image_size=16, quality=95, groups_per_shard=3, batch_size=8, out=tmp_path)
    group = next(iter(shard_set))
    assert check_group(generator, config, group, exact=True, tolerance=0.0, shard="s") is None
    # Another stack's rounding, imitated by one level more in every pixel of one view.
    pixels = decode_view(group.views[1]).add(1).clamp(0, 255).to(torch.uint8)
    group.views[1] = encode_jpeg(pixels, 95)
    same_stack = check_group(generator, config, group, exact=True, tolerance=0.0, shard="s")
    assert same_stack is not None and "on average" in same_stack.message
    assert check_group(generator, config, group, exact=False, tolerance=3.0, shard="s") is None
    assert check_group(generator, config, group, exact=False, tolerance=0.1, shard="s") is not None


def test_a_derived_set_is_sent_to_its_parents(tmp_path):
    generate(tmp_path / "set", *SET)
    assert run_in_process(shards_cli, "python -m shards", "subset", tmp_path / "set", tmp_path / "some",
                          "--groups", 4).returncode == 0
    result = run_in_process(verify_main, "python -m generate.verify", tmp_path / "some", "--regenerate", 2)
    assert_clean_failure(result, "was derived from other sets (python -m shards subset)")
