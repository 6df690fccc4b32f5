"""`siray history` (alias `ls`): the tasks siray submitted, newest first; `prune` forgets old
ones."""

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.candidates import complete_task_id
from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from siray_cli.storage.records import Record

app = typer.Typer(
    help="The tasks siray submitted, newest first (recorded locally).",
    invoke_without_command=True,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `30d`, `2w` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"{text!r} is not a duration", hint="write 90s, 15m, 12h, 30d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_since(text: str, now: float) -> float:
    """A duration ago (`12h`) or a date or time (`2026-11-20`, `2026-11-20T08:00`)."""
    try:
        return now - parse_duration(text)
    except UsageError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a date", hint="write 12h, 7d or 2026-11-20"
        ) from None
    return moment.timestamp()


STATES = ("SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCELLED", "UNKNOWN")
# words people use for them (any case, `-` or a space for `_`)
STATE_WORDS: dict[str, tuple[str, ...]] = {
    **{state: (state,) for state in STATES},
    "UNCERTAIN": ("UNCERTAIN",),
    "DONE": ("SUCCESS",),
    "SUCCEEDED": ("SUCCESS",),
    "COMPLETED": ("SUCCESS",),
    "FAILED": ("FAILURE",),
    "CANCELED": ("CANCELLED",),
    "RUNNING": ("IN_PROGRESS",),
    "PENDING": ("SUBMITTED", "QUEUED", "IN_PROGRESS", "UNKNOWN"),
}


def parse_states(text: str) -> tuple[str, ...]:
    """`--status` as the states it means: `success`, `failed`, `done`, `in-progress`..."""
    word = text.strip().upper().replace("-", "_").replace(" ", "_")
    if word in STATE_WORDS:
        return STATE_WORDS[word]
    import difflib

    close = difflib.get_close_matches(word, list(STATE_WORDS), n=1)
    raise UsageError(
        f"--status {text!r} is not a state siray knows"
        + (f" (did you mean {close[0].lower()}?)" if close else ""),
        hint="one of "
        + ", ".join(w.lower() for w in [*STATES, "UNCERTAIN"])
        + "; or done, failed, running, pending",
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
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only tasks in this state (success, failure, cancelled, in_progress, queued, "
            "uncertain; done, failed, running, pending), in any case.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Only models whose name contains this.", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only tasks submitted since (12h, 7d, 2026-11-20).", show_default=False
        ),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """List recent tasks: id, provider, model, status, age, first output (or downloaded
    file)."""
    if ctx.invoked_subcommand is not None:
        return
    context = get_context(ctx, json_mode)
    now = time.time()
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
    context.output.info(f"removed {removed} task{'s' if removed != 1 else ''} from the history")
    if unknown:
        raise UsageError(
            f"not in the history: {', '.join(unknown)}", hint="`siray history` lists the tasks"
        )
    return ExitCode.OK
