"""`siray open`: a finished task's outputs in the system's viewer."""

import typer

from siray_cli.commands._context import get_context
from siray_cli.commands._options import SomeTaskIdsArg
from siray_cli.errors import ExitCode


def open_outputs(
    ctx: typer.Context,
    task_ids: SomeTaskIdsArg = None,
) -> int:
    """Open a finished task's outputs in the system's viewer.

    The files an earlier `run -o`, `status -o` or `download` saved (from the history), else
    the task's output URLs, each once; prints what it opened. Only from a terminal (stdin and
    stdout), unless SIRAY_OPEN=always.
    """
    from siray_cli.commands._launch import check_can_open, open_in_viewer
    from siray_cli.errors import UsageError
    from siray_cli.services.tasks import look_up, saved_files, tasks_to_show

    context = get_context(ctx)
    session, output = context.session, context.output
    check_can_open(context, "siray open")
    targets: list[str] = []
    with session.providers() as providers:
        for task_id in tasks_to_show(session, task_ids or [], False):
            handle = providers.handle(task_id)
            files = saved_files(handle)
            if not files:
                task = look_up(providers, handle)
                if not task.succeeded or not task.urls:
                    raise UsageError(
                        f"task {task_id} is {task.status}: it has no outputs to open",
                        hint=f"siray status {task_id} --wait",
                        task_id=task_id,
                    )
            targets += files or task.urls
    output.data_lines(targets)
    open_in_viewer(context, targets)
    return ExitCode.OK
