"""Memory bounds checked from headers before anything is allocated: image pixels, tar member
sizes, .npy shapes and manifest counts, each refused in one sentence that names its limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shards import CorruptSampleError, ShardSetError, open_set
from shards.cli import cli
from shards.reader import decode_view
from shards.verify import verify_set
from tests.cli import assert_clean_failure, cli_env
from tests.shards.helpers import write_synthetic_set
from tests.shards.hostile import (change_manifest, every_reader_refuses, jpeg_declaring, memory_limited,
                                  npy_declaring, replace_member, replace_shard, tar_with_huge_member)

PIXELS_BOUND = "more than the limit of 16777216 pixels per image (set GENVIEWS_MAX_IMAGE_PIXELS to raise it)"
MEMBER_BOUND = "more than the limit of 268435456 bytes per file or tar member (set GENVIEWS_MAX_MEMBER_BYTES"


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    """6 groups of 3 views, latents of 8, 4 groups per shard."""
    write_synthetic_set(tmp_path / "set")
    return tmp_path / "set"


def test_a_view_declaring_30000_x_30000_pixels_is_refused_by_every_reader(small_set: Path):
    replace_member(small_set, 0, "0000000001.0.jpg", jpeg_declaring(30000, 30000))

    every_reader_refuses(small_set, "sample 0000000001 view 0 declares 30000 x 30000 pixels", PIXELS_BOUND)
    with pytest.raises(CorruptSampleError, match="declares 30000 x 30000 pixels, more than the limit"):
        decode_view(jpeg_declaring(30000, 30000))


def test_the_pixel_limit_can_be_raised_on_purpose(small_set: Path, monkeypatch):
    replace_member(small_set, 0, "0000000001.0.jpg", jpeg_declaring(5000, 5000))
    monkeypatch.setenv("GENVIEWS_MAX_IMAGE_PIXELS", str(5000 * 5000))

    assert [group.anchor for group in open_set(str(small_set))] == list(range(6))


def test_show_of_a_huge_view_stops_in_one_sentence_within_a_memory_limit(small_set: Path, tmp_path: Path):
    """5 GiB of address space holds python, torch and a contact sheet, not a 2.7 GB decoded view."""
    replace_member(small_set, 0, "0000000000.0.jpg", jpeg_declaring(30000, 30000))

    result = subprocess.run([sys.executable, "-m", "shards", "show", small_set, "--out", tmp_path / "sheet.png"],
                            env=cli_env(), capture_output=True, text=True, timeout=120,
                            preexec_fn=memory_limited(5))

    assert_clean_failure(result, "sample 0000000000 view 0 declares 30000 x 30000 pixels", PIXELS_BOUND)
    assert result.stderr.count("\n") == 1 and not (tmp_path / "sheet.png").exists()


def test_a_tar_member_declaring_2_gb_is_refused_from_its_header(small_set: Path):
    replace_shard(small_set, 0, tar_with_huge_member("0000000000.0.jpg", 2 << 30))

    every_reader_refuses(small_set, "declares 2147483648 bytes", MEMBER_BOUND)


def test_latents_whose_header_declares_a_huge_shape_are_refused_before_reading(small_set: Path):
    replace_member(small_set, 0, "0000000002.latents.npy", npy_declaring((10**12, 128)))

    with pytest.raises(CorruptSampleError, match=r"sample 0000000002 has latents float32\[1000000000000, 128\]; "
                                                 r"expected float32\[3, 8\]"):
        list(open_set(str(small_set)))
    assert "expected float32[3, 8]" in verify_set(small_set).problems[0].message


def test_latents_shorter_than_their_header_says_are_refused(small_set: Path):
    replace_member(small_set, 0, "0000000002.latents.npy", npy_declaring((3, 8)))

    with pytest.raises(CorruptSampleError, match=r"has latents of 0 bytes; float32\[3, 8\] takes 96"):
        list(open_set(str(small_set)))


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.update(views=10**9), "says each group has 1000000000 views, more than the limit of 1024 views "
                                      "per group (set GENVIEWS_MAX_VIEWS to raise it)."),
    (lambda m: m["image"].update(size=10**6), f"says its images are 1000000 x 1000000 pixels, {PIXELS_BOUND}."),
    (lambda m: m["generator"].update(latent_dim=10**8), "latents are float32[3, 100000000], more than the limit"),
    (lambda m: m.update(groups=10**10), "anchor keys have 10 digits, so a set holds at most 9999999999."),
    (lambda m: m.update(groups_per_shard=3), "lists shard-000000.tar (4 groups, "),
], ids=["views", "image size", "latent size", "groups", "groups per shard"])
def test_manifest_counts_that_are_absurd_or_disagree_with_the_rows_are_refused(small_set: Path, change, expected):
    change_manifest(small_set, change)

    result = CliRunner().invoke(cli, ["info", str(small_set)])

    assert result.exit_code == 2 and expected in result.output, result.output
    assert result.output.count("\n") == 1


def test_a_manifest_larger_than_the_file_limit_is_not_read_whole(small_set: Path, monkeypatch):
    monkeypatch.setenv("GENVIEWS_MAX_MEMBER_BYTES", "1000")

    with pytest.raises(ShardSetError, match="manifest.json holds more than the limit of 1000 bytes per file"):
        open_set(str(small_set))


def test_a_limit_set_to_nonsense_is_one_sentence(small_set: Path, monkeypatch):
    monkeypatch.setenv("GENVIEWS_MAX_VIEWS", "lots")

    result = CliRunner().invoke(cli, ["info", str(small_set)])

    assert result.exit_code == 2
    assert result.output == "error: GENVIEWS_MAX_VIEWS must be a positive whole number, not 'lots'.\n"
