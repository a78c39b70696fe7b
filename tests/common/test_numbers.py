"""common.numbers: the option types that refuse nan, inf and cut numbers, seen through a real click command."""

from __future__ import annotations

import ast

import click
import pytest
from click.testing import CliRunner

from common.numbers import MAX_SEED, FiniteFloatRange, WholeNumberRange, seed_range


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


@pytest.mark.parametrize("args, message", [
    (["--rate", "nan"], "Invalid value for '--rate': nan is not a finite number in the range x>0."),
    (["--rate", "inf"], "Invalid value for '--rate': inf is not a finite number in the range x>0."),
    (["--fraction", "-inf"], "'--fraction': -inf is not in the range 0<=x<=1."),
    (["--anything", "nan"], "Invalid value for '--anything': nan is not a finite number."),
    (["--rate", "0"], "0.0 is not in the range x>0."),
    (["--count", "11"], "11 is not in the range 1<=x<=10."),
    (["--seed", "-1"], f"-1 is not in the range 0<=x<={MAX_SEED}."),
    (["--seed", str(MAX_SEED + 1)], f"is not in the range 0<=x<={MAX_SEED}."),
])
def test_bad_numbers_on_the_command_line_are_refused_naming_the_option_and_range(args, message):
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("defaults, message", [
    ({"rate": float("nan")}, "'--rate': nan is not a finite number in the range x>0."),
    ({"count": 1.5}, "'--count': 1.5 is not a whole number."),
    ({"count": float("inf")}, "'--count': inf is not a whole number."),
])
def test_bad_numbers_from_a_config_are_refused_too(defaults, message):
    result = invoke(default_map=defaults)  # how train/config.py hands a YAML file's values to click
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_good_numbers_pass_unchanged():
    result = invoke("--rate", "1e-3", "--fraction", "1", "--anything", "-5", "--seed", str(MAX_SEED),
                    default_map={"count": 4.0})
    assert result.exit_code == 0, result.output
    assert ast.literal_eval(result.output) == {"rate": 0.001, "fraction": 1.0, "anything": -5.0, "count": 4,
                                               "seed": MAX_SEED}
