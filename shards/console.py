"""How every command line reports a user's mistake: one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, NoReturn, TypeVar

import click

from shards.schema import ShardSetError

USAGE_ERROR = 2
F = TypeVar("F", bound=Callable[..., Any])


def exit_with(message: str, code: int = USAGE_ERROR) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(*error_types: type[Exception]) -> Callable[[F], F]:
    """Turn the given expected errors (and ShardSetError) into one sentence and exit code 2."""
    caught = (ShardSetError, *error_types)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except caught as error:
                exit_with(str(error))

        return wrapper  # type: ignore[return-value]

    return decorate
