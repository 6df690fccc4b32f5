"""`siray history` (alias `ls`): the tasks siray submitted, newest first; `prune` forgets old
ones."""

import time
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.candidates import complete_task_id
from siray_cli.commands._context import get_context
from siray_cli.commands._options import (
    JsonOpt,
    ModelFilterOpt,
    SinceOpt,
    StatusFilterOpt,
    parse_duration,
    parse_since,
    parse_states,
)
from siray_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext
    from siray_cli.storage.records import Record

app = typer.Typer(
    help="The tasks siray submitted, newest first (recorded locally).",
    invoke_without_command=True,
)


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _row(record: "Record", now: float) -> list[str]:
    first = record.files[0] if record.files else (record.outputs[0] if record.outputs else "-")
    return [
        record.task_id or "-",
        record.provider,
        record.model,
        record.status,
        age(now - record.submitted_at),
        first,
    ]


@app.callback()
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many tasks.")] = 20,
    status: StatusFilterOpt = None,
    model: ModelFilterOpt = None,
    since: SinceOpt = None,
    cost: Annotated[
        bool,
        typer.Option(
            "--cost",
            help="Instead of tasks: what they cost, by provider and model (tasks priced when "
            "sent, under --max-cost), with --since for a period.",
        ),
    ] = False,
    json_mode: JsonOpt = False,
) -> None:
    """List recent tasks: id, provider, model, status, age, first output (or downloaded
    file)."""
    if ctx.invoked_subcommand is not None:
        return
    context = get_context(ctx, json_mode)
    now = time.time()
    if cost:
        _costs(context, parse_since(since, now) if since else None)
        return
    records = context.session.history.query(
        limit=limit,
        states=parse_states(status) if status else None,
        model=model,
        since=parse_since(since, now) if since else None,
    )
    output = context.output
    output.table(
        [_row(r, now) for r in records],
        ["task", "provider", "model", "status", "age", "output"],
        document=[r.to_json() for r in records],
        squeeze="output",
    )
    if not records:
        output.info("no task in the history" + (" matches" if status or model or since else ""))


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Forget finished tasks submitted longer ago than this (30d, 12h)."
        ),
    ],
) -> None:
    """Forget finished tasks older than a duration (pending ones stay)."""
    context = get_context(ctx)
    removed = context.session.history.prune(parse_duration(older_than))
    context.output.info(f"removed {removed} task{'s' if removed != 1 else ''} from the history")


@app.command()
def forget(
    ctx: typer.Context,
    task_ids: Annotated[
        list[str],
        typer.Argument(
            help="The tasks to remove.",
            metavar="TASK_ID...",
            show_default=False,
            autocompletion=complete_task_id,
        ),
    ],
) -> int:
    """Remove tasks from the history, whatever their state.

    A task left pending on a server that is gone for good (an emulator, say) stops counting as
    pending. siray no longer knows it: a rerun of the command that submitted it submits a new
    task.
    """
    context = get_context(ctx)
    history = context.session.history
    unknown = [task_id for task_id in dict.fromkeys(task_ids) if history.find(task_id) is None]
    removed = history.forget_tasks([t for t in dict.fromkeys(task_ids) if t not in unknown])
    if removed or not unknown:  # nothing removed, and the error says why: only the error
        context.output.info(f"removed {removed} task{'s' if removed != 1 else ''} from the history")
    if unknown:
        raise UsageError(
            f"not in the history: {', '.join(unknown)}", hint="`siray history` lists the tasks"
        )
    return ExitCode.OK


def _costs(context: "AppContext", since: float | None) -> None:
    """`history --cost`: spending by provider, model and unit, then the total of each unit."""
    output = context.output
    costs = context.session.history.costs(since)
    totals: dict[str, float] = {}
    for _provider, _model, unit, _count, amount in costs:
        totals[unit] = totals.get(unit, 0.0) + amount
    rows = [[p, m, str(n), f"{a:g}", u] for p, m, u, n, a in costs]
    rows += [
        ["total", "", str(sum(c[3] for c in costs if c[2] == u)), f"{a:g}", u]
        for u, a in totals.items()
    ]
    output.table(
        rows,
        ["provider", "model", "tasks", "cost", "unit"],
        document={
            "costs": [
                {"provider": p, "model": m, "unit": u, "tasks": n, "cost": a}
                for p, m, u, n, a in costs
            ],
            "total": totals,
        },
    )
    priced = sum(count for *_, count, _amount in costs)
    submitted = context.session.history.count(since)
    if not costs:
        output.info("no priced task in the history (tasks are priced when sent under --max-cost)")
    elif submitted > priced:
        left = submitted - priced
        output.info(
            f"{left} task{'s' if left != 1 else ''} of the period "
            f"{'have' if left != 1 else 'has'} no price and {'are' if left != 1 else 'is'} not "
            "counted (tasks are priced when sent under --max-cost)"
        )
