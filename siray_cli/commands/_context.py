"""The invocation's context every command reads: the output sink and the services' session,
handed down through Typer's `ctx.obj`, and the displays built on that sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from typing import Any

    from siray_cli.output import Output
    from siray_cli.progress import TransferDisplay
    from siray_cli.providers.base import Provider
    from siray_cli.services.budget import Budget
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.requests import Request
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


def submit_when_admitted(
    context: AppContext,
    provider: Provider,
    request: Request,
    *,
    patience: float | None,
    budget: Budget | None = None,
    **journal: Any,
) -> TaskHandle:
    """`run`'s and `generate`'s submit through the Ledger (`journal`: its keyword options),
    waiting out the provider's concurrency limit for `patience` seconds at most: said in a
    line, then counted down on a terminal or told every 30 s elsewhere."""
    from siray_cli.progress import HoldCountdown
    from siray_cli.services.admission import when_admitted
    from siray_cli.services.budget import Charge

    session, output = context.session, context.output
    model = str(request.body.get("model"))
    charge = None
    if budget is not None:
        budget.check(provider, model)
        charge = Charge(budget, provider, model, request.body)
    with HoldCountdown(output) as countdown:
        handle = when_admitted(
            lambda: session.ledger.submit(
                provider,
                request.kind,
                request.body,
                webhook=request.webhook,
                job_key=request.key,
                charge=charge,
                **journal,
            ),
            patience=patience,
            say=output.always,
            backoff=session.backoff,
            on_hold=countdown.on_hold,
        )
    assert handle is not None  # (no pause that stops)
    return handle
