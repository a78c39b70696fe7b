"""Results are bound to manifest hashes, so evaluate and show refuse a shard whose bytes changed while
its content still reads (same size, valid groups): they hash each shard as they stream it."""

from __future__ import annotations

from pathlib import Path

from evaluate.cli import cli as evaluate_cli
from shards.cli import cli as shards_cli
from tests.cli import run_in_process
from tests.evaluate.helpers import write_checkpoint, write_labelled_set

CHANGED = "shard-000001.tar has a sha256 that differs from the manifest (its bytes were changed)"


def change_a_label_in_place(shard: Path) -> None:
    """Group 17's metadata says class 3 instead of 2: same size, valid JSON, other bytes."""
    data = shard.read_bytes()
    assert data.count(b'"anchor":17,"class":2') == 1
    shard.write_bytes(data.replace(b'"anchor":17,"class":2', b'"anchor":17,"class":3'))


def test_evaluate_and_show_refuse_a_shard_whose_sha256_differs_from_its_row(tmp_path: Path):
    train = write_labelled_set(tmp_path / "train", groups=30, seed=1)
    val = write_labelled_set(tmp_path / "val", groups=10, seed=2)
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt")
    change_a_label_in_place(train / "shard-000001.tar")

    evaluated = run_in_process(evaluate_cli, "python -m evaluate", "knn", "--checkpoint", checkpoint,
                               "--train", train, "--val", val, "--k", 3, "--no-progress")
    shown = run_in_process(shards_cli, "python -m shards", "show", train, "--start", 16, "--groups", 2,
                           "--out", tmp_path / "sheet.png")

    for result in (evaluated, shown):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error: shard ") and result.stderr.count("\n") == 1, result.stderr
        assert CHANGED in result.stderr, result.stderr
    assert not (tmp_path / "run" / "eval").exists() and not (tmp_path / "sheet.png").exists()
