"""Ingest and show on hostile folders and options: link loops, unreadable class folders, sizes
past their bound and outputs that cannot be written, each one sentence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shards.cli import cli
from tests.shards.helpers import write_photo, write_synthetic_set
from tests.shards.hostile import run_restricted


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for index in range(3):
        write_photo(tmp_path / "photos" / "cat" / f"{index}.png", (200, 40, 40), (20, 16))
        write_photo(tmp_path / "photos" / "dog" / f"{index}.jpg", (40, 40, 200), (16, 20))
    return tmp_path / "photos"


def ingest(*args: object):
    return CliRunner().invoke(cli, ["ingest", *map(str, args), "--no-progress", "--workers", "1"])


def test_a_link_loop_in_the_image_folder_is_refused_not_multiplied(photos: Path, tmp_path: Path):
    (photos / "cat" / "again").symlink_to(photos / "cat")
    (photos / "dog" / "cats").symlink_to(photos / "cat")

    result = ingest(photos, tmp_path / "out", "--image-size", "8")

    assert result.exit_code == 2, result.output
    assert f"{photos / 'cat' / 'again'} leads to {photos / 'cat'} again through a link" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_link_to_a_folder_outside_is_followed_once(photos: Path, tmp_path: Path):
    write_photo(tmp_path / "more" / "extra.png", (40, 200, 40), (16, 16))
    (photos / "dog" / "more").symlink_to(tmp_path / "more")

    result = ingest(photos, tmp_path / "out", "--image-size", "8")

    assert result.exit_code == 0, result.output
    assert "7 groups of 2 classes" in result.output


def test_an_unreadable_class_folder_is_an_error_not_dropped(photos: Path, tmp_path: Path):
    (photos / "dog").chmod(0o000)
    try:
        result = run_restricted(sys.executable, "-m", "shards", "ingest", photos, tmp_path / "out",
                                "--image-size", "8", "--no-progress")
    finally:
        (photos / "dog").chmod(0o755)

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"error: {photos / 'dog'} cannot be read (Permission denied)" in result.stderr


def test_an_image_size_past_the_pixel_bound_names_the_bound(photos: Path, tmp_path: Path):
    result = ingest(photos, tmp_path / "out", "--image-size", "100000")

    assert result.exit_code == 2
    assert "--image-size 100000 makes images of 100000 x 100000 pixels, more than the limit of 16777216 pixels " \
           "per image (set GENVIEWS_MAX_IMAGE_PIXELS to raise it)." in result.output


def test_ingest_into_a_folder_under_a_file_is_one_sentence(photos: Path, tmp_path: Path):
    (tmp_path / "a-file").write_text("not a folder")

    result = ingest(photos, tmp_path / "a-file" / "out", "--image-size", "8")

    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "a-file" in result.output and (tmp_path / "a-file").read_text() == "not a folder"


def test_ingest_into_an_unwritable_folder_is_one_sentence(photos: Path, tmp_path: Path):
    (tmp_path / "locked").mkdir(mode=0o555)

    result = run_restricted(sys.executable, "-m", "shards", "ingest", photos, tmp_path / "locked" / "out",
                            "--image-size", "8", "--no-progress")

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Permission denied while writing" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("options, expected", [
    (["--thumb-size", "100000"], "The sheet would be "),
    (["--thumb-size", "1000", "--groups", "6"], "draw fewer groups or smaller thumbnails"),
])
def test_show_bounds_the_sheet_it_draws(tmp_path: Path, options: list[str], expected: str):
    write_synthetic_set(tmp_path / "set")

    result = CliRunner().invoke(cli, ["show", str(tmp_path / "set"), "--out", str(tmp_path / "s.png"), *options])

    assert result.exit_code == 2 and expected in result.output and "GENVIEWS_MAX_IMAGE_PIXELS" in result.output
    assert not (tmp_path / "s.png").exists()


def test_show_into_a_folder_under_a_file_is_one_sentence(tmp_path: Path):
    write_synthetic_set(tmp_path / "set")
    (tmp_path / "a-file").write_text("x")

    result = CliRunner().invoke(cli, ["show", str(tmp_path / "set"), "--out", str(tmp_path / "a-file" / "s.png")])

    assert result.exit_code == 2 and result.output.startswith("error: Cannot write the sheet to")
