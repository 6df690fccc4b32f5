"""`siray download`: the outputs of finished tasks, fetched later."""

from pathlib import Path

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import (
    ForceOpt,
    JsonOpt,
    NameTemplateOpt,
    OpenOpt,
    OutputDirOpt,
    TaskIdsArg,
)
from siray_cli.errors import ExitCode, SirayError, exit_code_for
from siray_cli.settings_keys import NAME_TEMPLATE, OUTPUT_DIR


def download(
    ctx: typer.Context,
    task_ids: TaskIdsArg,
    output_dir: OutputDirOpt = None,
    force: ForceOpt = False,
    name_template: NameTemplateOpt = None,
    open_saved: OpenOpt = False,
    json_mode: JsonOpt = False,
) -> int:
    """Download the outputs of finished tasks later, as `run -o` does.

    Into -o DIR, the `output_dir` setting, or the current directory: atomic, never over an
    existing file, recorded in the history. Prints one path per line (with --json, one list:
    each task's id and files, and the error of each that could not be fetched).
    """
    from siray_cli.services.outputs import Downloads
    from siray_cli.storage.downloads import prepare_output_dir

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    if open_saved:
        from siray_cli.commands._launch import check_can_open

        check_can_open(context)
    target = session.settings.read(OUTPUT_DIR, output_dir)
    directory = prepare_output_dir(Path(target or "."))
    template = session.settings.read(NAME_TEMPLATE, name_template)
    worst = ExitCode.OK
    fetched = []
    with (
        session.providers() as providers,
        Downloads(session, template) as downloads,
        transfers_for(output)() as display,
    ):
        for task_id in dict.fromkeys(task_ids):
            handle = providers.handle(task_id)
            try:
                task, files = downloads.fetch(handle, directory, force=force, display=display)
            except SirayError as exc:  # with --json, in the one document with the others
                output.report(exc, task_id, document=False)
                worst = worst or exit_code_for(exc)
                fetched.append(
                    {"task_id": task_id, "files": [], "error": output.error_object(exc, task_id)}
                )
                continue
            fetched.append({"task_id": task.task_id, "files": [str(p) for p in files]})
            handle.hand_over(task, directory)
            if not output.json_mode:
                output.data_lines(str(path) for path in files)
    if output.json_mode:
        output.result(fetched)
    if open_saved:
        from siray_cli.commands._launch import open_in_viewer

        open_in_viewer(context, [path for each in fetched for path in each["files"]])
    return worst
