"""``python -m generate`` refuses absurd numbers in one sentence that names the bound, before it
allocates or writes anything (issue 10)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from generate.cli import main as generate_main
from tests.cli import assert_clean_failure, run_module

BAD_NUMBERS = {
    "no views": (["--views", "0"], "1<=x<=1000"),
    "negative views": (["--views", "-3"], "1<=x<=1000"),
    "a billion views": (["--views", "1000000000"], "1<=x<=1000"),
    "two views without latent views": (["--view-method", "none", "--views", "2"], "use --views 1"),
    "anchors beyond the key width": (["--n-anchors", "10000000001"],
                                     "more than 10,000,000,000 anchors, the most that 10-digit"),
    "1e23 anchors written out": (["--n-anchors", "1" + "0" * 23], "10-digit group keys"),
    "1e23 anchors in scientific notation": (["--n-anchors", "1e23"], "not a positive whole count"),
    "more shards than names": (["--n-anchors", "2M", "--groups-per-shard", "1"],
                               "more than the 1,000,000 that 6-digit shard names allow"),
    "huge shards": (["--groups-per-shard", "1000000"], "1<=x<=100000"),
    "negative seed": (["--seed", "-1"], "0<=x<=9223372036854775807"),
    "seed past int64": (["--seed", str(2**63)], "0<=x<=9223372036854775807"),
    "no batch": (["--batch-size", "0"], "from 1 to 4096"),
    "huge batch": (["--batch-size", "100000"], "from 1 to 4096"),
    "batch as text": (["--batch-size", "fast"], "not auto or a whole number"),
    "huge sigma": (["--sigma", "1e300"], "--sigma must be at most 100"),
    "huge truncation": (["--truncation", "1e30"], "--truncation must be at most 100"),
    "num-shards past shard names": (["--num-shards", "1000001"], "1<=x<=1000000"),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_absurd_numbers_are_refused_in_one_sentence_naming_the_bound(tmp_path, case):
    flags, fragment = BAD_NUMBERS[case]
    settings = {"--n-anchors": "4", **dict(zip(flags[::2], flags[1::2]))}
    arguments = [item for pair in settings.items() for item in pair]
    result = CliRunner().invoke(generate_main, [*arguments, "--out", str(tmp_path / "set"), "--no-progress"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "set").exists()


def test_from_a_shell_zero_views_is_one_error_line(tmp_path):
    result = run_module("generate", "--n-anchors", 4, "--views", 0, "--out", tmp_path / "set")
    assert_clean_failure(result, "--views")
    assert result.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for '--views'")
    assert not (tmp_path / "set").exists()


def test_the_largest_counts_within_the_bounds_are_accepted_until_the_render(tmp_path):
    """At the bounds, nothing is refused for its size: the job starts (and is refused here only
    because the folder holds a file that is not part of a set, before anything is rendered)."""
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(generate_main, [
        "--n-anchors", str(10**10), "--groups-per-shard", "100000", "--views", "1000",
        "--seed", str(2**63 - 1), "--batch-size", "4096", "--sigma", "100", "--image-size", "8",
        "--out", str(tmp_path / "set"), "--no-progress"])
    assert result.exit_code == 2 and "not part of a shard set" in result.output, result.output
    assert (tmp_path / "set" / "mine.txt").read_text() == "keep"
