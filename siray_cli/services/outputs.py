"""Fetching a finished task's outputs: each downloaded atomically (temporary file, size checked,
then linked into place), never over an existing file unless forced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING

from siray_cli.errors import DownloadError

if TYPE_CHECKING:
    import httpx

    from siray_cli.domain import Task
    from siray_cli.names import NameTemplate
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.session import Session
    from siray_cli.services.uploads import TransferProgress
    from siray_cli.transport import Trace


def download_client(*, read_timeout: float, backoff: float, trace: Trace | None) -> httpx.Client:
    """An HTTP client for output files: redirects followed, bodies checked by the download."""
    from siray_cli.transport import build_http_client, timeouts

    return build_http_client(
        trace=trace, backoff=backoff, expect_json=False, timeout=timeouts(read_timeout)
    )


Namer = Callable[[int, str], str]  # (n, extension such as ".png") -> the file's name


def today() -> str:
    """The `{date}` of a name template: the day the command started, local time."""
    import time

    return time.strftime("%Y-%m-%d")


def template_namer(
    template: NameTemplate,
    task: Task,
    *,
    date: str,
    name: str | None = None,
    line: int | None = None,
    model: str = "",
) -> Namer:
    """File names from a template for the outputs of `task`: `{name}` is the job's name (else
    the task id), `{line}` its line in the batch (else empty), `{date}` the day given."""
    several = len(task.urls) > 1

    def named(index: int, extension: str) -> str:
        values = {
            "task_id": task.task_id,
            "name": name or task.task_id,
            "n": str(index),
            "ext": extension.lstrip("."),
            "model": model,
            "line": "" if line is None else str(line),
            "date": date,
        }
        return template.file_name(values, several=several)

    return named


def output_stems(name: str | None, count: int) -> list[str | None]:
    """File names (without extension) for a task's outputs: the job's name when it has one
    (`name`, or `name_1`, `name_2`... for several), else the default `<task_id>_<n>`."""
    if not name:
        return [None] * count
    return [name] if count == 1 else [f"{name}_{index}" for index in range(1, count + 1)]


def download_all(
    task: Task,
    directory: Path,
    *,
    force: bool,
    max_bytes: int,
    stall_window: float,
    client: httpx.Client,
    display: TransferProgress | None = None,
    name: str | None = None,
    namer: Namer | None = None,
    on_failure: Callable[[str], None] | None = None,
    keep: bool | Callable[[Path], bool] = False,
    handle: TaskHandle | None = None,
) -> list[Path]:
    """Download every output of a task that succeeded, named by `namer` (a name template's),
    else after the job's `name`, else `<task_id>_<n>.<ext>`; a PNG carries the record of what
    made it (from `handle`: services.provenance). On a failed download `on_failure` is told the
    outputs' URLs and the files already saved, so nothing the task made is lost."""
    from functools import partial

    from siray_cli.services.provenance import embedded_record
    from siray_cli.storage.downloads import download_one

    paths: list[Path] = []
    try:
        for index, (url, stem) in enumerate(
            zip(task.urls, output_stems(name, len(task.urls)), strict=True), start=1
        ):
            row = display.row() if display is not None else None
            path = download_one(
                client,
                url,
                directory,
                task.task_id,
                index,
                force=force,
                keep=keep,
                stem=stem,
                file_name=partial(namer, index) if namer is not None else None,
                on_start=row.start if row is not None else None,
                on_bytes=row.advance if row is not None else None,
                max_bytes=max_bytes,
                stall_window=stall_window,
                record=embedded_record(handle, task, index) if handle is not None else None,
            )
            if row is not None:
                row.done(f"saved {path}")
            paths.append(path)
    except DownloadError as exc:
        if on_failure is not None:
            for url in task.urls:
                on_failure(f"output of {task.task_id}: {url}")
            for path in paths:
                on_failure(f"already saved: {path}")
        exc.task_id = task.task_id
        exc.hint = exc.hint or (
            f"the task succeeded; `siray status {task.task_id}` lists its outputs again"
        )
        raise
    return paths


class Downloads:
    """Saving tasks' outputs with the session's settings (size cap, stall window, retries), over
    one HTTP client made on first use and closed with this object."""

    def __init__(
        self, session: Session, template: NameTemplate | None = None, date: str | None = None
    ) -> None:
        self.session = session
        self.template = template  # --name-template, or the name_template setting
        self.date = date or today()  # a template's {date}: fixed once, for every file alike
        self._client: httpx.Client | None = None

    def __enter__(self) -> Downloads:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            session = self.session
            self._client = download_client(
                read_timeout=session.read_timeout,
                backoff=session.backoff,
                trace=session.notices.trace if session.notices.debug else None,
            )
        return self._client

    def save(
        self,
        handle: TaskHandle,
        task: Task,
        directory: Path,
        *,
        force: bool,
        display: TransferProgress | None = None,
        name: str | None = None,
        line: int | None = None,
        model: str = "",
        tell_on_failure: bool = True,
        keep: bool = False,
    ) -> list[Path]:
        """Every output of a task that succeeded, saved in `directory` and recorded: named by
        the template when there is one (a task of a batch keeps its line's name and number,
        from the history when it is fetched later), else as download_all names them."""
        notices = self.session.notices
        if not task.outputs:
            notices.warn(f"task {task.task_id} succeeded but listed no outputs")
            return []
        history, row = self.session.history, handle.row

        def own(target: Path) -> bool:
            """A file this task saved there before, unchanged since: kept, so a download can
            be repeated; anything else there (another's, or edited) is never overwritten."""
            from siray_cli.storage.provenance import sha256_of

            known = history.file_at(str(target.resolve())) if row is not None else None
            return known is not None and known[0] == row and known[1] == sha256_of(target)

        namer = None
        if self.template is not None:
            record = handle.record
            namer = template_namer(
                self.template,
                task,
                date=self.date,
                name=name or (record.batch_name if record is not None else None),
                line=line or (record.batch_line if record is not None else None),
                model=model or handle.model,
            )
        return handle.download(
            task,
            directory,
            force=force,
            max_bytes=self.session.settings.download_max_size,
            stall_window=self.session.read_timeout,
            client=self.client,
            display=display,
            name=name,
            namer=namer,
            on_failure=notices.always if tell_on_failure else None,
            keep=keep or own,
        )

    def images_for_preview(
        self, task: Task, directory: Path, *, max_bytes: int
    ) -> dict[str, Path | str]:
        """The task's images downloaded into `directory` for a look only (a temporary one that
        the caller removes: nothing is recorded), each of at most `max_bytes` (and of the
        download_max_size setting): URL -> its file, or why it was not fetched."""
        from siray_cli.domain import TaskKind
        from siray_cli.storage.downloads import download_one

        cap = min(max_bytes, self.session.settings.download_max_size)

        def not_too_big(name: str, size: int | None) -> None:
            if size is not None and size > cap:
                raise DownloadError(f"{size} bytes, more than a preview fetches ({cap})")

        fetched: dict[str, Path | str] = {}
        for index, item in enumerate(task.outputs, start=1):
            if item.media is not TaskKind.IMAGE or item.url in fetched:
                continue
            try:
                fetched[item.url] = download_one(
                    self.client,
                    item.url,
                    directory,
                    task.task_id,
                    index,
                    force=False,
                    on_start=not_too_big,
                    max_bytes=cap,
                    stall_window=self.session.read_timeout,
                )
            except DownloadError as exc:
                fetched[item.url] = exc.message
        return fetched

    def fetch(
        self,
        handle: TaskHandle,
        directory: Path,
        *,
        force: bool,
        display: TransferProgress | None,
    ) -> tuple[Task, list[Path]]:
        """A finished task's outputs, fetched later (`siray download`): the task is looked up
        where it was created, and its outputs saved as `run -o` does."""
        from siray_cli.errors import TaskCancelledError, TaskFailedError, UsageError

        task_id = handle.task_id
        task = handle.status()
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
                hint=f"wait for it with `siray status {task_id} --wait -o {quote(str(directory))}`",
                task_id=task_id,
            )
        return task, self.save(handle, task, directory, force=force, display=display)
