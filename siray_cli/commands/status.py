"""`siray status`: the state of one or more tasks, optionally waiting until they end."""

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import (
    JsonOpt,
    NameTemplateOpt,
    OpenOpt,
    PollIntervalOpt,
    SomeTaskIdsArg,
    TimeoutOpt,
)
from siray_cli.errors import ExitCode, SirayError, exit_code_for
from siray_cli.services.tasks import saved_files

if TYPE_CHECKING:
    from collections.abc import Sequence

    from siray_cli.commands._context import AppContext
    from siray_cli.domain import Task
    from siray_cli.names import NameTemplate
    from siray_cli.output import Output
    from siray_cli.services.handle import TaskHandle, TaskWatcher
    from siray_cli.services.session import Providers, Session


def render_task(output: "Output", status: "Task", files: "Sequence[str]" = ()) -> None:
    """JSON: one object per line; terminal: a short block; pipe: one tab-separated line.
    `files`: where its outputs were saved (the last column on a pipe)."""
    from siray_cli.output import duration, sanitize

    if output.json_mode:
        output.result({**status.to_json(), "files": list(files)})
        return
    progress = "-" if status.progress is None else f"{status.progress}%"
    if not output.stdout_is_tty:
        outputs = " ".join(status.urls) or "-"
        reason = " ".join(status.fail_reason.split()) or "-"
        fields = [status.task_id, status.status, progress, outputs, reason, " ".join(files) or "-"]
        output.table([fields], ["task", "status", "progress", "outputs", "fail reason", "files"])
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
    lines.extend(f"  output: {url}" for url in status.urls)
    lines.extend(f"  file: {path}" for path in files)
    output.data_lines(sanitize(line) for line in lines)


def status(
    ctx: typer.Context,
    task_ids: SomeTaskIdsArg = None,
    wait: bool = typer.Option(False, "--wait", "-w", help="Poll until every task has ended."),
    all_pending: bool = typer.Option(
        False, "--all-pending", help="Every task in the history that has not ended."
    ),
    timeout: TimeoutOpt = None,
    poll_interval: PollIntervalOpt = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Also download the outputs of the tasks that succeeded into this directory.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    name_template: NameTemplateOpt = None,
    open_saved: OpenOpt = False,
    json_mode: JsonOpt = False,
) -> int:
    """Show the state of tasks: progress, outputs, failure reason.

    Each task's status, progress, outputs, failure reason and timings.

    With --wait, exits 1 when any task failed or was cancelled. With -o, downloads the outputs
    of those that succeeded (as `siray download` does).
    """
    from siray_cli.services.tasks import tasks_to_show

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    if open_saved:
        from siray_cli.commands._launch import check_can_open
        from siray_cli.errors import UsageError

        if output_dir is None:
            raise UsageError("--open opens what -o saves", hint="siray open TASK_ID")
        check_can_open(context)
    ids = tasks_to_show(session, task_ids or [], all_pending)
    if not ids:
        output.info("no pending task in the history")
        return ExitCode.OK
    directory, template = None, None
    if output_dir is not None:
        from siray_cli.settings_keys import NAME_TEMPLATE
        from siray_cli.storage.downloads import prepare_output_dir

        directory = prepare_output_dir(output_dir)
        template = session.settings.read(NAME_TEMPLATE, name_template)
    worst: int = ExitCode.OK
    seen: list[tuple[TaskHandle, Task]] = []
    saved: dict[str, list[Path]] = {}  # tasks whose files are in `directory`: those files
    with session.providers() as providers:
        handles = [providers.handle(task_id) for task_id in ids]
        if wait:
            timeout, poll_interval = session.wait_options(timeout, poll_interval)
            worst = _wait(
                context,
                providers,
                handles,
                (directory, template),
                timeout,
                poll_interval,
                seen,
                saved,
            )
        else:
            worst = _look(context, providers, handles, (directory, template), seen, saved)
    for handle, task in seen:
        if wait and task.is_terminal:  # seen to its end (and saved, with -o): handed over,
            # if that is where its command asked
            handle.hand_over(task, directory if handle.task_id in saved else None)
    if open_saved:
        from siray_cli.commands._launch import open_in_viewer

        open_in_viewer(context, [path for files in saved.values() for path in files])
    return worst


