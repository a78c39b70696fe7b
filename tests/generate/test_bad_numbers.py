"""``python -m generate`` refuses a nan or infinite --sigma or --truncation before it writes anything
(both once wrote a "complete" set of black views)."""

from __future__ import annotations

from click.testing import CliRunner

from generate.cli import main as generate_main
from tests.cli import assert_clean_failure, run_module
from tests.common.helpers import assert_refused, refusals

BAD = {
    "nan sigma": (["--sigma", "nan"], "--sigma must be a finite number of 0 or more, not nan."),
    "inf sigma": (["--sigma", "inf"], "--sigma must be a finite number of 0 or more, not inf."),
    "nan truncation": (["--truncation", "nan"], "--truncation must be a finite number above 0, not nan."),
    "inf truncation": (["--truncation", "inf"], "--truncation must be a finite number above 0, not inf."),
}


def deadleaves_args(out, *flags: str) -> list[str]:
    return ["--generator", "deadleaves", "--n-anchors", "4", "--views", "2", "--out", str(out), "--no-progress",
            *flags]


@refusals(BAD)
def test_a_bad_sigma_or_truncation_is_refused_before_anything_is_written(tmp_path, given, message):
    result = CliRunner().invoke(generate_main, deadleaves_args(tmp_path / "set", *given))
    assert_refused(result, message)
    assert result.stderr == f"error: {message}\n"  # the one line, all of it
    assert not (tmp_path / "set").exists()


def test_the_refusal_reaches_the_user_of_python_m_generate(tmp_path):
    result = run_module("generate", *deadleaves_args(tmp_path / "set", "--sigma", "nan"))
    assert_clean_failure(result, BAD["nan sigma"][1])
    assert not (tmp_path / "set").exists()
