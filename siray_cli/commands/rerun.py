"""`siray rerun`: the request that made a file (or a task) again, as a new task."""

from typing import Annotated

import typer

from siray_cli.candidates import complete_model
from siray_cli.commands._context import get_context
from siray_cli.commands._options import (
    CancelOnInterruptOpt,
    DryRunOpt,
    ForceOpt,
    InputOpt,
    JsonOpt,
    MaxCostOpt,
    MaxTasksOpt,
    NameTemplateOpt,
    NoValidateOpt,
    OutputDirOpt,
    PollIntervalOpt,
    TimeoutOpt,
)
from siray_cli.settings_keys import NAME_TEMPLATE


def rerun(
    ctx: typer.Context,
    what: Annotated[
        str,
        typer.Argument(
            help="A file siray saved (see `siray info`), or a task id from the history.",
            metavar="FILE|TASK_ID",
            show_default=False,
        ),
    ],
    input_items: InputOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Another model (the recorded inputs are checked against it).",
            show_default=False,
            autocompletion=complete_model,
        ),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", "-p", help="Another prompt.", show_default=False),
    ] = None,
    no_validate: NoValidateOpt = False,
    output_dir: OutputDirOpt = None,
    name_template: NameTemplateOpt = None,
    force: ForceOpt = False,
    timeout: TimeoutOpt = None,
    poll_interval: PollIntervalOpt = None,
    cancel_on_interrupt: CancelOnInterruptOpt = False,
    max_cost: MaxCostOpt = None,
    max_tasks: MaxTasksOpt = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> int:
    """Submit the request that made a file or task again, as a new task.

    The same provider, model, prompt and inputs, with -i, --model and --prompt on top (a new
    seed, say); then it waits and prints or downloads the outputs as `run` does. It always pays
    for a new task (as `run --new`), never follows an earlier one. Inputs that were local files
    are sent as the URLs they were uploaded to then: if those have expired, the task fails;
    give the file again with -i KEY=@FILE.
    """
    from siray_cli.commands._single import OneRun, output_directory, run_one
    from siray_cli.services.budget import budget_for
    from siray_cli.services.provenance import find, rerun_spec

    context = get_context(ctx, json_mode)
    session = context.session
    found = find(session, what)
    spec = rerun_spec(
        session,
        found,
        model=model,
        prompt=prompt,
        input_items=input_items or [],
        validate=not no_validate,
    )
    budget = budget_for(session, max_cost, max_tasks)  # checked before anything is paid for
    directory = output_directory(context, output_dir, dry_run)
    if dry_run:
        from siray_cli.commands._dry_run import dry_run_one

        return dry_run_one(context, spec, True)
    timeout, poll_interval = session.wait_options(timeout, poll_interval)
    template = session.settings.read(NAME_TEMPLATE, name_template)
    one = OneRun(
        directory, template, force, timeout, poll_interval, cancel_on_interrupt, True, budget
    )
    one.notice = f"rerun of task {found.task_id}: submitting a new task (paid again)"
    return run_one(context, spec, one)
