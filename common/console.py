"""How every command line reports a user's mistake: one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, NoReturn, TypeVar

import click

from common.errors import UserError

USAGE_ERROR = 2
F = TypeVar("F", bound=Callable[..., Any])


def exit_with(message: str, code: int = USAGE_ERROR) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(command: F) -> F:
    """Turn a ``UserError`` raised by ``command`` into its one sentence and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            exit_with(str(error))

    return wrapper  # type: ignore[return-value]
