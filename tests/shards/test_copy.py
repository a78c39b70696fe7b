"""``python -m shards copy``: shard by shard, each shard's sha256 checked on arrival, the manifest
last, resumable after a kill; a set served over HTTP (tests/shards/faulty_server.py) as the source."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shards.cli import cli
from tests.cli import assert_clean_failure, cli_env, run_in_process, tree_digest
from tests.shards.faulty_server import FaultyServer
from tests.shards.helpers import write_synthetic_set

pytestmark = pytest.mark.usefixtures("quick_network", "bounded_case")


def copy(*args: object):
    return run_in_process(cli, "python -m shards", "copy", *args, "--no-progress")


def test_a_copy_killed_inside_a_shard_resumes_and_ends_byte_for_byte(tmp_path: Path, served_folder: Path,
                                                                      server: FaultyServer):
    server.faults["shard-000001.tar"] = "stall"  # the first run hangs there until it is killed
    out = tmp_path / "copy"
    command = [sys.executable, "-m", "shards", "copy", f"{server.url}/set", str(out), "--workers", "1",
               "--no-progress"]
    killed = subprocess.Popen(command, env={**cli_env(), "GENVIEWS_NET_TIMEOUT": "30"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not list(out.glob("shard-000001.tar.*.partial")) and killed.poll() is None:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert (out / "shard-000000.json").exists() and not (out / "manifest.json").exists()

    del server.faults["shard-000001.tar"]
    result = copy(f"{server.url}/set", out)

    assert result.returncode == 0, result.stderr
    assert "4 shards (3 copied" in result.stdout and "1 already there" in result.stdout
    assert tree_digest(out) == tree_digest(served_folder / "set")
    assert [name for name, _ in server.requests].count("shard-000000.tar") == 1  # not copied again


def test_a_shard_whose_bytes_changed_on_the_way_is_not_committed(tmp_path: Path):
    source = tmp_path / "source"
    write_synthetic_set(source, groups=8, groups_per_shard=4)
    shard = source / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))

    result = copy(source, tmp_path / "copy")

    assert_clean_failure(result, f"shard {shard} has a sha256 that differs from the manifest")
    assert sorted(path.name for path in (tmp_path / "copy").iterdir()) == ["shard-000000.json", "shard-000000.tar"]


def test_a_place_that_holds_another_set_is_refused(tmp_path: Path, served_folder: Path):
    other = tmp_path / "other"
    write_synthetic_set(other, groups=4, groups_per_shard=4)

    result = copy(served_folder / "set", other)

    assert_clean_failure(result, f"{other} holds another set (its manifest.json differs); copy into a new place.")


def test_a_server_is_not_a_place_to_copy_to(served_folder: Path):
    result = copy(served_folder / "set", "http://127.0.0.1:9/set")

    assert_clean_failure(result, "http://127.0.0.1:9/set is not a place a set can be copied to")


def test_a_set_whose_manifest_has_no_set_id_is_copied_as_it_is(tmp_path: Path):
    source = tmp_path / "source"
    write_synthetic_set(source, groups=8, groups_per_shard=4)
    manifest = json.loads((source / "manifest.json").read_text())
    del manifest["set_id"]
    (source / "manifest.json").write_text(json.dumps(manifest))

    result = copy(source, tmp_path / "copy")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy" / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()
    assert "set_id" not in json.loads((tmp_path / "copy" / "shard-000001.json").read_text())
