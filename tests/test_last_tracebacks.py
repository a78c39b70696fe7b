"""What used to end in a traceback ends in one sentence: an --out inside a folder the user cannot
enter, a plug-in generator on a device the machine lacks, a file given as --checkpoint that is no
checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from evaluate.cli import cli as evaluate_cli
from generate.cli import main as generate_main
from tests.cli import PLUGIN, REPO, assert_clean_failure, run_in_process
from tests.evaluate.helpers import write_labelled_set
from tests.generate.plugin_generators import ProjectionGenerator
from tests.shards.helpers import write_photo, write_synthetic_set
from tests.shards.hostile import run_restricted


class OnCuda(ProjectionGenerator):
    """A plug-in that renders on a CUDA device no machine has (so also none without CUDA)."""

    device = torch.device("cuda", 99)


def make_on_cuda(options) -> OnCuda:
    return OnCuda(num_classes=5)


def commands_writing_into(locked: Path, tmp_path: Path) -> dict[str, list[object]]:
    """Each command that writes a folder, with --out inside ``locked``."""
    for name in ("a", "b"):
        write_photo(tmp_path / "photos" / "cat" / f"{name}.png", (200, 40, 40), (16, 16))
    write_synthetic_set(tmp_path / "set", groups=4)
    return {
        "generate": ["-m", "generate", "--generator", f"{PLUGIN}:make_conditional", "--n-anchors", 4,
                     "--no-progress", "--out", locked / "set"],
        "shards ingest": ["-m", "shards", "ingest", tmp_path / "photos", locked / "set", "--image-size", 8,
                          "--no-progress"],
        "train": [REPO / "train" / "main.py", "--data", tmp_path / "set", "--out", locked / "run", "--batch-size", 2,
                  "--steps", 1, "--backbone", "convnet-small", "--workers", 0, "--no-progress"],
    }


@pytest.mark.parametrize("command", ["generate", "shards ingest", "train"])
def test_an_out_inside_a_folder_that_cannot_be_entered_is_one_sentence(tmp_path: Path, command: str):
    locked = tmp_path / "locked"
    arguments = commands_writing_into(locked, tmp_path)[command]
    locked.mkdir(mode=0o000)
    try:
        result = run_restricted(sys.executable, *arguments)
    finally:
        locked.chmod(0o755)

    assert_clean_failure(result, f"Permission denied while looking up {locked}/", "cannot be entered")
    assert result.stderr.count("\n") == 1 and not any(locked.iterdir())


def test_a_plugin_on_a_cuda_device_the_machine_lacks_is_one_sentence(tmp_path: Path):
    spec = f"{__name__}:make_on_cuda"

    result = run_in_process(generate_main, "python -m generate", "--generator", spec, "--n-anchors", 2,
                            "--no-progress", "--out", tmp_path / "set")

    have = f"only {torch.cuda.device_count()} CUDA" if torch.cuda.is_available() else "no CUDA device"
    assert_clean_failure(result, f"Generator '{spec}' declares device cuda:99, but this machine has {have}")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "set").exists()


class Touches:
    """Unpickling it creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("content, kind", [(b"step 100: loss 4.1\n", "a text file"), (b"", "an empty file"),
                                           (bytes(range(256)), "a file of another kind")])
def test_a_file_that_is_no_checkpoint_says_what_it_is_not(tmp_path: Path, content: bytes, kind: str):
    (tmp_path / "notes.pt").write_bytes(content)
    labelled = write_labelled_set(tmp_path / "set", groups=10, seed=1)

    result = run_in_process(evaluate_cli, "python -m evaluate", "knn", "--checkpoint", tmp_path / "notes.pt",
                            "--train", labelled, "--val", labelled)

    assert result.returncode == 2 and not (tmp_path / "eval").exists()
    assert result.stderr == (f"error: {tmp_path / 'notes.pt'} is not a genviews checkpoint: it is {kind}, not the "
                             "zip archive that torch.save writes.\n")


def test_a_checkpoint_of_python_objects_is_refused_without_unpickling(tmp_path: Path):
    torch.save({"model": Touches(tmp_path / "unpickled"), "config": {}}, tmp_path / "objects.pt")
    labelled = write_labelled_set(tmp_path / "set", groups=10, seed=1)

    result = run_in_process(evaluate_cli, "python -m evaluate", "knn", "--checkpoint", tmp_path / "objects.pt",
                            "--train", labelled, "--val", labelled)

    assert result.returncode == 2 and not (tmp_path / "unpickled").exists() and not (tmp_path / "eval").exists()
    assert result.stderr == (f"error: {tmp_path / 'objects.pt'} is not a readable genviews checkpoint: it holds "
                             "Python objects that only unpickling would rebuild, and checkpoints are never "
                             "unpickled.\n")
