"""A full disk, for real: every command that writes (generate, ingest, the trainer's checkpoint,
``evaluate --out``, ``shards show --out``) writes onto a small tmpfs mounted for the test. Each must
stop with one sentence naming the device, leave no temporary file and nothing at a final name that
is not whole, and complete when rerun after space was freed. The failing run is a real process (its
stderr is what a user reads); the rerun, whose shell adds nothing, runs the same command in this
process. Where no tmpfs can be mounted (no root), a file-size limit (``ulimit -f``) stands in: the
writer meets the same refused write, as EFBIG."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.files import TEMP_SUFFIX, sha256_file
from evaluate.cli import cli as evaluate_cli
from generate.cli import main as generate_main
from shards.cli import cli as shards_cli
from shards.schema import shard_name
from shards.verify import verify_set
from tests.cli import REPO, assert_clean_failure, cli_env, run_in_process, run_module, tree_digest
from train.main import main as train_main
from tests.e2e.test_pipeline import write_image_folder
from tests.shards.helpers import write_photo

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


def assert_one_error_sentence(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert_clean_failure(result, *fragments)
    lines = result.stderr.strip().splitlines()  # progress bars may come before the error
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, lines


def assert_full_disk_sentence(result: subprocess.CompletedProcess, disk: SmallDisk) -> None:
    assert_one_error_sentence(result, "No space left on", str(disk.mount))


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


FILE_SIZE_LIMIT = 16 * KB  # a flat photo's shard fits in it (10 kB, one tar record), the noisy one's not


def limit_file_size() -> None:
    """Run in the child before exec: no file may grow past FILE_SIZE_LIMIT; no root needed. CPython
    ignores SIGXFSZ, so the write past it fails with EFBIG instead of killing the process."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_ingest_past_a_file_size_limit_stops_cleanly_and_a_rerun_completes(tmp_path):
    # Five flat photos and one of noise; the seed-0 order makes the noisy one anchor 2, so with one
    # group per shard two shards commit before the write that passes the limit.
    for index in range(5):
        write_photo(tmp_path / "photos" / f"class{index // 3}" / f"{index % 3}.png", (40 * index, 90, 160),
                    (96, 96))
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "photos" / "class1" / "2.png")
    out = tmp_path / "set"
    args = ["shards", "ingest", tmp_path / "photos", out, "--image-size", 96, "--groups-per-shard", 1]

    result = subprocess.run([sys.executable, "-m", *map(str, args)], env=cli_env(), capture_output=True,
                            text=True, timeout=180, preexec_fn=limit_file_size)

    committed = sorted(out.glob("shard-*.tar"))
    assert committed, "no shard committed before the limit: the noisy photo is no longer a later anchor"
    assert_one_error_sentence(result, f"File too large while writing {out / shard_name(len(committed))}",
                              "ulimit -f")
    assert leftovers(out) == [] and not (out / "manifest.json").exists()
    assert [path.name for path in committed] == [shard_name(index) for index in range(len(committed))]
    for shard in committed:  # every tar under a final name is whole: its record's size and sha256
        record = json.loads(shard.with_suffix(".json").read_text())
        assert (record["bytes"], record["sha256"]) == (shard.stat().st_size, sha256_file(shard))
    kept = tree_digest(out)

    rerun = run_in_process(shards_cli, *args)

    assert rerun.returncode == 0, rerun.stderr
    assert verify_set(out).intact and (out / "manifest.json").is_file()
    assert kept.items() <= tree_digest(out).items()  # the resumed set kept what was committed
