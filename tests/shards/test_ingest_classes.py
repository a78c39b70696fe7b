"""``ingest --classes``: only the class folders named are ingested, and every one named must exist."""

from __future__ import annotations

from pathlib import Path

from common.imagenet import read_class_table
from shards import open_set
from tests.cli import assert_clean_failure, run_module
from tests.shards.helpers import write_photo

IMAGENET100 = sorted(wnid for _, wnid, _ in read_class_table("imagenet100"))


def write_classes(root: Path, names: list[str]) -> None:
    for number, name in enumerate(names):
        write_photo(root / name / "image.png", (number % 256, 40, 90), (12, 12))


def test_imagenet100_keeps_cmc_classes_of_an_imagenet_folder(tmp_path: Path):
    other = [wnid for _, wnid, _ in read_class_table("imagenet1k") if wnid not in IMAGENET100][:3]
    write_classes(tmp_path / "train", IMAGENET100 + other)

    result = run_module("shards", "ingest", tmp_path / "train", tmp_path / "set", "--image-size", 8,
                        "--classes", "imagenet100", "--workers", 2, "--no-progress")

    assert result.returncode == 0, result.stderr
    real = open_set(str(tmp_path / "set"))
    assert len(IMAGENET100) == 100 and real.class_names == IMAGENET100 and real.groups == 100


def test_a_list_of_folders_keeps_those_only(tmp_path: Path):
    write_classes(tmp_path / "photos", ["cat", "dog", "fox"])
    (tmp_path / "keep.txt").write_text("fox  # the one that moves\ncat\n")

    for choice in ("fox,cat", str(tmp_path / "keep.txt")):
        out = tmp_path / f"set-{len(choice)}"
        result = run_module("shards", "ingest", tmp_path / "photos", out, "--image-size", 8, "--classes", choice,
                            "--no-progress")

        assert result.returncode == 0, result.stderr
        assert open_set(str(out)).class_names == ["cat", "fox"]


def test_a_class_without_its_folder_is_refused_before_anything_is_written(tmp_path: Path):
    write_classes(tmp_path / "train", IMAGENET100[:97])

    result = run_module("shards", "ingest", tmp_path / "train", tmp_path / "set", "--image-size", 8,
                        "--classes", "imagenet100", "--no-progress")

    assert_clean_failure(result, "has no folder for 3 of the 100 classes asked for", IMAGENET100[97])
    assert not (tmp_path / "set").exists()


def test_a_class_list_that_is_no_text_is_refused_in_one_sentence(tmp_path):
    write_classes(tmp_path / "photos", ["cat", "dog"])
    (tmp_path / "binary.txt").write_bytes(b"cat\n\xff\xfe\x00dog\n")

    result = run_module("shards", "ingest", tmp_path / "photos", tmp_path / "set", "--image-size", 8,
                        "--classes", tmp_path / "binary.txt", "--no-progress")

    assert_clean_failure(result, "is not a text file of class folder names")
    assert not (tmp_path / "set").exists()
