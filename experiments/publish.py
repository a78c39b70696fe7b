"""What an experiment leaves in its folder: its record (JSON), its markdown table and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from common.files import write_bytes_atomic, write_json_atomic


def publish(out: Path, record: dict[str, Any], names: tuple[str, str, str], table: Callable[[dict[str, Any]], str],
            plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Write ``record`` and the table and plot drawn from it into ``out`` under ``names`` (record,
    table, plot), and show the table."""
    record_name, table_name, plot_name = names
    write_json_atomic(out / record_name, record)
    text = table(record)
    write_bytes_atomic(out / table_name, text.encode())
    plot(record, out / plot_name)
    click.echo(text)
    click.echo(f"Wrote {out / table_name}, {out / record_name} and {out / plot_name}.")
