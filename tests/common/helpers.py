"""Hostile inputs, subprocesses that meet file permissions as an ordinary user does (even when the
tests run as root), and tables of bad values that a command line must refuse."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from typing import Any

import pytest
from click.testing import Result

from tests.cli import cli_env

PR_CAPBSET_DROP = 24
# Root reads and writes any file through these two capabilities; without them, mode bits apply.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_permission_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        # Dropped from the bounding set, they are gone from the program exec'd next. An ordinary
        # user lacks them already, and may not drop them: the call fails, and nothing changes.
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)


def run_without_permission_override(*args: object, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python ARGS...`` in a process that file modes bind, as they bind an ordinary user."""
    return subprocess.run([sys.executable, *map(str, args)], env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_drop_permission_override)


def billion_laughs(levels: int = 9) -> str:
    """YAML of nine aliases of nine aliases of ...: a few hundred bytes that expand to 9**9 strings
    (``data`` names the top one)."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 9) + "]"
              for level in range(1, levels + 1)]
    return "\n".join([*lines, f"data: *lol{levels}"]) + "\n"


Refusal = tuple[Any, str]  # what a command is given (flags or config values), and what its refusal says


def refusals(table: dict[str, Refusal]) -> pytest.MarkDecorator:
    """One test per named case of ``table``, given ``given`` and ``message``."""
    names = sorted(table)
    return pytest.mark.parametrize("given, message", [table[name] for name in names], ids=names)


def not_finite(option: str, bounds: str | None, *values: str) -> dict[str, Refusal]:
    """How a FiniteFloatRange option (common/numbers.py) refuses each of ``values`` (nan, inf) given on the
    command line: by name, naming its range (``bounds``, as click writes it) when it has one."""
    where = f" in the range {bounds}" if bounds else ""
    return {f"{value} {option}": ([option, value],
                                  f"Invalid value for '{option}': {value} is not a finite number{where}.")
            for value in values}


def assert_refused(result: Result, message: str) -> None:
    """click refused the command as a usage error (exit 2) saying ``message``; nothing crashed: click
    exits by SystemExit, which is no Exception."""
    assert result.exit_code == 2 and message in result.output, result.output
    assert not isinstance(result.exception, Exception), result.exception
