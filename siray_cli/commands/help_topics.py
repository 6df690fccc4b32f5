"""`siray help [COMMAND...|TOPIC]`: a command's help (as `siray COMMAND --help`), or a reference
table of the man page (exit codes, environment, files), in the terminal."""

from typing import Annotated

import click
import typer

from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.errors import UsageError
from siray_cli.reference import TOPICS


def _complete(ctx: typer.Context, incomplete: str) -> list[str]:
    root = ctx.find_root().command
    names = root.list_commands(ctx) if isinstance(root, click.Group) else []
    return [word for word in [*TOPICS, *names] if word.startswith(incomplete)]


def help_topic(
    ctx: typer.Context,
    words: Annotated[
        list[str] | None,
        typer.Argument(
            help="A command (`run`, `models list`) or a topic: exit-codes, environment, files.",
            metavar="[COMMAND...|TOPIC]",
            show_default=False,
            autocompletion=_complete,
        ),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Print a command's help or a topic: exit-codes, environment, files.

    A topic is a reference table of the man page: the exit codes, the environment variables, or
    the files siray reads and writes.
    """
    context = get_context(ctx, json_mode)
    output = context.output
    words = words or []
    if len(words) == 1 and words[0] in TOPICS:
        title, rows = TOPICS[words[0]]
        table = rows()
        if output.json_mode:
            output.result({name: meaning for name, meaning in table})
            return
        width = max(len(name) for name, _ in table)
        output.data(f"{title}:")
        output.data_lines(f"  {name.ljust(width)}  {meaning}" for name, meaning in table)
        return
    command, command_ctx = _resolve(ctx, words)
    output.data_lines(command.get_help(command_ctx).splitlines())


def _resolve(ctx: typer.Context, words: list[str]) -> tuple[click.Command, click.Context]:
    """The command that `words` name, and a context to render its help in (as --help does)."""
    root = ctx.find_root()
    command: click.Command = root.command
    current = command.context_class(command, info_name=root.info_name, **command.context_settings)
    for word in words:
        found = command.get_command(current, word) if isinstance(command, click.Group) else None
        if found is None:
            names = (
                root.command.list_commands(root) if isinstance(root.command, click.Group) else []
            )
            raise UsageError(
                f"no command or help topic {' '.join(words)!r}",
                hint=f"commands: {', '.join(names)}; topics: {', '.join(TOPICS)}",
            )
        command = found
        current = command.context_class(
            command, info_name=word, parent=current, **command.context_settings
        )
    return command, current
