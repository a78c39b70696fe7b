"""Hostile inputs and subprocesses that meet file permissions as an ordinary user does, even when the
tests run as root."""

from __future__ import annotations

import ctypes
import subprocess
import sys

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
