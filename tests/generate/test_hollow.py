"""Hollow sets: the manifest, records and card travel; ``generate --like`` fills them where they land."""

from __future__ import annotations

import json

from generate.cli import main as generate_main
from shards.cli import cli as shards_cli
from shards.verify import verify_set
from tests.cli import assert_clean_failure, run_in_process, tree_digest
from tests.generate.test_job import generate
from tests.generate.test_like import SMALL


def shards(*args: object):
    return run_in_process(shards_cli, "python -m shards", *args)


def test_a_filled_hollow_set_is_the_original_byte_for_byte(tmp_path):
    generate(tmp_path / "set", *SMALL)
    made = shards("hollow", tmp_path / "set", tmp_path / "hollow")
    assert made.returncode == 0, made.stderr
    original, hollow = tree_digest(tmp_path / "set"), tree_digest(tmp_path / "hollow")
    assert not any(name.endswith(".tar") for name in hollow)
    assert hollow == {name: original[name] for name in hollow}
    # Filled shard by shard: a first run of some shards, then the rest.
    generate(tmp_path / "hollow", "--like", tmp_path / "hollow", "--shards", "1")
    assert (tmp_path / "hollow" / "shard-000001.tar").is_file()
    assert not (tmp_path / "hollow" / "shard-000000.tar").exists()
    generate(tmp_path / "hollow", "--like", tmp_path / "hollow")
    filled = tree_digest(tmp_path / "hollow")
    assert {name: filled[name] for name in original} == original
    assert verify_set(tmp_path / "hollow").intact


def test_a_shard_that_renders_other_bytes_is_not_kept(tmp_path):
    generate(tmp_path / "set", *SMALL)
    shards("hollow", tmp_path / "set", tmp_path / "hollow")
    manifest_path = tmp_path / "hollow" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][1]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    result = run_in_process(generate_main, "python -m generate", "--like", tmp_path / "hollow", "--out",
                            tmp_path / "hollow", "--no-progress")
    assert_clean_failure(result, "shard-000001.tar came out with sha256", "0" * 64)
    assert not (tmp_path / "hollow" / "shard-000001.tar").exists()


def test_hollow_refuses_a_folder_in_use(tmp_path):
    generate(tmp_path / "set", *SMALL)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert_clean_failure(shards("hollow", tmp_path / "set", tmp_path / "used"), "not an empty folder")
    assert sorted(path.name for path in (tmp_path / "used").iterdir()) == ["notes.txt"]


def test_a_pipe_location_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    location = f"pipe:touch {marker}"
    assert_clean_failure(shards("hollow", location, tmp_path / "hollow"), "pipe: location")
    like = run_in_process(generate_main, "python -m generate", "--like", location, "--out", tmp_path / "out")
    assert_clean_failure(like, "pipe: location")
    assert not marker.exists() and not (tmp_path / "hollow").exists()


def test_a_manifest_without_a_set_id_is_refused_before_the_folder_is_made(tmp_path):
    generate(tmp_path / "set", *SMALL)
    manifest_path = tmp_path / "set" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["set_id"]
    manifest_path.write_text(json.dumps(manifest))
    assert shards("info", tmp_path / "set").returncode == 0  # readers take it
    assert_clean_failure(shards("hollow", tmp_path / "set", tmp_path / "hollow"), "manifest has no set id")
    assert not (tmp_path / "hollow").exists()
