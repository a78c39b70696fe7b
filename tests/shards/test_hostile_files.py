"""Files of a set that are not what they seem: nested JSON, a FIFO or a link in place of a shard,
and locations that are shell commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from shards import CorruptSampleError, ShardSetError, open_set
from shards.cli import cli
from shards.manifest import read_record
from shards.verify import verify_set
from tests.cli import run_module
from tests.shards.helpers import write_synthetic_set
from tests.shards.hostile import NESTED, every_reader_refuses, replace_member
from train.sources import open_sources


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    write_synthetic_set(tmp_path / "set")
    return tmp_path / "set"


# --- nesting ---------------------------------------------------------------------------------------

def test_a_deeply_nested_manifest_is_one_sentence(small_set: Path):
    (small_set / "manifest.json").write_bytes(NESTED)

    result = CliRunner().invoke(cli, ["info", str(small_set)])

    assert result.exit_code == 2
    assert result.output == f"error: {small_set / 'manifest.json'} is nested more deeply than a reader follows.\n"


def test_deeply_nested_group_metadata_is_a_corrupt_sample(small_set: Path):
    replace_member(small_set, 0, "0000000001.json", NESTED)

    with pytest.raises(CorruptSampleError, match="sample 0000000001 has metadata nested more deeply than a reader"):
        list(open_set(str(small_set)))
    assert "sample 0000000001 has metadata nested" in verify_set(small_set).problems[0].message


def test_a_deeply_nested_shard_record_counts_as_no_record(small_set: Path):
    (small_set / "shard-000001.json").write_bytes(NESTED)

    assert read_record(small_set, 1) is None  # the writer rewrites that shard on resume
    assert read_record(small_set, 0) is not None


# --- what a shard file may be ------------------------------------------------------------------------

def test_a_fifo_named_like_a_shard_does_not_block_verify(small_set: Path):
    (small_set / "shard-000001.tar").unlink()
    os.mkfifo(small_set / "shard-000001.tar")

    result = run_module("shards", "verify", small_set, "--no-progress", timeout=180)  # a hang never ends

    assert result.returncode == 1
    assert "shard shard-000001.tar: " in result.stdout and "is not a regular file" in result.stdout
    with pytest.raises(CorruptSampleError, match="shard-000001.tar is not a regular file"):
        list(open_set(str(small_set)))


def test_a_shard_that_links_out_of_the_set_is_refused_by_every_reader(small_set: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.tar"
    (small_set / "shard-000000.tar").rename(outside)
    (small_set / "shard-000000.tar").symlink_to(outside)

    every_reader_refuses(small_set, f"is a link to {outside}, outside the set's folder")


def test_a_link_inside_the_set_folder_is_read(small_set: Path):
    (small_set / "shard-000000.tar").rename(small_set / "kept.tar")
    (small_set / "shard-000000.tar").symlink_to("kept.tar")

    assert verify_set(small_set).intact


# --- locations that run commands ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["info", "verify", "show"])
def test_a_pipe_location_is_refused_without_running_it(tmp_path: Path, command: str):
    proof = tmp_path / "ran"

    result = CliRunner().invoke(cli, [command, f"pipe:touch {proof}; echo"])

    assert result.exit_code == 2 and not proof.exists()
    assert "is a pipe: location, which would run a shell command" in result.output
    assert "--allow-pipe" in result.output and "Traceback" not in result.output


def test_allow_pipe_reads_a_set_through_a_command(small_set: Path):
    result = CliRunner().invoke(cli, ["info", "--allow-pipe", f"pipe:cat {small_set}"])

    assert result.exit_code == 0, result.output
    assert "synthetic: 6 groups x 3 views" in result.output


@pytest.mark.parametrize("location", ["file:///data/set", "ftp://host/set", "smb://host/set"])
def test_schemes_other_than_http_and_buckets_are_refused(location: str):
    with pytest.raises(ShardSetError, match="a shard set is read from a folder or an http"):
        open_set(location)


def test_the_trainers_data_sources_refuse_a_pipe_unless_allowed(small_set: Path, tmp_path: Path):
    proof = tmp_path / "ran"
    with pytest.raises(ShardSetError, match="--allow-pipe"):
        open_sources([f"pipe:touch {proof}; cat {small_set}"])
    assert not proof.exists()

    [source] = open_sources([f"pipe:cat {small_set}:0.5"], allow_pipe=True)
    assert source.weight == 0.5 and source.shard_set.groups == 6
