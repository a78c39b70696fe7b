"""``show`` (a contact sheet PNG) and ``info`` (the manifest in a few lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shards.cli import cli
from shards.contact_sheet import LABEL_WIDTH, LINE_HEIGHT, MARGIN
from shards.schema import Group
from tests.cli import assert_clean_failure, run_module
from tests.shards.helpers import (CLASSES, jpeg_bytes, synthetic_recipe, view_colour, write_set,
                                  write_synthetic_set)
from tests.shards.helpers import break_first_view, truncate_shard
from tests.shards.hostile import rehash_row


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    write_synthetic_set(tmp_path / "set", groups=6, views=3, latent_dim=4, groups_per_shard=4)
    return tmp_path / "set"


def test_show_draws_one_labelled_row_per_group_with_its_views(synthetic: Path, tmp_path: Path):
    out = tmp_path / "sheet.png"
    thumb = 24

    result = CliRunner().invoke(cli, ["show", str(synthetic), "--groups", "3", "--start", "2",
                                      "--thumb-size", str(thumb), "--out", str(out)])

    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    cell = thumb + MARGIN
    assert sheet.shape == (MARGIN + 3 * cell, LABEL_WIDTH + 3 * cell + MARGIN, 3)
    for row, anchor in enumerate((2, 3, 4)):  # rows span shards 0 and 1
        top = MARGIN + row * cell
        for view in range(3):
            centre = sheet[top + thumb // 2, LABEL_WIDTH + view * cell + thumb // 2]
            assert np.abs(centre - view_colour(anchor, view)).max() <= 10, (anchor, view, centre)
        label = sheet[top:top + thumb, :LABEL_WIDTH]
        assert (label < 128).any(), f"row {row} has no label text"


def test_show_stops_at_the_last_group_and_refuses_a_start_past_it(synthetic: Path, tmp_path: Path):
    out = tmp_path / "sheet.png"

    drawn = CliRunner().invoke(cli, ["show", str(synthetic), "--start", "4", "--out", str(out)])
    refused = CliRunner().invoke(cli, ["show", str(synthetic), "--start", "6", "--out", str(out)])

    assert drawn.exit_code == 0
    assert Image.open(out).size == (LABEL_WIDTH + 3 * (96 + MARGIN) + MARGIN, MARGIN + 2 * (96 + MARGIN))
    assert refused.exit_code == 2 and "there is no group 6" in refused.output


def test_info_prints_the_key_facts_of_a_synthetic_set(synthetic: Path):
    result = run_module("shards", "info", synthetic)

    assert result.returncode == 0, result.stderr
    for fragment in ("synthetic: 6 groups x 3 views",
                     "test-colours (latent 4, 3 classes, 32 px), truncation 0.7",
                     "gaussian (sigma=0.2)", "3: apple, banana, cherry", "jpeg quality 90, 32 px",
                     "2 (4 groups per shard)", "seed         3", "genviews 0.1.0"):
        assert fragment in result.stdout, fragment
    assert "set id" in result.stdout and "Traceback" not in result.stderr


def test_info_of_a_real_set_names_its_source_and_the_classes_present(tmp_path: Path):
    recipe = {**synthetic_recipe(groups=2, views=1, latent_dim=4, groups_per_shard=2),
              "kind": "real", "generator": None, "view_method": {"name": "none"},
              "class_subset": [0, 2], "source": "photos/", "skipped": ["a/x.txt", "b/y.jpg"]}
    groups = [Group(anchor=a, views=[jpeg_bytes((9, 9, 9))], label=2 * a, meta={}) for a in range(2)]
    write_set(tmp_path, groups, recipe)

    result = CliRunner().invoke(cli, ["info", str(tmp_path)])

    assert result.exit_code == 0
    assert "real: 2 groups x 1 views" in result.output
    assert "photos/ (2 files skipped)" in result.output
    assert f"2 of 3: {CLASSES[0]}, {CLASSES[2]}" in result.output
    assert "view method  none" in result.output


def test_info_of_a_folder_without_a_set_is_one_sentence(tmp_path: Path):
    result = CliRunner().invoke(cli, ["info", str(tmp_path)])

    assert result.exit_code == 2
    assert result.output.startswith("error: No finished shard set") and result.output.count("\n") == 1


@pytest.mark.parametrize("damage, expected", [
    (truncate_shard, "shard-000001.tar could not be read (unexpected end of data); python -m shards verify"),
    (break_first_view, "shard-000001.tar: sample 0000000004 view 0 is not a decodable JPEG"),
], ids=["truncated tar", "undecodable view"])
def test_show_of_a_damaged_shard_is_one_sentence(synthetic: Path, tmp_path: Path, damage, expected):
    damage(synthetic / "shard-000001.tar")  # groups 4 and 5
    rehash_row(synthetic, 1)  # else its changed sha256 is what show finds first

    result = run_module("shards", "show", synthetic, "--start", "3", "--out", tmp_path / "sheet.png")

    assert result.returncode == 2
    assert_clean_failure(result, expected)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "sheet.png").exists()


def test_show_labels_each_steered_view_with_its_walk_amounts(tmp_path: Path):
    directions = ["shiftx", "zoom", "rotate"]
    method = {"name": "steer", "walks_sha256": "ab" * 32, "walks_method": "fit",
              "directions": directions, "ranges": [[-0.25, 0.25], [-1.0, 1.0], [-45.0, 45.0]]}
    recipe = {**synthetic_recipe(groups=2, views=3, latent_dim=4, groups_per_shard=2), "view_method": method}
    groups = [Group(anchor=a, views=[jpeg_bytes(view_colour(a, v)) for v in range(3)],
                    latents=np.zeros((3, 4), np.float32), label=a,
                    meta={"anchor": a, "view_method": method,
                          "alphas": [dict.fromkeys(directions, 0.0),
                                     {"shiftx": 0.21, "zoom": -0.5, "rotate": 12.34},
                                     {"shiftx": -0.1, "zoom": 0.75, "rotate": -30.0}]})
              for a in range(2)]
    write_set(tmp_path / "set", groups, recipe)
    out, thumb = tmp_path / "sheet.png", 48

    result = CliRunner().invoke(cli, ["show", str(tmp_path / "set"), "--thumb-size", str(thumb),
                                      "--out", str(out)])

    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    cell, caption = thumb + MARGIN, 3 * LINE_HEIGHT
    assert sheet.shape == (MARGIN + 2 * (cell + caption), LABEL_WIDTH + 3 * cell + MARGIN, 3)
    for row in range(2):
        below = MARGIN + row * (cell + caption) + thumb
        for view in range(3):
            left = LABEL_WIDTH + view * cell
            text = sheet[below:below + caption, left:left + thumb]
            assert (text < 128).any() == (view > 0), (row, view)  # the anchor's amounts are zero
    for anchor in range(2):  # the thumbnails sit where the taller rows put them
        top = MARGIN + anchor * (cell + caption)
        centre = sheet[top + thumb // 2, LABEL_WIDTH + cell + thumb // 2]
        assert np.abs(centre - view_colour(anchor, 1)).max() <= 10
