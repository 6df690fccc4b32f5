"""`siray run`: submit, wait with live progress, download the outputs (or, with --batch, many
tasks from a file)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import (
    BatchModelOpt,
    CancelOnInterruptOpt,
    DryRunOpt,
    ForceOpt,
    ImageOpt,
    InlineOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    KindOpt,
    MaxCostOpt,
    MaxTasksOpt,
    ModelArg,
    NameTemplateOpt,
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
from siray_cli.errors import (
    BatchInterrupted,
    ExitCode,
    SirayError,
    UsageError,
)
from siray_cli.settings_keys import MODEL, NAME_TEMPLATE, PREVIEW

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext
    from siray_cli.commands._single import OneRun
    from siray_cli.services.batch import BatchOptions, BatchOutcome, JobResult
    from siray_cli.services.reports import Report
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
JunitOpt = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        help="Write a JUnit XML report to FILE: a test case per batch line (or for the task), "
        "failures with their reasons and task ids; written when a batch is interrupted too.",
        metavar="FILE",
        dir_okay=False,
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
GalleryOpt = Annotated[
    bool,
    typer.Option(
        "--gallery",
        help="With --batch and -o DIR: write DIR/index.html, a page of the lines that ended "
        "(also when the batch is interrupted); see `siray gallery`.",
    ),
]
PreviewOpt = Annotated[
    bool | None,
    typer.Option(
        "--preview/--no-preview",
        help="Draw the images under their paths, on a terminal that can (Kitty's protocol or "
        "Sixel), or never. Default: the `preview` setting, auto: a known terminal, not in CI, "
        "nor with --json or -q.",
        show_default=False,
    ),
]
RunOpenOpt = Annotated[
    bool,
    typer.Option(
        "--open",
        help="Open the outputs in the system's viewer: the saved files (-o), else the URLs; "
        "only from a terminal, unless SIRAY_OPEN=always.",
    ),
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
    name_template: NameTemplateOpt = None,
    force: ForceOpt = False,
    preview: PreviewOpt = None,
    open_outputs: RunOpenOpt = False,
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
    gallery: GalleryOpt = False,
    junit: JunitOpt = None,
    max_cost: MaxCostOpt = None,
    max_tasks: MaxTasksOpt = None,
    resume_from: ResumeFromOpt = None,
    resubmit_missing: ResubmitMissingOpt = False,
    run_id: RunIdOpt = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> int:
    """Submit a task, wait for it, and print or download its outputs.

    The wait shows live progress on a terminal.

    With --batch, many tasks from a file; exits 1 when any of them failed.
    """
    from siray_cli.commands._single import output_directory
    from siray_cli.services.budget import budget_for
    from siray_cli.services.requests import RequestSpec

    context = get_context(ctx, json_mode)
    session = context.session
    budget = budget_for(session, max_cost, max_tasks)
    template = session.settings.read(NAME_TEMPLATE, name_template)
    if batch is not None and (open_outputs or preview is not None):
        raise UsageError(
            "--open and --preview are for one task", hint="a batch's page: --gallery with -o DIR"
        )
    if open_outputs:
        from siray_cli.commands._launch import check_can_open

        check_can_open(context)
    if junit is not None:
        if dry_run:
            raise UsageError("--junit reports what ran; a --dry-run runs nothing")
        from siray_cli.storage.artifacts import check_report_path

        check_report_path(junit, "--junit")
    session.run_id = run_id
    if batch is not None:
        from siray_cli.services.batch import BatchOptions  # a batch's (not one run's) import

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
                directory=output_directory(context, output_dir, dry_run),
                force=force,
                timeout=timeout,
                poll_interval=poll_interval,
                resume=resume,
                validate=not no_validate,
                inline=inline,
                resubmit_uncertain=resubmit_uncertain,
                shard=_shard(shard),
                name_template=template,
                budget=budget,
                resume_from=tuple(resume_from or ()),
                resubmit_missing=resubmit_missing,
            )
            options.resume = options.resume or bool(options.resume_from)
            if gallery and options.directory is None:
                raise UsageError("--gallery writes DIR/index.html: give -o DIR")
            return _run_batch(context, options, dry_run, junit, gallery)
    if shard is not None:
        raise UsageError("--shard splits a batch", hint="use it with --batch FILE")
    if gallery:
        raise UsageError("--gallery is for --batch", hint="for any tasks: siray gallery")
    if resume_from or resubmit_missing:
        raise UsageError("--resume-from takes a batch up", hint="use it with --batch FILE")
    timeout, poll_interval = session.wait_options(timeout, poll_interval)
    directory = output_directory(context, output_dir, dry_run)
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
    from siray_cli.commands._single import OneRun, run_one

    one = OneRun(
        directory, template, force, timeout, poll_interval, cancel_on_interrupt, new, budget
    )
    one.preview = session.settings.read(
        PREVIEW, None if preview is None else "always" if preview else "never"
    )
    one.open = open_outputs
    if not _reporting(context, junit):
        return run_one(context, spec, one)
    return _run_one_reported(context, spec, one, junit)


def _reporting(context: "AppContext", junit: Path | None) -> bool:
    """Whether the run ends with reports: a --junit file, or GitHub Actions' summary."""
    from siray_cli.services.reports import github_actions

    return junit is not None or github_actions(context.session.environment.variables)


