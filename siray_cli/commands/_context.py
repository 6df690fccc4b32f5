"""The invocation's context every command reads: the output sink and the services' session,
handed down through Typer's `ctx.obj`, and the displays built on that sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from siray_cli.output import Output
    from siray_cli.progress import TransferDisplay
    from siray_cli.services.session import Notices, Session


@dataclass
class AppContext:
    output: Output
    session: Session


def notices_for(output: Output) -> Notices:
    """The services' messages, routed to the output sink."""
    from siray_cli.services.session import Notices

    return Notices(
        info=output.info,
        always=output.always,
        warn=output.warn,
        trace=output.trace,
        add_secret=output.add_secret,
        debug=output.debug_enabled,
    )


def get_context(ctx: typer.Context, json_mode: bool = False) -> AppContext:
    context: AppContext = ctx.find_root().obj
    context.output.json_mode = context.output.json_mode or json_mode
    return context


def transfers_for(output: Output) -> Callable[[], TransferDisplay]:
    """The live display of uploads and downloads (bars on a terminal, lines elsewhere)."""
    from siray_cli.progress import TransferDisplay

    return lambda: TransferDisplay(output)
