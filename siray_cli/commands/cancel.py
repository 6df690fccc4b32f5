"""`siray cancel`: ask the server to cancel tasks that have not started."""

from __future__ import annotations

import typer

from siray_cli.api.errors import SirayError
from siray_cli.commands.common import JsonOpt, TaskIdsArg, get_state, status_document
from siray_cli.errors import ExitCode, exit_code_for


def cancel(
    ctx: typer.Context,
    task_ids: TaskIdsArg,
    json_mode: JsonOpt = False,
) -> int:
    """Cancel tasks that have not started yet (a running or finished task cannot be cancelled)."""
    state = get_state(ctx, json_mode)
    output = state.output
    worst = ExitCode.OK
    with state.client() as client:
        for task_id in task_ids:
            try:
                result = client.cancel(task_id)
            except SirayError as exc:
                output.report(exc, task_id)
                worst = worst or exit_code_for(exc)
                continue
            if json_mode:
                output.emit_json(status_document(result))
            else:
                output.data(f"{result.task_id}\t{result.status}")
            if result.cancelled:
                output.info(f"cancelled {result.task_id}")
            else:
                output.error(
                    f"task {result.task_id} had already ended ({result.status}); "
                    "nothing was cancelled",
                    error_type="not_cancelled",
                    task_id=result.task_id,
                )
                worst = worst or ExitCode.USAGE
    return worst
