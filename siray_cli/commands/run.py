"""`siray run`: submit, wait with live progress, download the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siray_cli.api.errors import UsageError
from siray_cli.api.models import TaskStatus
from siray_cli.commands.common import (
    AppState,
    ImageOpt,
    InlineOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    KindOpt,
    ModelArg,
    NoValidateOpt,
    OutputDirOpt,
    PollIntervalOpt,
    PromptArg,
    PromptFileOpt,
    PromptOpt,
    TimeoutOpt,
    get_state,
    status_document,
    wait_and_show,
)
from siray_cli.commands.generate import build_request
from siray_cli.errors import DownloadError, ExitCode, TaskCancelledError, TaskFailedError


def run(
    ctx: typer.Context,
    model: ModelArg = None,
    prompt: PromptArg = None,
    prompt_opt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    input_items: InputOpt = None,
    input_json: InputJsonOpt = None,
    image: ImageOpt = None,
    kind: KindOpt = None,
    no_validate: NoValidateOpt = False,
    inline: InlineOpt = False,
    output_dir: OutputDirOpt = None,
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
    timeout: TimeoutOpt = None,
    poll_interval: PollIntervalOpt = None,
    cancel_on_interrupt: bool = typer.Option(
        False, "--cancel-on-interrupt", help="On Ctrl-C, also cancel the task (if not started)."
    ),
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="Run one job per line of FILE ('-' for stdin): JSON Lines "
            "({model, prompt, inputs, name}) or CSV with a header.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    model_opt: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="With --batch: the model of lines that name none.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="With --batch: tasks in flight.")
    ] = 4,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="With --batch: skip lines whose task already "
            "succeeded, and rejoin those still running (from the history).",
        ),
    ] = False,
    json_mode: JsonOpt = False,
) -> int:
    """Submit a task, wait for it with live progress, and print (or download) its outputs.

    With --batch, many tasks from a file; exits 1 when any of them failed.
    """
    from siray_cli.storage.downloads import prepare_output_dir

    state = get_state(ctx, json_mode)
    output = state.output
    timeout, poll_interval = state.wait_options(timeout, poll_interval)
    target = state.option("output_dir", output_dir)
    directory = prepare_output_dir(Path(target)) if target is not None else None
    if batch is not None:
        single = [model, prompt, prompt_opt, prompt_file, input_items, input_json, image]
        if any(value for value in single) or kind or cancel_on_interrupt:
            raise UsageError(
                "--batch takes every job from its file",
                hint="give the default model with --model, and inputs on each line",
            )
        from siray_cli.commands.batch import run_batch

        with state.client() as client:
            return run_batch(
                state,
                client,
                source=batch,
                default_model=state.option("model", model_opt),
                concurrency=concurrency,
                directory=directory,
                force=force,
                timeout=timeout,
                poll_interval=poll_interval,
                resume=resume,
                validate=not no_validate,
                inline=inline,
                json_mode=json_mode,
            )
    model, prompt = state.model_and_prompt(model_opt or model, prompt)
    with state.client() as client:
        request = build_request(
            state,
            client,
            model=model,
            prompt=prompt,
            prompt_opt=prompt_opt,
            prompt_file=prompt_file,
            input_items=input_items,
            input_json=input_json,
            image=image,
            kind=kind.value if kind else None,
            validate=not no_validate,
            inline=inline,
        )
        task = state.submit(client, request.kind, request.body)
        final = wait_and_show(
            state,
            client,
            [task.task_id],
            timeout=timeout,
            poll_interval=poll_interval,
            cancel_on_interrupt=cancel_on_interrupt,
        )[task.task_id]
    _raise_unless_succeeded(final)
    files = _download(state, final, directory, force) if directory is not None else []
    if files:
        state.history.set_files(final.task_id, [str(path) for path in files])
    if json_mode:
        output.emit_json(
            status_document(final, model=task.model, files=[str(path) for path in files])
        )
    elif files:
        output.data_lines(str(path) for path in files)
    else:
        output.data_lines(final.outputs)
    return ExitCode.OK


def _raise_unless_succeeded(final: TaskStatus) -> None:
    if final.succeeded:
        return
    if final.cancelled:
        raise TaskCancelledError(f"task {final.task_id} was cancelled", task_id=final.task_id)
    reason = final.fail_reason or "no reason given"
    raise TaskFailedError(
        f"task {final.task_id} ended {final.status}: {reason}", task_id=final.task_id
    )


def _download(state: AppState, final: TaskStatus, directory: Path, force: bool) -> list[Path]:
    from siray_cli.api.client import build_http_client, timeouts
    from siray_cli.progress import TransferDisplay
    from siray_cli.storage.downloads import download_one

    output = state.output
    if not final.outputs:
        output.warn(f"task {final.task_id} succeeded but listed no outputs")
        return []
    paths: list[Path] = []
    trace = output.trace if output.debug_enabled else None
    try:
        with (
            build_http_client(
                trace=trace,
                backoff=state.settings.backoff,
                expect_json=False,
                timeout=timeouts(state.read_timeout),
            ) as http,
            TransferDisplay(output) as display,
        ):
            for index, url in enumerate(final.outputs, start=1):
                row = display.row()
                path = download_one(
                    http,
                    url,
                    directory,
                    final.task_id,
                    index,
                    force=force,
                    on_start=row.start,
                    on_bytes=row.advance,
                )
                row.done(f"saved {path}")
                paths.append(path)
    except DownloadError as exc:
        for url in final.outputs:
            output.always(f"output of {final.task_id}: {url}")
        for path in paths:
            output.always(f"already saved: {path}")
        exc.task_id = final.task_id
        exc.hint = exc.hint or (
            f"the task succeeded; `siray status {final.task_id}` lists its outputs again"
        )
        raise
    return paths
