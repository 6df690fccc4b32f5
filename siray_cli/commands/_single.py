"""The single-task path `run` and `rerun` share: the output directory made before anything is
paid for, then submit (through the Ledger), wait with live progress, download or print, hand
over. A command imports it when it runs (never for its --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from siray_cli.commands._context import submit_when_admitted, transfers_for
from siray_cli.errors import ExitCode, TaskCancelledError, TaskFailedError
from siray_cli.settings_keys import OUTPUT_DIR

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext
    from siray_cli.domain import Task
    from siray_cli.names import NameTemplate
    from siray_cli.services.budget import Budget
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.requests import RequestSpec


@dataclass
class OneRun:
    """What `run` (or `rerun`) does with its one task, and what became of it (for its report)."""

    directory: Path | None
    template: NameTemplate | None
    force: bool
    timeout: float
    poll_interval: float | None
    cancel_on_interrupt: bool
    new: bool
    budget: Budget | None = None
    preview: str | None = None  # the preview setting: auto, always or never
    open: bool = False  # --open
    task_id: str | None = None
    final: Task | None = None
    files: list[Path] = field(default_factory=list)
    notice: str | None = None  # said once the request is checked, just before it is submitted


def output_directory(context: AppContext, output_dir: Path | None, dry_run: bool) -> Path | None:
    """The output directory (-o, else the setting): made now, before anything is paid for; a
    --dry-run only checks that it could be."""
    from siray_cli.storage.downloads import check_output_dir, prepare_output_dir

    target = context.session.settings.read(OUTPUT_DIR, output_dir)
    if target is None:
        return None
    return (check_output_dir if dry_run else prepare_output_dir)(Path(target))


def run_one(context: AppContext, spec: RequestSpec, options: OneRun) -> int:
    """The one task of `run` or `rerun`: built, submitted through the Ledger, waited for,
    its outputs printed or downloaded, handed over."""
    from siray_cli.progress import task_display
    from siray_cli.services.handle import wait_until_ended
    from siray_cli.services.outputs import Downloads
    from siray_cli.services.requests import build_request

    session, output = context.session, context.output
    directory, timeout = options.directory, options.timeout
    with session.providers() as providers:
        provider = providers.current
        request = build_request(session, provider, spec, transfers_for(output))
        if options.notice is not None:
            output.always(options.notice)
        handle = submit_when_admitted(
            context,
            provider,
            request,
            patience=timeout or None,
            budget=options.budget,
            destination=directory,
            new=options.new,
        )
        options.task_id = handle.task_id
        try:
            final = wait_until_ended(
                [handle],
                task_display(output, [handle.task_id], _since(handle)),
                timeout=timeout,
                poll_interval=options.poll_interval,
                read_timeout=session.read_timeout,
                cancel_on_interrupt=options.cancel_on_interrupt,
                notify=session.notices.always,
            )[handle.task_id]
            options.final = final
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
        # a rejoined task's files may be there already (saved by a hint followed, or by the
        # run stopped before it handed over): kept as they are, never overwritten
        try:
            with (
                Downloads(session, options.template) as downloads,
                transfers_for(output)() as display,
            ):
                files = downloads.save(
                    handle,
                    final,
                    directory,
                    force=options.force,
                    keep=handle.rejoined,
                    display=display,
                )
            options.files = files
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
    from siray_cli.commands._preview import show_outputs

    show_outputs(context, final, files, options.preview or "never")
    handle.hand_over(final, directory)
    if options.open:
        from siray_cli.commands._launch import open_in_viewer

        open_in_viewer(context, files or final.urls)
    return ExitCode.OK


def _since(handle: TaskHandle) -> dict[str, float]:
    """A rejoined task's age counts from its submit, not from this run."""
    return {handle.task_id: handle.submitted_at} if handle.submitted_at else {}


def _raise_unless_succeeded(final: Task) -> None:
    if final.succeeded:
        return
    if final.cancelled:
        raise TaskCancelledError(f"task {final.task_id} was cancelled", task_id=final.task_id)
    reason = final.fail_reason or "no reason given"
    raise TaskFailedError(
        f"task {final.task_id} ended {final.status}: {reason}", task_id=final.task_id
    )
