"""The one set writer under faults: a kill at every step of the commit protocol, two writers on one
folder, stale and live temporary files. Every case ends in the set an uninterrupted run writes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.files import AtomicFile, TEMP_SUFFIX, being_written, remove_stale_temporaries
from shards import SetWriter
from shards.set_writer import WAIT_POLL_SECONDS
from tests.cli import cli_env, run_module, tree_digest
from tests.shards.helpers import synthetic_group, synthetic_recipe, write_photo

GENERATE = ["--n-anchors", 12, "--views", 2, "--groups-per-shard", 3, "--image-size", 16,
            "--batch-size", 4, "--out", "set", "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("whole")
    assert run_module("generate", *GENERATE, cwd=folder).returncode == 0
    return tree_digest(folder / "set")


def killed_run(cwd: Path, pattern: str, when: str, nth: int, module: str, *args: object) -> None:
    result = subprocess.run([sys.executable, "-m", "tests.shards.kill_at", pattern, when, str(nth), module,
                             *map(str, args)], cwd=cwd, env=cli_env(), capture_output=True, timeout=180)
    assert result.returncode == -9, result.stderr.decode()


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX))


# (final names the kill waits for, before or after the rename, which one, what the kill leaves)
KILL_POINTS = {
    "temporary tar written": ("shard-*.tar", "before", 2, "shard-000001.tar."),
    "tar renamed, no record": ("shard-*.json", "before", 2, "shard-000001.json."),
    "record written": ("shard-*.json", "after", 2, None),
    "inside the manifest write": ("manifest.json", "before", 1, "manifest.json."),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_kill_at_every_step_then_a_rerun_gives_the_uninterrupted_set(tmp_path, uninterrupted, point):
    pattern, when, nth, left_behind = KILL_POINTS[point]
    killed_run(tmp_path, pattern, when, nth, "generate", *GENERATE)
    if left_behind:
        assert any(name.startswith(left_behind) for name in temporaries(tmp_path / "set"))
    assert not (tmp_path / "set" / "manifest.json").exists()

    rerun = run_module("generate", *GENERATE, cwd=tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    assert temporaries(tmp_path / "set") == []
    assert tree_digest(tmp_path / "set") == uninterrupted


def test_a_kill_inside_the_ingest_manifest_write_is_cleaned_by_the_rerun(tmp_path):
    for run in ("killed", "whole"):
        for index, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)]):
            write_photo(tmp_path / run / "photos" / f"class{index % 2}" / f"{index}.png", colour, (20, 20))
    ingest = ["shards", "ingest", "photos", "set", "--image-size", 16, "--groups-per-shard", 2]
    killed_run(tmp_path / "killed", "manifest.json", "before", 1, *ingest)
    assert any(name.startswith("manifest.json.") for name in temporaries(tmp_path / "killed" / "set"))

    assert run_module(*ingest, cwd=tmp_path / "killed").returncode == 0
    assert temporaries(tmp_path / "killed" / "set") == []
    assert run_module(*ingest, cwd=tmp_path / "whole").returncode == 0
    assert tree_digest(tmp_path / "killed" / "set") == tree_digest(tmp_path / "whole" / "set")


def test_two_generate_processes_on_one_folder_end_with_the_uninterrupted_set(tmp_path):
    args = [*GENERATE[:-3], "--n-anchors", 60, "--out", "set", "--no-progress"]
    runs = [subprocess.Popen([sys.executable, "-m", "generate", *map(str, args)], cwd=tmp_path, env=cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    (tmp_path / "alone").mkdir()
    assert run_module("generate", *args, cwd=tmp_path / "alone").returncode == 0
    assert temporaries(tmp_path / "set") == []
    assert tree_digest(tmp_path / "set") == tree_digest(tmp_path / "alone" / "set")


def test_a_shard_a_live_writer_holds_is_skipped_and_waited_for(tmp_path):
    recipe = synthetic_recipe(groups=4, views=2, latent_dim=4, groups_per_shard=2)
    first, second = SetWriter(tmp_path, recipe), SetWriter(tmp_path, recipe)
    shard = first.claim(0)
    assert being_written(tmp_path, "shard-000000.tar")
    assert second.claim(0) is None  # the other writer's temporary file is live: leave it
    remove_stale_temporaries(tmp_path)
    assert len(temporaries(tmp_path)) == 1  # a live file is never cleaned away
    # flock conflicts between two opens of one file in one process too, so a thread is a fair stand-in
    # for a second process: it waits while this thread still holds shard 0.
    left: list[list[int]] = []
    waiter = threading.Thread(target=lambda: left.append(second.wait_for([0])))
    with shard:  # leaving it uncommitted (a failed assert) frees the waiter
        for anchor in first.spans[0]:
            shard.add(synthetic_group(anchor, views=2, latent_dim=4))
        waiter.start()
        # Half a poll past its first check, so the commit lands inside the waiter's sleep: a check
        # between the tar's rename and its record's would see neither a live writer nor a commit.
        waiter.join(timeout=0.5 * WAIT_POLL_SECONDS)
        assert waiter.is_alive() and left == [], "wait_for returned while the other writer held shard 0"
        shard.commit()
    waiter.join(timeout=60)
    assert left == [[]]  # it woke to the other writer's commit: nothing left to write
    assert second.missing() == [1]


def test_a_waiter_that_looks_between_the_shards_rename_and_its_records_sees_a_live_writer(tmp_path, monkeypatch):
    recipe = synthetic_recipe(groups=2, views=2, latent_dim=4, groups_per_shard=2)
    first, second = SetWriter(tmp_path, recipe), SetWriter(tmp_path, recipe)
    left: list[list[int]] = []
    waiters: list[threading.Thread] = []
    rename = os.replace

    def rename_then_look(source: str, target: str) -> None:
        rename(source, target)
        if Path(target).name == "shard-000000.tar":  # the shard is there, its record not yet
            assert second.claim(0) is None
            waiters.append(threading.Thread(target=lambda: left.append(second.wait_for([0]))))
            waiters[0].start()
            waiters[0].join(timeout=0.5 * WAIT_POLL_SECONDS)
            assert left == [], "wait_for took a shard whose record was on its way for one whose writer died"

    monkeypatch.setattr(os, "replace", rename_then_look)
    with first.claim(0) as shard:
        for anchor in first.spans[0]:
            shard.add(synthetic_group(anchor, views=2, latent_dim=4))
        shard.commit()
    waiters[0].join(timeout=60)
    assert left == [[]] and first.is_committed(0)


def test_a_dead_writers_temporary_file_is_stale_and_its_shard_is_free(tmp_path):
    recipe = synthetic_recipe(groups=2, views=2, latent_dim=4, groups_per_shard=2)
    writer = SetWriter(tmp_path, recipe)
    abandoned = writer.claim(0)
    abandoned._file._handle.close()  # what a killed process leaves: the file, without its lock
    assert not being_written(tmp_path, "shard-000000.tar")
    assert writer.wait_for([0]) == [0]
    assert [path.name for path in remove_stale_temporaries(tmp_path)] == [abandoned._file.temp_path.name]


def test_an_atomic_file_left_without_commit_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):  # the caller's own error, not one of the file's
        with AtomicFile(tmp_path / "result.json") as file:
            file.write(b"{")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
