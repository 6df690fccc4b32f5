"""`siray run`: submit, wait with live progress, download the outputs (or, with --batch, many
tasks from a file)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands._context import get_context, submit_when_admitted, transfers_for
from siray_cli.commands._options import (
    DryRunOpt,
    ImageOpt,
    InlineOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    KindOpt,
    ModelArg,
    NewOpt,
    NoValidateOpt,
    OutputDirOpt,
    PollIntervalOpt,
    PromptArg,
    PromptFileOpt,
    PromptOpt,
    RunIdOpt,
    TimeoutOpt,
    WebhookOpt,
)
from siray_cli.errors import ExitCode, TaskCancelledError, TaskFailedError, UsageError
from siray_cli.settings_keys import MODEL, OUTPUT_DIR

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext
    from siray_cli.domain import Task
    from siray_cli.services.batch import BatchOptions, JobResult
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.requests import RequestSpec

BatchOpt = Annotated[
    str | None,
    typer.Option(
        "--batch",
        help="Run one job per line of FILE ('-' for stdin): JSON Lines "
        "({model, prompt, inputs, name}) or CSV with a header.",
        metavar="FILE",
        show_default=False,
    ),
]
BatchModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="With --batch: the model of lines that name none.", show_default=False
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, max=64, help="With --batch: tasks in flight.")
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="With --batch: skip lines whose task already "
        "succeeded, and rejoin those still running (from the history).",
    ),
]
ResubmitUncertainOpt = Annotated[
    bool,
    typer.Option(
        "--resubmit-uncertain",
        help="With --batch: submit again the lines whose earlier submit got no answer "
        "(it may have created a task: check first).",
    ),
]


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, slash, count = value.partition("/")
    if slash and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index), int(count)
    raise typer.BadParameter(f"{value!r} is not I/N with 1 <= I <= N (e.g. 2/4)")


ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="With --batch: run only shard I of N (e.g. 2/4), for a CI matrix of N jobs; a "
        "line's shard depends on its content alone, never on where it is in the file.",
        metavar="I/N",
        show_default=False,
    ),
]
ResumeFromOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--resume-from",
        help="With --batch: the `--json` results of an earlier attempt (repeatable), e.g. a CI "
        "re-run's on a fresh runner: their tasks are followed or fetched, not paid again; only "
        "lines with no task, or whose task failed, are submitted.",
        metavar="RESULTS",
        show_default=False,
    ),
]
ResubmitMissingOpt = Annotated[
    bool,
    typer.Option(
        "--resubmit-missing",
        help="With --resume-from: submit anew the lines whose task the server does not know "
        "(404; check first: the results may be of another host, where it was paid).",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")]
CancelOnInterruptOpt = Annotated[
    bool,
    typer.Option("--cancel-on-interrupt", help="On Ctrl-C, also cancel the task (if not started)."),
]


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
    webhook: WebhookOpt = None,
    output_dir: OutputDirOpt = None,
    force: ForceOpt = False,
    timeout: TimeoutOpt = None,
    poll_interval: PollIntervalOpt = None,
    cancel_on_interrupt: CancelOnInterruptOpt = False,
    new: NewOpt = False,
    batch: BatchOpt = None,
    model_opt: BatchModelOpt = None,
    concurrency: ConcurrencyOpt = 4,
    resume: ResumeOpt = False,
    resubmit_uncertain: ResubmitUncertainOpt = False,
    shard: ShardOpt = None,
    resume_from: ResumeFromOpt = None,
    resubmit_missing: ResubmitMissingOpt = False,
    run_id: RunIdOpt = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> int:
    """Submit a task, wait for it with live progress, and print (or download) its outputs.

    With --batch, many tasks from a file; exits 1 when any of them failed.
    """
    from siray_cli.services.batch import BatchOptions
    from siray_cli.services.requests import RequestSpec

    context = get_context(ctx, json_mode)
    session = context.session
    session.run_id = run_id
    if batch is not None:
        with _typed_records(context):
            single = [model, prompt, prompt_opt, prompt_file, input_items, input_json, image]
            if any(value for value in [*single, webhook]) or kind or cancel_on_interrupt or new:
                raise UsageError(
                    "--batch takes every job from its file",
                    hint="give the default model with --model, and inputs on each line",
                )
            timeout, poll_interval = session.wait_options(timeout, poll_interval)
            options = BatchOptions(
                source=batch,
                default_model=session.settings.read(MODEL, model_opt),
                concurrency=concurrency,
                directory=_directory(context, output_dir, dry_run),
                force=force,
                timeout=timeout,
                poll_interval=poll_interval,
                resume=resume,
                validate=not no_validate,
                inline=inline,
                resubmit_uncertain=resubmit_uncertain,
                shard=_shard(shard),
                resume_from=tuple(resume_from or ()),
                resubmit_missing=resubmit_missing,
            )
            options.resume = options.resume or bool(options.resume_from)
            return _run_batch(context, options, dry_run)
    if shard is not None:
        raise UsageError("--shard splits a batch", hint="use it with --batch FILE")
    if resume_from or resubmit_missing:
        raise UsageError("--resume-from takes a batch up", hint="use it with --batch FILE")
    timeout, poll_interval = session.wait_options(timeout, poll_interval)
    directory = _directory(context, output_dir, dry_run)
    model, prompt = session.model_and_prompt(model_opt or model, prompt)
    spec = RequestSpec(
        model=model,
        prompt=prompt,
        prompt_opt=prompt_opt,
        prompt_file=prompt_file,
        input_items=input_items or [],
        input_json=input_json,
        image=image,
        kind=kind.value if kind else None,
        validate=not no_validate,
        inline=inline,
        webhook=webhook,
    )
    if dry_run:
        from siray_cli.commands._dry_run import dry_run_one

        return dry_run_one(context, spec, new)
    return _run_one(
        context, spec, directory, force, timeout, poll_interval, cancel_on_interrupt, new
    )


def _directory(context: "AppContext", output_dir: Path | None, dry_run: bool) -> Path | None:
    """The output directory (-o, else the setting): made now, before anything is paid for; a
    --dry-run only checks that it could be."""
    from siray_cli.storage.downloads import check_output_dir, prepare_output_dir

    target = context.session.settings.read(OUTPUT_DIR, output_dir)
    if target is None:
        return None
    return (check_output_dir if dry_run else prepare_output_dir)(Path(target))


@contextmanager
def _typed_records(context: "AppContext") -> Iterator[None]:
    """With --json, a batch that ends in an error tells it as typed records on stdout, as its
    lines are: "interrupted" (the tasks left running, the command that resumes), "invalid" (a
    record per bad line) or "error"; the message for people still goes to stderr."""
    from siray_cli.errors import BadLinesError, BatchInterrupted, SirayError

    output = context.output
    try:
        yield
    except SirayError as exc:
        if not output.json_mode or exc.records is not None:
            raise
        if isinstance(exc, BatchInterrupted):
            exc.records = [
                {
                    "type": "interrupted",
                    "message": exc.message,
                    "task_ids": exc.task_ids,
                    "unanswered": exc.unanswered,
                    "resume": exc.resume,
                }
            ]
        elif isinstance(exc, BadLinesError):
            exc.records = [{"type": "invalid", "line": n, "error": why} for n, why in exc.lines]
        elif isinstance(exc, UsageError):
            exc.records = [{"type": "invalid", "line": None, "error": exc.message}]
        else:
            exc.records = [{"type": "error", "line": None, "error": output.error_object(exc)}]
        raise


def _run_one(
    context: "AppContext",
    spec: "RequestSpec",
    directory: Path | None,
    force: bool,
    timeout: float,
    poll_interval: float | None,
    cancel_on_interrupt: bool,
    new: bool,
) -> int:
    from siray_cli.progress import task_display
    from siray_cli.services.handle import wait_until_ended
    from siray_cli.services.outputs import Downloads
    from siray_cli.services.requests import build_request

    session, output = context.session, context.output
    with session.providers() as providers:
        provider = providers.current
        request = build_request(session, provider, spec, transfers_for(output))
        handle = submit_when_admitted(
            context, provider, request, patience=timeout or None, destination=directory, new=new
        )
        try:
            final = wait_until_ended(
                [handle],
                task_display(output, [handle.task_id], _since(handle)),
                timeout=timeout,
                poll_interval=poll_interval,
                read_timeout=session.read_timeout,
                cancel_on_interrupt=cancel_on_interrupt,
                notify=session.notices.always,
            )[handle.task_id]
        except KeyboardInterrupt:  # before the wait began (the display was being made)
            from siray_cli import signals
            from siray_cli.errors import Interrupted

            raise Interrupted(
                f"{signals.name()} once the task was submitted; {handle.task_id} keeps running",
                hint=handle.resume_hint(),
                task_id=handle.task_id,
            ) from None
    if not final.succeeded:
        handle.hand_over(final)  # the failure is the result, told below
    _raise_unless_succeeded(final)
    files: list[Path] = []
    if directory is not None:
        # a rejoined task's files are named after it: any already there are its own
        try:
            with Downloads(session) as downloads, transfers_for(output)() as display:
                files = downloads.save(
                    handle, final, directory, force=force or handle.rejoined, display=display
                )
        except KeyboardInterrupt:
            from shlex import quote

            from siray_cli import signals
            from siray_cli.errors import Interrupted

            raise Interrupted(
                f"{signals.name()} while downloading; task {handle.task_id} succeeded",
                hint=f"fetch its outputs with: siray download {handle.task_id} -o "
                f"{quote(str(directory))} (or run the same command again)",
                task_id=handle.task_id,
            ) from None
    if output.json_mode:
        output.result({**final.to_json(), "model": handle.model, "files": [str(p) for p in files]})
    else:
        output.data_lines([str(path) for path in files] or final.urls)
    handle.hand_over(final, directory)
    return ExitCode.OK


def _since(handle: "TaskHandle") -> dict[str, float]:
    """A rejoined task's age counts from its submit, not from this run."""
    return {handle.task_id: handle.submitted_at} if handle.submitted_at else {}


