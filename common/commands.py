"""One help convention for every command: ``-h`` is ``--help``, and every option's help ends with its
default in the project's own words, on/off flags included.

Click's own ``show_default`` wording changes between releases (click 8.5 dropped the default of off
flags), so the project renders defaults itself and asks click to render none.
"""

from __future__ import annotations

import enum
from typing import Any, Callable

import click

HELP_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": False}
UNSET = click.Option(["--x"]).default  # click 8.3+ marks "no default" with a sentinel, older click with None


def default_text(option: click.Parameter, context: click.Context) -> str | None:
    """How ``option``'s default reads in help, or None where it has none to state."""
    if not isinstance(option, click.Option) or option.hidden or not option.expose_value:
        return None  # arguments, and actions such as --help, have no default to state
    default = option.get_default(context, call=False)
    if callable(default):
        return "computed when the command runs"
    if default is None or default is UNSET:
        return None
    if option.is_bool_flag:
        if option.secondary_opts:  # an on/off pair: name the switch in force
            return option.opts[0] if default else option.secondary_opts[0]
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return ", ".join(str(item) for item in default) if default else None
    if default == "":
        return "none"  # an empty text option, e.g. a list not given
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)


def help_record(parameter: click.Parameter, context: click.Context) -> tuple[str, str] | None:
    """``parameter``'s line in help (names, text), its default stated last, or None where it is hidden."""
    record = parameter.get_help_record(context)
    default = default_text(parameter, context)
    if record is None or default is None:
        return record
    return record[0], f"{record[1]}  [default: {default}]".lstrip()


class _ShowsDefaults(click.Command):
    def format_options(self, context: click.Context, formatter: click.HelpFormatter) -> None:
        records = [record for parameter in self.get_params(context)
                   if isinstance(parameter, click.Option) and (record := help_record(parameter, context))]
        if records:
            with formatter.section("Options"):
                formatter.write_dl(records)
        if isinstance(self, click.Group):
            self.format_commands(context, formatter)


class Command(_ShowsDefaults):
    """A command whose help states every option's default."""


class Group(_ShowsDefaults, click.Group):
    """A group whose help, and whose subcommands' help, states every option's default."""

    command_class = Command
    group_class = type  # subgroups are Groups too


def command(**settings: Any) -> Callable[[Callable[..., Any]], Command]:
    """``click.command`` with the project's help convention."""
    return click.command(cls=Command, context_settings=HELP_SETTINGS, **settings)


def group(**settings: Any) -> Callable[[Callable[..., Any]], Group]:
    """``click.group`` with the project's help convention."""
    return click.group(cls=Group, context_settings=HELP_SETTINGS, **settings)
