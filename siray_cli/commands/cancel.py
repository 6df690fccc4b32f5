"""`siray cancel`: ask the server to cancel tasks that have not started."""

import typer

from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt, TaskIdsArg
from siray_cli.errors import ExitCode, NotCancelledError, SirayError, exit_code_for
from siray_cli.output import sanitize


def cancel(
    ctx: typer.Context,
    task_ids: TaskIdsArg,
    json_mode: JsonOpt = False,
) -> int:
    """Cancel tasks that have not started yet.

    A running or finished task cannot be cancelled.
    """
    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    worst = ExitCode.OK
    with session.providers() as providers:
        for task_id in task_ids:
            try:
                result = providers.handle(task_id).cancel()
            except SirayError as exc:
                output.report(exc, task_id)
                worst = worst or exit_code_for(exc)
                continue
            if output.json_mode:
                output.result(result.to_json())
            else:
                output.data(f"{sanitize(result.task_id)}\t{sanitize(result.status)}")
            if result.cancelled:
                output.info(f"cancelled {result.task_id}")
            else:
                refused = NotCancelledError(
                    f"task {result.task_id} had already ended ({result.status}); "
                    "nothing was cancelled",
                    task_id=result.task_id,
                )
                output.report(refused)
                worst = worst or exit_code_for(refused)
    return worst