def _look(
    context: "AppContext",
    providers: "Providers",
    handles: "list[TaskHandle]",
    into: "tuple[Path | None, NameTemplate | None]",
    seen: "list[tuple[TaskHandle, Task]]",
    saved: dict[str, list[Path]],
) -> int:
    """`status` without --wait: one look at each task, its files fetched (with -o), then each
    shown with the files it has now; adds to `seen` and `saved`, and returns the exit code."""
    from siray_cli.services.tasks import look_up

    session, output = context.session, context.output
    worst: int = ExitCode.OK
    for handle in handles:
        try:
            seen.append((handle, look_up(providers, handle)))
        except SirayError as exc:
            output.report(exc, handle.task_id)
            worst = worst or exit_code_for(exc)
    directory, template = into
    if directory is not None:
        from siray_cli.services.outputs import Downloads

        # each file is told as it lands
        with Downloads(session, template) as downloads, transfers_for(output)() as transfers:
            for handle, task in seen:
                if not task.succeeded:
                    continue
                try:
                    files = downloads.save(handle, task, directory, force=False, display=transfers)
                except SirayError as exc:  # told on stderr; the task's own document follows
                    output.report(exc, handle.task_id, document=False)
                    worst = worst or exit_code_for(exc)
                    continue
                saved[handle.task_id] = files
    for handle, task in seen:
        render_task(output, task, _shown(saved, handle, directory))
    return worst


def _shown(saved: dict[str, list[Path]], handle: "TaskHandle", directory: Path | None) -> list[str]:
    """The files to show for a task: those just saved, else those saved before and still
    there; with -o, only those in that directory."""
    files = [str(path) for path in saved.get(handle.task_id, [])] or saved_files(handle)
    if directory is None:
        return files
    return [path for path in files if Path(path).parent.resolve() == directory.resolve()]


def _wait(
    context: "AppContext",
    providers: "Providers",
    handles: "list[TaskHandle]",
    into: "tuple[Path | None, NameTemplate | None]",
    timeout: float,
    poll_interval: float | None,
    seen: "list[tuple[TaskHandle, Task]]",
    saved: dict[str, list[Path]],
) -> int:
    """`status --wait`: every task waited for (one whose server is gone reported, the others
    still waited for), each task's files fetched into `directory` as soon as it ends; adds to
    `seen` and `saved`, and returns the exit code. `into`: the directory (if any) and the
    name template."""
    from siray_cli.progress import task_display
    from siray_cli.services.handle import wait_until_ended

    session, output = context.session, context.output
    looked: dict[str, Task] = {}
    worst: int = ExitCode.OK
    if len(handles) > 1:  # a task whose server is gone must not keep the others waiting
        handles, looked, worst = _answering(providers, output, handles)
        if not handles:
            return worst
    with contextlib.ExitStack() as stack:
        saving = None
        if into[0] is not None:
            saving = _Saving(session, stack, into, {h.task_id: h for h in handles}, saved)
        finals = wait_until_ended(
            handles,
            task_display(
                output,
                [handle.task_id for handle in handles],
                {h.task_id: h.submitted_at for h in handles if h.submitted_at},
            ),
            timeout=timeout,
            poll_interval=poll_interval,
            read_timeout=session.read_timeout,
            seen=looked,
            on_end=saving,
        )
    for exc in saving.failures if saving is not None else []:
        output.report(exc, document=False)  # told on stderr; each task's document follows
        worst = worst or exit_code_for(exc)
    for handle in handles:
        final = finals[handle.task_id]
        render_task(output, final, _shown(saved, handle, into[0]))
        seen.append((handle, final))
        if not final.succeeded:
            worst = worst or ExitCode.TASK_FAILED
    return worst


def _answering(
    providers: "Providers", output: "Output", handles: "list[TaskHandle]"
) -> "tuple[list[TaskHandle], dict[str, Task], int]":
    """The tasks whose server answers a first look (the others reported, each with where it was
    created), those looks (the wait starts from them), and the exit code the reports call for."""
    from siray_cli.errors import NetworkError
    from siray_cli.services.tasks import look_up

    answering: list[TaskHandle] = []
    looked: dict[str, Task] = {}
    worst: int = ExitCode.OK
    for handle in handles:
        try:
            looked[handle.task_id] = look_up(providers, handle)
        except NetworkError as exc:
            output.report(exc, handle.task_id)
            worst = worst or exit_code_for(exc)
            continue
        answering.append(handle)
    return answering, looked, worst


class _Saving:
    """`status --wait -o DIR`: a task's files are fetched as soon as it ends, while the others
    are still waited for; a failed download is told at the end, and the wait goes on."""

    def __init__(
        self,
        session: "Session",
        stack: contextlib.ExitStack,
        into: "tuple[Path | None, NameTemplate | None]",
        handles: "dict[str, TaskHandle]",
        saved: dict[str, list[Path]],
    ) -> None:
        from siray_cli.services.outputs import Downloads

        directory, template = into
        assert directory is not None
        self.downloads = stack.enter_context(Downloads(session, template))
        self.directory, self.handles, self.saved = directory, handles, saved
        self.failures: list[SirayError] = []

    def __call__(self, task: "Task", watcher: "TaskWatcher") -> None:
        if not task.succeeded:
            return
        try:
            files = self.downloads.save(
                self.handles[task.task_id], task, self.directory, force=False
            )
        except SirayError as exc:
            self.failures.append(exc)
            return
        self.saved[task.task_id] = files
        for path in files:
            watcher.note(f"saved {path}")
