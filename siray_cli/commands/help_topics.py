"""`siray help TOPIC`: the reference tables of the man page, in the terminal."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from siray_cli.cli import JsonOpt, get_context
from siray_cli.reference import TOPICS


class Topic(str, enum.Enum):
    exit_codes = "exit-codes"
    environment = "environment"
    files = "files"


def help_topic(
    ctx: typer.Context,
    topic: Annotated[Topic, typer.Argument(help="exit-codes, environment or files.")],
    json_mode: JsonOpt = False,
) -> None:
    """Print a reference table: exit codes, environment variables or files."""
    state = get_context(ctx, json_mode)
    title, rows = TOPICS[topic.value]
    table = rows()
    if json_mode:
        state.output.emit_json({name: meaning for name, meaning in table})
        return
    width = max(len(name) for name, _ in table)
    state.output.data(f"{title}:")
    state.output.data_lines(f"  {name.ljust(width)}  {meaning}" for name, meaning in table)
