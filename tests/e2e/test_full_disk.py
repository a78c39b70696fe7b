"""A full disk, for real: every command that writes (generate, ingest, the trainer's checkpoint,
``evaluate --out``, ``shards show --out``) writes onto a small tmpfs mounted for the test. Each must
stop with one sentence naming the device, leave no temporary file and nothing at a final name that
is not whole, and complete when rerun after space was freed. The failing run is a real process (its
stderr is what a user reads); the rerun, whose shell adds nothing, runs the same command in this
process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.files import TEMP_SUFFIX
from evaluate.cli import cli as evaluate_cli
from generate.cli import main as generate_main
from shards.cli import cli as shards_cli
from shards.verify import verify_set
from tests.cli import REPO, assert_clean_failure, cli_env, run_in_process, run_module, tree_digest
from train.main import main as train_main
from tests.e2e.test_pipeline import write_image_folder

TRAIN = str(REPO / "train" / "main.py")
KB = 1024


class SmallDisk:
    """A tmpfs of a few hundred kB; ``fill()`` takes all its free space, ``free()`` gives it back."""

    def __init__(self, mount: Path, size_kb: int) -> None:
        self.mount = mount
        self.filler = mount / "filler"
        mount.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")

    def fill(self) -> None:
        with open(self.filler, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * KB)
            except OSError:
                pass  # the disk is full

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,size=256m", str(self.mount)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.mount)], check=True)


@pytest.fixture
def disk(tmp_path: Path):
    small = SmallDisk(tmp_path / "disk", size_kb=256)
    yield small
    small.unmount()


def assert_full_disk_sentence(result: subprocess.CompletedProcess, disk: SmallDisk) -> None:
    assert_clean_failure(result, "No space left on", str(disk.mount))
    lines = result.stderr.strip().splitlines()  # progress bars may come before the error
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, lines


SMALLEST_TRAINING = ["--epochs", 1, "--batch-size", 8, "--backbone", "convnet-small", "--workers", 0, "--no-progress"]


def train(*args: object) -> subprocess.CompletedProcess:
    """One epoch of the trainer, a real process, at the smallest useful size."""
    return subprocess.run([sys.executable, TRAIN, *map(str, [*args, *SMALLEST_TRAINING])], env=cli_env(),
                          capture_output=True, text=True, timeout=300)


def train_here(*args: object) -> subprocess.CompletedProcess:
    """The same training in this process."""
    return run_in_process(train_main, "train/main.py", *args, *SMALLEST_TRAINING)


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(f"*{TEMP_SUFFIX}")]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("labelled")
    photos = write_image_folder(root / "photos", per_class=8, seed=0)
    assert run_in_process(shards_cli, "shards", "ingest", photos, root / "set", "--image-size", 16).returncode == 0
    run = root / "run"
    trained = train_here("--data", root / "set", "--out", run)
    assert trained.returncode == 0, trained.stderr
    return {"photos": photos, "set": root / "set", "checkpoint": run / "last.pt"}


def test_generate_on_a_full_disk_stops_cleanly_and_a_rerun_completes(disk, tmp_path):
    args = ["--n-anchors", 64, "--views", 4, "--image-size", 64, "--groups-per-shard", 8,
            "--out", disk.mount / "set", "--no-progress"]
    result = run_module("generate", *args)
    assert_full_disk_sentence(result, disk)
    assert "MB needed" in result.stderr
    assert leftovers(disk.mount) == [] and not (disk.mount / "set" / "manifest.json").exists()
    for shard in (disk.mount / "set").glob("shard-*.tar"):  # whatever is there is whole and recorded
        assert shard.with_suffix(".json").is_file()

    disk.free()
    assert run_in_process(generate_main, "generate", *args).returncode == 0
    assert verify_set(disk.mount / "set").intact
    elsewhere = run_in_process(generate_main, "generate", *args[:-3], "--out", tmp_path / "elsewhere", "--no-progress")
    assert elsewhere.returncode == 0
    shards = {name: digest for name, digest in tree_digest(disk.mount / "set").items() if name.startswith("shard-")}
    assert shards.items() <= tree_digest(tmp_path / "elsewhere").items() and len(shards) == 16


def test_ingest_on_a_full_disk_stops_cleanly_and_a_rerun_completes(disk, labelled):
    args = ["shards", "ingest", labelled["photos"], disk.mount / "set", "--image-size", 64,
            "--groups-per-shard", 4]
    disk.fill()
    assert_full_disk_sentence(run_module(*args), disk)
    assert leftovers(disk.mount) == []
    disk.free()
    assert run_in_process(shards_cli, *args).returncode == 0
    assert verify_set(disk.mount / "set").intact


def test_a_checkpoint_that_does_not_fit_leaves_no_partial_file(disk, labelled):
    command = ["--data", labelled["set"], "--out", disk.mount / "run"]
    result = train(*command)
    assert_full_disk_sentence(result, disk)
    assert leftovers(disk.mount) == [] and not (disk.mount / "run" / "last.pt").exists()
    disk.free()
    rerun = train_here(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert (disk.mount / "run" / "last.pt").stat().st_size > 100 * KB


def test_evaluate_out_on_a_full_disk_stops_cleanly_and_a_rerun_completes(disk, labelled):
    args = ["evaluate", "knn", "--checkpoint", labelled["checkpoint"], "--train", labelled["set"],
            "--val", labelled["set"], "--k", 3, "--out", disk.mount / "eval"]
    disk.fill()
    assert_full_disk_sentence(run_module(*args), disk)
    assert leftovers(disk.mount) == [] and not (disk.mount / "eval" / "results.json").exists()
    disk.free()
    assert run_in_process(evaluate_cli, *args).returncode == 0
    assert (disk.mount / "eval" / "results.json").is_file()


def test_show_on_a_full_disk_leaves_no_sheet_and_a_rerun_draws_it(disk, labelled):
    args = ["shards", "show", labelled["set"], "--groups", 4, "--out", disk.mount / "sheet.png"]
    disk.fill()
    assert_full_disk_sentence(run_module(*args), disk)
    assert not (disk.mount / "sheet.png").exists() and leftovers(disk.mount) == []
    disk.free()
    assert run_in_process(shards_cli, *args).returncode == 0
    assert (disk.mount / "sheet.png").stat().st_size > 0
