"""One command-line convention everywhere: every command answers -h as --help, states every option's
default in the project's words (``[default: ...]``, on/off flags included, whatever click's release),
and takes --progress/--no-progress unless it is listed as drawing no progress bars.

Commands are discovered from the packages themselves (every ``python -m`` entry and ``train/main.py``)
and walked in-process through click (fast), so a new command cannot escape the convention.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from common.commands import UNSET, help_record
from tests.cli import REPO, cli_env
from tests.shards.helpers import write_photo, write_synthetic_set

PACKAGES = ("common", "shards", "generate", "train", "evaluate", "experiments")
DRAW_NO_PROGRESS = {"python -m shards", "python -m shards info", "python -m shards show", "python -m shards hollow",
                    "python -m shards subset", "python -m shards merge", "python -m generate.verify", "python -m evaluate", "python -m evaluate report",
                    "python -m evaluate export",
                    "python -m experiments.silhouettes"}


def entry_points() -> dict[str, str]:
    """Every command a user can start, as they type it -> the module whose click object it runs."""
    entries = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            source = path.read_text()
            if path.name == "__main__.py":  # python -m PACKAGE: the module its entry imports from
                imported = next(node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom))
                entries[f"python -m {module.removesuffix('.__main__')}"] = imported
            elif 'if __name__ == "__main__"' in source:
                entries["train/main.py" if module == "train.main" else f"python -m {module}"] = module
    return entries


def top_click_object(module: str) -> click.Command:
    """The one click command of ``module`` that no group of it contains."""
    found = [value for value in vars(importlib.import_module(module)).values()
             if isinstance(value, click.Command) and value.callback.__module__ == module]
    inner = {id(sub) for value in found if isinstance(value, click.Group) for sub in value.commands.values()}
    (top,) = [value for value in found if id(value) not in inner]
    return top


def walk(command: click.Command, path: str) -> list[str]:
    names = [path]
    if isinstance(command, click.Group):
        for sub_name, sub in sorted(command.commands.items()):
            names.extend(walk(sub, f"{path} {sub_name}"))
    return names


ENTRIES = entry_points()
COMMANDS = sorted(name for entry, module in ENTRIES.items() for name in walk(top_click_object(module), entry))


def split(name: str) -> tuple[str, list[str]]:
    """"python -m shards verify" -> ("python -m shards", ["verify"]); "train/main.py" -> (it, [])."""
    words = name.split()
    return (" ".join(words[:3]), words[3:]) if words[0] == "python" else (name, [])


def top_command(name: str) -> tuple[click.Command, list[str]]:
    """The click object a command line starts from, and the subcommand words after it."""
    entry, words = split(name)
    return top_click_object(ENTRIES[entry]), words


def resolved(name: str) -> tuple[click.Command, click.Context]:
    """The command and a context as click builds it for a help page (settings inherited from groups)."""
    command, words = top_command(name)
    context = click.Context(command, info_name=split(name)[0], **command.context_settings)
    for word in words:
        command = command.commands[word]
        context = click.Context(command, info_name=word, parent=context, **command.context_settings)
    return command, context


def help_text(name: str, flag: str) -> Result:
    command, words = top_command(name)
    return CliRunner().invoke(command, [*words, flag], prog_name=split(name)[0])


def squeezed(text: str) -> str:
    """``text`` without whitespace: help wraps lines (at spaces and hyphens) wherever its width says."""
    return "".join(text.split())


def test_every_entry_point_is_discovered():
    assert {"python -m shards verify", "python -m generate", "python -m generate.fit", "python -m evaluate knn",
            "train/main.py", "python -m experiments.views", "python -m experiments.silhouettes"} <= set(COMMANDS)
    assert DRAW_NO_PROGRESS <= set(COMMANDS)  # a renamed command is not silently exempt


@pytest.mark.parametrize("name", COMMANDS)
def test_h_is_help_and_defaults_are_shown(name: str):
    short, long = help_text(name, "-h"), help_text(name, "--help")
    assert short.exit_code == 0 and long.exit_code == 0, short.output
    assert short.output == long.output and short.output.startswith(f"Usage: {name}")

    command, context = resolved(name)
    for option in command.params:
        default = option.get_default(context)
        if not isinstance(option, click.Option) or option.hidden or default in (None, UNSET, ()):
            continue
        record = help_record(option, context)
        assert record and "[default: " in record[1], f"{name} {option.opts[0]} does not state its default"
        assert squeezed(record[1]) in squeezed(short.output), f"{name} {option.opts[0]}'s help is not shown"


@pytest.mark.parametrize("name", [name for name in COMMANDS if name not in DRAW_NO_PROGRESS])
def test_commands_that_draw_progress_take_no_progress(name: str):
    command, _ = resolved(name)
    progress = next((option for option in command.params if option.name == "progress"), None)
    assert progress is not None and progress.opts == ["--progress"] and progress.secondary_opts == ["--no-progress"]
    assert progress.default is True
    assert "--no-progress" in help_text(name, "-h").output


def test_no_progress_silences_verify_and_ingest(tmp_path: Path):
    from shards.cli import cli

    write_synthetic_set(tmp_path / "set", groups=4, groups_per_shard=2)
    for index in range(3):
        write_photo(tmp_path / "photos" / "cls" / f"{index}.png", (40 * index, 90, 160), (40, 30))
    runner = CliRunner()
    shown = runner.invoke(cli, ["verify", str(tmp_path / "set")])
    quiet = runner.invoke(cli, ["verify", str(tmp_path / "set"), "--no-progress"])
    assert shown.exit_code == quiet.exit_code == 0 and "verify:" in shown.stderr and quiet.stderr == ""

    ingest = ["ingest", str(tmp_path / "photos"), str(tmp_path / "real"), "--image-size", "16", "--workers", "1"]
    quiet = runner.invoke(cli, [*ingest, "--no-progress"])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output


def test_the_real_entry_point_answers_h():
    result = subprocess.run([sys.executable, "-m", "shards", "ingest", "-h"], env=cli_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("Usage: python -m shards ingest"), result.stderr
