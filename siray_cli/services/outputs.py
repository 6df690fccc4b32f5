"""Fetching a finished task's outputs: each downloaded atomically (temporary file, size checked,
then linked into place), never over an existing file unless forced, and recorded in history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from siray_cli.errors import DownloadError

if TYPE_CHECKING:
    import httpx

    from siray_cli.domain import Task
    from siray_cli.services.session import Providers, Session
    from siray_cli.services.uploads import TransferProgress


def download_client(session: Session) -> httpx.Client:
    """An HTTP client for output files: redirects followed, bodies checked by the download."""
    from siray_cli.transport import build_http_client, timeouts

    return build_http_client(
        trace=session.notices.trace if session.notices.debug else None,
        backoff=session.backoff,
        expect_json=False,
        timeout=timeouts(session.read_timeout),
    )


def output_stems(name: str | None, count: int) -> list[str | None]:
    """File names (without extension) for a task's outputs: the job's name when it has one
    (`name`, or `name_1`, `name_2`... for several), else the default `<task_id>_<n>`."""
    if not name:
        return [None] * count
    return [name] if count == 1 else [f"{name}_{index}" for index in range(1, count + 1)]


def download_outputs(
    session: Session,
    task: Task,
    directory: Path,
    *,
    force: bool,
    display: TransferProgress | None = None,
    client: httpx.Client | None = None,
    name: str | None = None,
    tell_on_failure: bool = True,
) -> list[Path]:
    """Download every output of a task that succeeded; the paths are recorded in the history.

    On a failed download the outputs' URLs and the files already saved are told, so nothing the
    task made is lost."""
    from siray_cli.storage.downloads import download_one

    if not task.outputs:
        session.notices.warn(f"task {task.task_id} succeeded but listed no outputs")
        return []
    paths: list[Path] = []
    own = client is None
    http = download_client(session) if client is None else client
    try:
        for index, (url, stem) in enumerate(
            zip(task.urls, output_stems(name, len(task.urls)), strict=True), start=1
        ):
            row = display.row() if display is not None else None
            path = download_one(
                http,
                url,
                directory,
                task.task_id,
                index,
                force=force,
                stem=stem,
                on_start=row.start if row is not None else None,
                on_bytes=row.advance if row is not None else None,
                max_bytes=int(session.number("download_max_size")),
                stall_window=session.read_timeout,
            )
            if row is not None:
                row.done(f"saved {path}")
            paths.append(path)
    except DownloadError as exc:
        if tell_on_failure:
            for url in task.urls:
                session.notices.always(f"output of {task.task_id}: {url}")
            for path in paths:
                session.notices.always(f"already saved: {path}")
        exc.task_id = task.task_id
        exc.hint = exc.hint or (
            f"the task succeeded; `siray status {task.task_id}` lists its outputs again"
        )
        raise
    finally:
        if own:
            http.close()
    # absolute: the history is read from any directory later
    session.history.set_files(task.task_id, [str(path.resolve()) for path in paths])
    return paths


def fetch_outputs(
    session: Session,
    providers: Providers,
    task_id: str,
    directory: Path,
    *,
    force: bool,
    display: TransferProgress | None,
) -> tuple[Task, list[Path]]:
    """A finished task's outputs, fetched later (`siray download`): the task is looked up where
    it was created, recorded, and its outputs downloaded as `run -o` does."""
    from siray_cli.errors import TaskCancelledError, TaskFailedError, UsageError

    task = providers.for_task(task_id).get(task_id)
    session.history.update(task)
    if task.cancelled:
        raise TaskCancelledError(
            f"task {task_id} was cancelled: it has no outputs", task_id=task_id
        )
    if task.is_terminal and not task.succeeded:
        reason = task.fail_reason or "no reason given"
        raise TaskFailedError(f"task {task_id} ended {task.status}: {reason}", task_id=task_id)
    if not task.succeeded:
        raise UsageError(
            f"task {task_id} is {task.status}: it has no outputs yet",
            hint=f"wait for it with `siray status {task_id} --wait -o {directory}`",
            task_id=task_id,
        )
    return task, download_outputs(session, task, directory, force=force, display=display)
