"""One command-line convention everywhere: every command answers -h as --help, shows its defaults,
and takes --progress/--no-progress where it draws progress bars.

Commands are walked in-process through click (fast); a new command or subcommand fails
``test_every_command_is_classified`` until it is added to COMMANDS below.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tests.cli import REPO, cli_env
from tests.shards.helpers import write_photo, write_synthetic_set

UNSET = click.Option(["--x"]).default  # click 8.3+ marks "no default" with a sentinel, older click with None

# Every command, by how a user types it: (module, attribute) of the click object it starts from, and
# whether it draws progress bars (and so must take --progress/--no-progress).
COMMANDS = {
    "python -m shards": ("shards.cli", "cli", False),
    "python -m shards info": ("shards.cli", "cli", False),
    "python -m shards verify": ("shards.cli", "cli", True),
    "python -m shards show": ("shards.cli", "cli", False),
    "python -m shards ingest": ("shards.cli", "cli", True),
    "python -m generate": ("generate.cli", "main", True),
    "python -m evaluate": ("evaluate.cli", "cli", False),
    "python -m evaluate linear": ("evaluate.cli", "cli", True),
    "python -m evaluate knn": ("evaluate.cli", "cli", True),
    "python -m evaluate report": ("evaluate.cli", "cli", False),
    "train/main.py": ("train.main", "main", True),
}
for module in ("fit", "steer"):  # being written alongside; checked once they are there
    if (REPO / "generate" / f"{module}.py").exists():
        COMMANDS[f"python -m generate.{module}"] = (f"generate.{module}", "main", True)


def split(name: str) -> tuple[str, list[str]]:
    """"python -m shards verify" -> ("python -m shards", ["verify"]); "train/main.py" -> (it, [])."""
    words = name.split()
    return (" ".join(words[:3]), words[3:]) if words[0] == "python" else (name, [])


def top_command(name: str) -> tuple[click.Command, list[str]]:
    """The click object a command line starts from, and the subcommand words after it."""
    module, attribute, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), attribute), split(name)[1]


def walk(command: click.Command, path: str) -> list[str]:
    names = [path]
    if isinstance(command, click.Group):
        for sub_name, sub in sorted(command.commands.items()):
            names.extend(walk(sub, f"{path} {sub_name}"))
    return names


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


def test_every_command_is_classified():
    found = set()
    for name in COMMANDS:
        if not split(name)[1]:  # a top command: walk its subcommands
            found.update(walk(top_command(name)[0], name))
    assert found == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_h_is_help_and_defaults_are_shown(name: str):
    short, long = help_text(name, "-h"), help_text(name, "--help")
    assert short.exit_code == 0 and long.exit_code == 0, short.output
    assert short.output == long.output and short.output.startswith(f"Usage: {name}")

    command, context = resolved(name)
    for option in command.params:
        default = option.get_default(context)
        if not isinstance(option, click.Option) or option.hidden or default is None or default is UNSET:
            continue
        if option.is_flag and not option.secondary_opts and not option.default:
            continue  # an off switch: click shows no default for it
        record = option.get_help_record(context)
        assert record and "default:" in record[1], f"{name} {option.opts[0]} does not show its default"


@pytest.mark.parametrize("name", sorted(name for name, (_, _, draws) in COMMANDS.items() if draws))
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
