"""``verify``: every shard's bytes, hash, groups and samples against the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shards.cli import cli
from shards.schema import MANIFEST_NAME
from shards.verify import verify_set
from tests.cli import assert_clean_failure, run_module
from tests.shards.hostile import read_members, replace_member
from tests.shards.helpers import (break_first_view, rename_anchor, synthetic_group, synthetic_recipe, truncate_shard,
                                  write_set, write_synthetic_set)


@pytest.fixture
def intact(tmp_path: Path) -> Path:
    write_synthetic_set(tmp_path / "set", groups=6, views=2, latent_dim=4, groups_per_shard=2)
    return tmp_path / "set"


def test_intact_set_passes_and_exits_0(intact: Path):
    result = run_module("shards", "verify", intact)

    assert result.returncode == 0, result.stderr
    assert "intact: 6 groups in 3 shards" in result.stdout
    assert "Traceback" not in result.stderr
    report = verify_set(intact)
    assert report.intact and (report.groups, report.shards) == (6, 3)


def test_truncated_shard_is_named_and_exits_1(intact: Path):
    shard = intact / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:1500])

    result = CliRunner().invoke(cli, ["verify", str(intact)])

    assert result.exit_code == 1, result.output
    assert "shard shard-000001.tar: is 1500 bytes" in result.output and "truncated" in result.output
    assert "shard-000000.tar" not in result.output and "shard-000002.tar" not in result.output
    assert "1 of 3 shards" in result.output


def test_shard_truncated_at_a_member_boundary_is_named(intact: Path):
    # a tar cut between members still parses as a shorter tar: only the byte count and hash tell
    shard = intact / "shard-000002.tar"
    shard.write_bytes(shard.read_bytes()[:512 * 4])

    report = verify_set(intact)

    assert [problem.shard for problem in report.problems] == ["shard-000002.tar"]


@pytest.mark.parametrize("offset", [700, 100])  # inside a JPEG view; inside the first tar header
def test_flipped_byte_is_named(intact: Path, offset: int):
    shard = intact / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))

    result = CliRunner().invoke(cli, ["verify", str(intact)])

    assert result.exit_code == 1
    assert "shard shard-000000.tar: has a sha256 that differs from the manifest" in result.output
    assert "shard-000001.tar" not in result.output


def test_missing_shard_is_named(intact: Path):
    (intact / "shard-000002.tar").unlink()

    report = verify_set(intact)

    assert [problem.message for problem in report.problems] == ["shard shard-000002.tar: is missing."]


def test_sample_that_breaks_the_schema_is_named_even_when_its_hash_matches(tmp_path: Path):
    broken = synthetic_group(1, views=2, latent_dim=4)
    broken.label = 9  # the set has 3 classes
    groups = [synthetic_group(0, views=2, latent_dim=4), broken]
    write_set(tmp_path, groups, synthetic_recipe(groups=2, views=2, latent_dim=4, groups_per_shard=1))

    report = verify_set(tmp_path)

    assert [problem.shard for problem in report.problems] == ["shard-000001.tar"]
    assert "sample 0000000001 has class '9'" in report.problems[0].message


def test_anchors_out_of_place_are_named(tmp_path: Path):
    recipe = synthetic_recipe(groups=4, views=1, latent_dim=4, groups_per_shard=2)
    manifest = write_set(tmp_path, [synthetic_group(anchor, views=1, latent_dim=4) for anchor in range(4)],
                         recipe)
    # A sender's shard that holds 2 and 5 under a row that says 2..3, its hash re-computed.
    manifest["shards"][1].update(rename_anchor(tmp_path / "shard-000001.tar", 3, 5))
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))

    report = verify_set(tmp_path)

    assert len(report.problems) == 1
    assert "shard-000001.tar: holds anchor 5 where anchor 3 belongs" in report.problems[0].message


def test_manifest_of_unknown_version_is_one_sentence_and_exits_2(intact: Path):
    manifest = json.loads((intact / MANIFEST_NAME).read_text())
    (intact / MANIFEST_NAME).write_text(json.dumps({**manifest, "version": 99}))

    result = run_module("shards", "verify", intact)

    assert result.returncode == 2
    assert_clean_failure(result, "version 99")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("change, expected", [
    (lambda rows: rows[:2], "says the set has 6 groups but its shards hold 4"),
    (lambda rows: [rows[0], rows[2], rows[1]], "does not continue the set at anchor 2"),
    (lambda rows: [{**rows[0], "name": "../outside.tar"}, *rows[1:]], "malformed shard rows"),
    (lambda rows: [{**rows[0], "bytes": "many"}, *rows[1:]], "malformed shard rows"),
])
def test_manifest_whose_rows_do_not_tile_the_set_exits_2(intact: Path, change, expected):
    manifest = json.loads((intact / MANIFEST_NAME).read_text())
    (intact / MANIFEST_NAME).write_text(json.dumps({**manifest, "shards": change(manifest["shards"])}))

    result = CliRunner().invoke(cli, ["verify", str(intact)])

    assert result.exit_code == 2
    assert expected in result.output


def test_missing_set_exits_2(tmp_path: Path):
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_a_view_whose_body_does_not_decode_is_named_unless_only_headers_are_checked(intact: Path):
    shard = intact / "shard-000001.tar"
    jpeg = dict(read_members(shard))["0000000002.1.jpg"]
    body = jpeg.index(b"\xff\xda") + 20  # the frame header parses; the image data stops short
    replace_member(intact, 1, "0000000002.1.jpg", jpeg[:body])  # a sender's shard, its row re-hashed

    report = verify_set(intact)
    assert [problem.shard for problem in report.problems] == ["shard-000001.tar"]
    assert "sample 0000000002 view 1 is not a decodable JPEG" in report.problems[0].message
    assert verify_set(intact, decode=False).intact  # headers alone cannot tell


@pytest.fixture
def two_damaged(tmp_path: Path) -> Path:
    """Five shards, the second cut short and the fourth with a view that does not decode (its hash
    re-computed, so that only decoding tells)."""
    write_synthetic_set(tmp_path / "set", groups=10, views=2, latent_dim=4, groups_per_shard=2)
    truncate_shard(tmp_path / "set" / "shard-000001.tar")
    jpeg = dict(read_members(tmp_path / "set" / "shard-000003.tar"))["0000000006.1.jpg"]
    replace_member(tmp_path / "set", 3, "0000000006.1.jpg", jpeg[:jpeg.index(b"\xff\xda") + 20])
    return tmp_path / "set"


@pytest.mark.parametrize("decode", ["--decode", "--no-decode"])
def test_two_workers_report_what_one_reports(two_damaged: Path, decode: str):
    one, two = (CliRunner().invoke(cli, ["verify", str(two_damaged), decode, "--no-progress", "--workers", workers])
                for workers in ("1", "2"))

    assert (one.exit_code, one.stdout, one.stderr) == (two.exit_code, two.stdout, two.stderr)
    assert one.exit_code == 1 and "Traceback" not in one.output
    named = [line.split(":")[0] for line in one.stdout.splitlines()]
    if decode == "--decode":
        assert named == ["shard shard-000001.tar", "shard shard-000003.tar"]
        assert "2 of 5 shards" in one.stderr
    else:  # headers alone cannot tell the second problem
        assert named == ["shard shard-000001.tar"]


def test_every_damaged_shard_is_reported_whatever_fails_first(intact: Path):
    break_first_view(intact / "shard-000000.tar")
    (intact / "shard-000002.tar").unlink()

    report = verify_set(intact, workers=2)

    assert [problem.shard for problem in report.problems] == ["shard-000000.tar", "shard-000002.tar"]


def test_progress_counts_groups_and_no_progress_draws_nothing(intact: Path):
    shown = CliRunner().invoke(cli, ["verify", str(intact), "--workers", "2"])
    quiet = CliRunner().invoke(cli, ["verify", str(intact), "--workers", "2", "--no-progress"])

    assert shown.exit_code == quiet.exit_code == 0 and shown.stdout == quiet.stdout
    assert "verify:" in shown.stderr and "6/6" in shown.stderr and "group/s" in shown.stderr
    assert quiet.stderr == ""


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_are_refused_in_one_sentence(intact: Path, workers: str):
    result = CliRunner().invoke(cli, ["verify", str(intact), "--workers", workers])

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for '--workers': {workers} is not in the range x>=1." in result.stderr