def _publish(
    context: "AppContext", junit: Path | None, report: "Callable[[Callable[[str], str]], Report]"
) -> None:
    """Write the reports (`report`, given the scrubbing of secrets), and print the workflow
    commands on stderr (the runner reads them there; stdout carries only data)."""
    from siray_cli.services.reports import publish

    output = context.output
    annotations, problems = publish(
        report(output.scrub), junit, context.session.environment.variables
    )
    for line in annotations:
        output.always(line)
    for problem in problems:
        output.warn(problem)


def _run_one_reported(
    context: "AppContext", spec: "RequestSpec", options: "OneRun", junit: Path | None
) -> int:
    """`run_one`, then its report, whichever way it ended."""
    import time

    from siray_cli.commands._single import run_one
    from siray_cli.services.reports import run_report

    started, began = time.time(), time.monotonic()

    def report(error: SirayError | None) -> None:
        _publish(
            context,
            junit,
            lambda scrub: run_report(
                spec.model or "",
                started=started,
                seconds=time.monotonic() - began,
                task_id=options.task_id or (error.task_id if error else None),
                task=options.final,
                files=options.files,
                error=(error.error_type, error.message) if error else None,
                scrub=scrub,
            ),
        )

    try:
        code = run_one(context, spec, options)
    except SirayError as exc:
        report(exc)
        raise
    report(None)
    return code


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


def _run_batch(
    context: "AppContext",
    options: "BatchOptions",
    dry_run: bool,
    junit: Path | None,
    gallery: bool = False,
) -> int:
    from siray_cli.progress import BatchDisplay
    from siray_cli.services.batch import BatchOutcome, dry_run_batch, label, run_batch

    session, output = context.session, context.output
    if dry_run:
        from siray_cli.commands import _dry_run

        with session.providers() as providers:
            _dry_run.show(output, dry_run_batch(session, providers, options), batch=True)
        return ExitCode.OK

    ended: list[dict[str, object]] = []

    def show(result: "JobResult") -> None:
        ended.append(result.to_json())
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

    reporting = _reporting(context, junit)
    with session.providers() as providers, _gallery_at_end(context, options, ended, gallery):
        try:
            outcome = run_batch(
                session,
                providers,
                options,
                lambda total: BatchDisplay(output, total),
                transfers_for(output),
                show,
                output.result if output.json_mode else None,
            )
        except BatchInterrupted as stopped:  # reported with what ended: the rest did not run
            if reporting and isinstance(stopped.outcome, BatchOutcome):
                _report_batch(context, junit, options.source, stopped.outcome)
            raise
    if reporting:
        _report_batch(context, junit, options.source, outcome)
    failed, skipped = outcome.failed, outcome.skipped
    unsent = [r for r in failed if r.status == "NOT_SENT"]
    output.always(
        f"batch: {len(outcome.results) - len(failed)} succeeded"
        + (f" ({skipped} already, skipped)" if skipped else "")
        + f", {len(failed) - len(unsent)} failed"
        + (f", {len(unsent)} not sent (over the cap)" if unsent else "")
        + f", of {outcome.total} in {outcome.seconds:.1f}s"
    )
    waited_out = [r for r in failed if r.error and r.error.get("type") == "timeout"]
    if waited_out:  # still running on the server: a rerun follows them instead of paying again
        count = len(waited_out)
        tasks = "them" if count > 1 else "it"
        output.always(
            f"{count} task{'s' if count > 1 else ''} may still finish: "
            + options.resume_hint(session.command_prefix(), tasks)
        )
    if unsent and options.budget is not None:  # nothing paid for them: a higher cap sends them
        from dataclasses import replace

        count = len(unsent)
        again = replace(options, budget=None).rerun_command(session.command_prefix())
        output.always(
            f"{count} line{'s' if count > 1 else ''} not sent, over the cap "
            f"({options.budget.summary()}); send {'them' if count > 1 else 'it'} with a higher "
            f"cap (the lines sent are followed, never paid again): {again} --max-cost AMOUNT"
        )
    if output.json_mode:
        output.result(outcome.summary())
    return ExitCode.TASK_FAILED if failed else ExitCode.OK


@contextmanager
def _gallery_at_end(
    context: "AppContext", options: "BatchOptions", ended: list[dict[str, object]], wanted: bool
) -> Iterator[None]:
    """--gallery: DIR/index.html of the lines that ended, once the batch stops, however."""
    try:
        yield
    finally:
        if wanted and options.directory is not None and ended:
            from siray_cli.errors import SirayError
            from siray_cli.services.gallery import batch_page

            output = context.output
            try:
                page = batch_page(context.session, ended, options.directory, output.scrub)
                output.info(f"gallery: {page}")
            except SirayError as exc:  # the batch's own ending (an error, a signal) still counts
                output.warn(f"no gallery: {exc.message}")


def _report_batch(
    context: "AppContext", junit: Path | None, source: str, outcome: "BatchOutcome"
) -> None:
    from siray_cli.services.reports import batch_report

    _publish(context, junit, lambda scrub: batch_report(outcome, source, scrub))
