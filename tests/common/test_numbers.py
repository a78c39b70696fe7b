"""common.numbers: the option types that refuse nan, inf and cut numbers, seen through a real click command."""

from __future__ import annotations

import ast

import click
from click.testing import CliRunner

from common.numbers import MAX_SEED, FiniteFloatRange, WholeNumberRange, seed_range
from tests.common.helpers import assert_refused, not_finite, refusals


@click.command()
@click.option("--rate", type=FiniteFloatRange(0, min_open=True), default=None)
@click.option("--fraction", type=FiniteFloatRange(0, 1), default=None)
@click.option("--anything", type=FiniteFloatRange(), default=None)
@click.option("--count", type=WholeNumberRange(1, 10), default=None)
@click.option("--seed", type=seed_range(), default=0)
def command(**values: object) -> None:
    click.echo(repr(values))


def invoke(*args: str, default_map: dict | None = None):
    return CliRunner().invoke(command, list(args), default_map=default_map)


BAD_FLAGS = {
    **not_finite("--rate", "x>0", "nan", "inf"),
    **not_finite("--anything", None, "nan"),
    "-inf fraction": (["--fraction", "-inf"], "Invalid value for '--fraction': -inf is not in the range 0<=x<=1."),
    "zero rate": (["--rate", "0"], "Invalid value for '--rate': 0.0 is not in the range x>0."),
    "count past the range": (["--count", "11"], "Invalid value for '--count': 11 is not in the range 1<=x<=10."),
    "negative seed": (["--seed", "-1"], f"Invalid value for '--seed': -1 is not in the range 0<=x<={MAX_SEED}."),
    "seed past the range": (["--seed", str(MAX_SEED + 1)],
                            f"Invalid value for '--seed': {MAX_SEED + 1} is not in the range 0<=x<={MAX_SEED}."),
}


@refusals(BAD_FLAGS)
def test_bad_numbers_on_the_command_line_are_refused_naming_the_option_and_range(given, message):
    assert_refused(invoke(*given), message)


BAD_CONFIGS = {
    "nan rate": ({"rate": float("nan")}, "Invalid value for '--rate': nan is not a finite number in the range x>0."),
    "fractional count": ({"count": 1.5}, "Invalid value for '--count': 1.5 is not a whole number."),
    "inf count": ({"count": float("inf")}, "Invalid value for '--count': inf is not a whole number."),
}


@refusals(BAD_CONFIGS)
def test_bad_numbers_from_a_config_are_refused_too(given, message):
    # default_map: how train/config.py hands a YAML file's values to click
    assert_refused(invoke(default_map=given), message)


def test_good_numbers_pass_unchanged():
    result = invoke("--rate", "1e-3", "--fraction", "1", "--anything", "-5", "--seed", str(MAX_SEED),
                    default_map={"count": 4.0})
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(result.output) == {"rate": 0.001, "fraction": 1.0, "anything": -5.0, "count": 4,
                                               "seed": MAX_SEED}
