"""`siray status`: the state of one or more tasks, optionally waiting until they end."""

from __future__ import annotations

from typing import Annotated

import typer

from siray_cli.api.errors import SirayError, UsageError
from siray_cli.api.models import TaskStatus
from siray_cli.commands.common import (
    AppState,
    JsonOpt,
    PollIntervalOpt,
    TimeoutOpt,
    get_state,
    status_document,
    wait_and_show,
)
from siray_cli.completion import complete_task_id
from siray_cli.errors import ExitCode, exit_code_for
from siray_cli.output import Output


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _one_field(text: str) -> str:
    return " ".join(text.split()) or "-"


def render_status(output: Output, status: TaskStatus) -> None:
    """JSON: one object per line; terminal: a short block; pipe: one tab-separated line."""
    if output.json_mode:
        output.emit_json(status_document(status))
        return
    progress = "-" if status.progress is None else f"{status.progress}%"
    if not output.stdout_is_tty:
        outputs = " ".join(status.outputs) or "-"
        fields = [status.task_id, status.status, progress, outputs, _one_field(status.fail_reason)]
        output.data("\t".join(fields))
        return
    lines = [f"{status.task_id}  {status.status}  {progress}"]
    timing = []
    if status.queued_for is not None:
        timing.append(f"queued for {duration(status.queued_for)}")
    if status.ran_for is not None:
        timing.append(f"ran for {duration(status.ran_for)}")
    if timing:
        lines.append("  " + ", ".join(timing))
    if status.fail_reason:
        lines.append(f"  reason: {status.fail_reason}")
    lines.extend(f"  output: {url}" for url in status.outputs)
    output.data_lines(lines)


def status(
    ctx: typer.Context,
    task_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Task ids (default: the most recent task in the history).",
            metavar="[TASK_ID]...",
            show_default=False,
            autocompletion=complete_task_id,
        ),
    ] = None,
    wait: bool = typer.Option(False, "--wait", "-w", help="Poll until every task has ended."),
    all_pending: bool = typer.Option(
        False, "--all-pending", help="Every task in the history that has not ended."
    ),
    timeout: TimeoutOpt = None,
    poll_interval: PollIntervalOpt = None,
    json_mode: JsonOpt = False,
) -> int:
    """Show the state of tasks: status, progress, outputs, failure reason, timings.

    With --wait, exits 1 when any task failed or was cancelled.
    """
    state = get_state(ctx, json_mode)
    output = state.output
    ids = _task_ids(state, task_ids or [], all_pending)
    if not ids:
        output.info("no pending task in the history")
        return ExitCode.OK
    worst = ExitCode.OK
    with state.client() as client:
        if wait:
            timeout, poll_interval = state.wait_options(timeout, poll_interval)
            finals = wait_and_show(state, client, ids, timeout=timeout, poll_interval=poll_interval)
            for final in finals.values():
                render_status(output, final)
                if not final.succeeded:
                    worst = ExitCode.TASK_FAILED
            return worst
        for task_id in ids:
            try:
                current = client.get_status(task_id)
            except SirayError as exc:
                output.report(exc, task_id)
                if worst == ExitCode.OK:
                    worst = exit_code_for(exc)
                continue
            state.history.update(current)
            render_status(output, current)
    return worst


def _task_ids(state: AppState, given: list[str], all_pending: bool) -> list[str]:
    """The ids asked for; with none, the most recent task (or every pending one) in the history."""
    if given and all_pending:
        raise UsageError("give task ids or --all-pending, not both")
    if given:
        return list(dict.fromkeys(given))
    if all_pending:
        return [r.task_id for r in reversed(state.history.query(pending=True)) if r.task_id]
    latest = state.history.latest()
    if latest is None or latest.task_id is None:
        raise UsageError(
            "no task id given, and the history holds none",
            hint="siray status TASK_ID (the id that `siray generate` printed)",
        )
    state.output.info(f"the most recent task: {latest.task_id} ({latest.model})")
    return [latest.task_id]
