"""Tools that start at once: describing a set and every command's help import no torch, whose
import alone takes longer (1.5 s) than such a command should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import cli_env
from tests.shards.helpers import write_synthetic_set

HEAVY = {"torch", "torchvision", "webdataset"}


def imported_modules(*args: str) -> set[str]:
    """The top-level packages a command (``-m module ...`` or ``script.py ...``) imports, as ``-X importtime``
    lists them."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=cli_env(), capture_output=True,
                            text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("command", [["info", "SET"], ["--help"], ["info", "-h"], ["verify", "-h"]])
def test_shard_tools_that_read_no_image_import_no_torch(tmp_path: Path, command: list[str]):
    write_synthetic_set(tmp_path / "set", groups=4, groups_per_shard=2)

    imported = imported_modules("-m", "shards", *[str(tmp_path / "set") if word == "SET" else word
                                                  for word in command])

    assert "shards" in imported and not imported & HEAVY


@pytest.mark.parametrize("command", [["-m", "generate", "--help"], ["-m", "evaluate", "--help"],
                                     ["-m", "evaluate", "linear", "--help"], ["-m", "evaluate", "knn", "--help"],
                                     ["train/main.py", "--help"]])
def test_help_imports_no_torch(command: list[str]):
    imported = imported_modules(*command)

    package = command[1] if command[0] == "-m" else command[0].split("/")[0]
    assert package in imported and not imported & HEAVY