def _raise_unless_succeeded(final: "Task") -> None:
    if final.succeeded:
        return
    if final.cancelled:
        raise TaskCancelledError(f"task {final.task_id} was cancelled", task_id=final.task_id)
    reason = final.fail_reason or "no reason given"
    raise TaskFailedError(
        f"task {final.task_id} ended {final.status}: {reason}", task_id=final.task_id
    )


def _run_batch(context: "AppContext", options: "BatchOptions", dry_run: bool) -> int:
    from siray_cli.progress import BatchDisplay
    from siray_cli.services.batch import dry_run_batch, label, run_batch

    session, output = context.session, context.output
    if dry_run:
        from siray_cli.commands import _dry_run

        with session.providers() as providers:
            _dry_run.show(output, dry_run_batch(session, providers, options), batch=True)
        return ExitCode.OK

    def show(result: "JobResult") -> None:
        if output.json_mode or not output.stdout_is_tty:
            output.result(result.to_json())
            return
        shown = (
            result.files or result.outputs or ([result.error["message"]] if result.error else [])
        )
        output.data(
            f"{label(result.line, result.name)}\t{result.task_id or '-'}\t{result.status}\t"
            + " ".join(shown)
        )

    with session.providers() as providers:
        outcome = run_batch(
            session,
            providers,
            options,
            lambda total: BatchDisplay(output, total),
            transfers_for(output),
            show,
            output.result if output.json_mode else None,
        )
    failed, skipped = outcome.failed, outcome.skipped
    output.always(
        f"batch: {len(outcome.results) - len(failed)} succeeded"
        + (f" ({skipped} already, skipped)" if skipped else "")
        + f", {len(failed)} failed, of {outcome.total} in {outcome.seconds:.1f}s"
    )
    waited_out = [r for r in failed if r.error and r.error.get("type") == "timeout"]
    if waited_out:  # still running on the server: a rerun follows them instead of paying again
        count = len(waited_out)
        tasks = "them" if count > 1 else "it"
        output.always(
            f"{count} task{'s' if count > 1 else ''} may still finish: "
            + options.resume_hint(session.command_prefix(), tasks)
        )
    if output.json_mode:
        output.result(outcome.summary())
    return ExitCode.TASK_FAILED if failed else ExitCode.OK
