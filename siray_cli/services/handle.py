"""TaskHandle: the one thing that talks to one task, in the spirit of `fal_client`'s request
handle. Each look is recorded as it is made (no command writes the history by hand), and the
waiter here is the one `run`, `status --wait`, `download` and the batch share: its schedule, its
deadline and the last look made as --timeout runs out."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING, Any, Protocol

from siray_cli import signals
from siray_cli.domain import Task, TaskKind
from siray_cli.errors import (
    CancelUnsupportedError,
    Interrupted,
    NetworkError,
    SirayError,
    WaitTimeoutError,
)
from siray_cli.services.ledger import UNKNOWN_PLACE

if TYPE_CHECKING:
    import httpx

    from siray_cli.providers.base import Provider
    from siray_cli.services.ledger import Ledger
    from siray_cli.services.outputs import Namer
    from siray_cli.services.polling import Schedule
    from siray_cli.services.uploads import TransferProgress
    from siray_cli.storage.records import Record

LAST_LOOK = 2.0  # seconds (or the read timeout, if shorter) the look made as --timeout runs out
# may take to be answered


class _FromHistory:
    """The handle was made for an id (status, download): where its result is to be handed over
    is what the history recorded of the command that submitted it."""


FROM_HISTORY = _FromHistory()


class TaskHandle:
    def __init__(
        self,
        task_id: str,
        provider: Provider,
        ledger: Ledger,
        *,
        kind: TaskKind | None = None,
        model: str = "",
        row: int | None = None,
        record: Record | None = None,
        rejoined: bool = False,
        asked: Path | _FromHistory | None = FROM_HISTORY,
        resuming: bool = False,
        request: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.provider = provider
        self.ledger = ledger
        self.kind = kind
        self.model = model or (record.model if record is not None else "")
        self.record = record
        self.row = row if row is not None else (record.row if record is not None else None)
        self.rejoined = rejoined  # an earlier attempt's task, found in the history
        self.asked = asked  # where this command hands the result over (None: printed)
        # taken up by a command other than the one that submitted it (status, download, a
        # batch's --resume): its hand-over leaves a rerun of the submitting command free
        self.resuming = resuming
        self.last: Task | None = None
        # what the task was asked and when (the record its saved files carry): given by the
        # submit, else from the history; None for a task siray never saw submitted
        self.request = request if request is not None else (record.request if record else None)
        self.created_at = created_at or (record.submitted_at if record is not None else None)

    def destination(self) -> Path | str | None:
        """Where the result is to be handed over: the directory its files go to, None for
        printed."""
        if not isinstance(self.asked, _FromHistory):
            return self.asked
        return self.record.destination if self.record is not None else None

    @property
    def submitted_at(self) -> float | None:
        return self.record.submitted_at if self.record is not None else None

    def status(self) -> Task:
        """The task's current state, asked where it was created, and recorded."""
        task = self.provider.get(self.task_id)
        self.seen(task)
        return task

    def seen(self, task: Task) -> None:
        self.last = task
        self.ledger.saw(self, task)

    def cancel(self) -> Task:
        """Ask the task's provider to cancel it; its answer is recorded (a cancelled task is no
        longer pending)."""
        if not self.provider.capabilities.supports_cancel:
            raise CancelUnsupportedError(
                f"{self.provider.name} has no way to cancel a task; {self.task_id} keeps running",
                task_id=self.task_id,
                hint=f"follow it with `siray status {self.task_id} --wait`",
            )
        task = self.provider.cancel(self.task_id)
        self.seen(task)
        return task

    def download(
        self,
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
    ) -> list[Path]:
        """Download every output of a task that succeeded (each atomically, never over a file
        unless forced; with `keep`, a file already there is kept as the output); the paths are
        recorded. On a failed download, `on_failure` is told the
        outputs' URLs and the files already saved, so nothing the task made is lost."""
        from siray_cli.services.outputs import download_all

        files = download_all(
            task,
            directory,
            force=force,
            max_bytes=max_bytes,
            stall_window=stall_window,
            client=client,
            display=display,
            name=name,
            namer=namer,
            on_failure=on_failure,
            keep=keep,
            handle=self,
        )
        self.ledger.saved(self, files)
        return files

    def hand_over(self, task: Task | None, directory: Path | None = None) -> None:
        """The command told the result (printed it, or saved its files in `directory`)."""
        self.ledger.hand_over(self, task, directory)

    def resume_hint(self) -> str:
        """How to follow the task from here, with the output options of the command that
        submitted it: its files still go where that command asked."""
        return resume_hint([self])


def resume_hint(handles: Sequence[TaskHandle]) -> str:
    """The command that follows the tasks to their end, with the profile and host of this one
    and the directory their files were asked into (absolute: it works from anywhere)."""
    ids = " ".join(handle.task_id for handle in handles)
    prefix = handles[0].ledger.prefix if handles else "siray"
    places = {
        str(Path(place).expanduser().resolve())
        for place in (h.destination() for h in handles)
        if place is not None and place != UNKNOWN_PLACE
    }
    where = f" -o {quote(places.pop())}" if len(places) == 1 else ""
    return f"resume with: {prefix} status {ids} --wait{where}"


class TaskWatcher(Protocol):
    """A display of the tasks being waited for (progress.task_display gives one)."""

    def update(self, status: Task) -> None: ...

    def note(self, message: str) -> None: ...


def wait(
    handles: Sequence[TaskHandle],
    *,
    timeout: float,
    read_timeout: float,
    schedule: Callable[[], Schedule],
    on_update: Callable[[Task], None] | None = None,
    sleep: Callable[[float], None] = signals.sleep,
    before_look: Callable[[], None] | None = None,
    seen: Mapping[str, Task] | None = None,
    on_end: Callable[[Task], None] | None = None,
) -> dict[str, Task]:
    """Poll until every task ends (`timeout` 0: no limit), each look recorded. No request
    outlives --timeout, but the look made at the deadline gets a moment to be answered.
    `seen`: looks made just before, taken as the first; `on_end` is told of each task as it
    ends (its files fetched then, not once all have ended). Raises WaitTimeoutError (without a
    hint: the caller knows how to resume) or the NetworkError of a look that failed."""
    from siray_cli.services.polling import WaitTimedOut, wait_for_tasks
    from siray_cli.transport import deadline

    by_id = {handle.task_id: handle for handle in handles}

    def fetch(task_id: str) -> Task:
        if before_look is not None:
            before_look()
        return by_id[task_id].status()

    ended: set[str] = set()

    def updated(task: Task) -> None:
        if on_update is not None:
            on_update(task)
        if on_end is not None and task.is_terminal and task.task_id not in ended:
            ended.add(task.task_id)
            on_end(task)

    for task in (seen or {}).values():  # ended before the wait began: told all the same
        if task.task_id in by_id and task.is_terminal:
            updated(task)

    grace = min(LAST_LOOK, read_timeout)
    ends = time.monotonic() + timeout if timeout else None
    try:
        with deadline(None if ends is None else ends + grace):
            return wait_for_tasks(
                list(by_id),
                fetch,
                timeout=timeout or None,
                schedule=schedule,
                on_update=updated,
                sleep=sleep,
                seen=seen,
            )
    except NetworkError:
        if ends is None or time.monotonic() < ends + grace:
            raise
        raise WaitTimeoutError(  # a request still unanswered when --timeout ran out
            f"gave up waiting after {timeout:g}s (the last status request got no answer in "
            "time); the task may still finish",
            task_id=handles[0].task_id if len(handles) == 1 else None,
        ) from None
    except WaitTimedOut as exc:
        last = [p for p in exc.pending if isinstance(p, Task)]
        states = ", ".join(f"{s.task_id} {s.status}" for s in last) or "no answer yet"
        raise WaitTimeoutError(
            f"gave up waiting after {timeout:g}s (last seen: {states}); the task may still finish",
            task_id=handles[0].task_id if len(handles) == 1 else None,
        ) from None


def wait_until_ended(
    handles: Sequence[TaskHandle],
    display: AbstractContextManager[TaskWatcher],
    *,
    timeout: float,
    poll_interval: float | None,
    read_timeout: float,
    cancel_on_interrupt: bool = False,
    notify: Callable[[str], None] = lambda message: None,
    seen: Mapping[str, Task] | None = None,
    on_end: Callable[[Task, TaskWatcher], None] | None = None,
) -> dict[str, Task]:
    """`wait` with a live display, for a command in the foreground: a timeout or a Ctrl-C
    becomes an error that says how to resume (with the output options of the command that
    submitted the tasks)."""
    from siray_cli.services.polling import default_schedule

    try:
        with display as watcher:
            return wait(
                handles,
                timeout=timeout,
                read_timeout=read_timeout,
                schedule=default_schedule(poll_interval),
                on_update=watcher.update,
                seen=seen,
                on_end=None if on_end is None else lambda task: on_end(task, watcher),
            )
    except WaitTimeoutError as exc:
        exc.hint = resume_hint(handles)
        raise
    except KeyboardInterrupt:
        note = "keeps running"
        if cancel_on_interrupt:
            note = _cancel_quietly(handles, notify)
        ids = ", ".join(handle.task_id for handle in handles)
        raise Interrupted(
            f"interrupted while waiting; {ids} {note}",
            hint=resume_hint(handles) if note == "keeps running" else None,
            task_id=handles[0].task_id if len(handles) == 1 else None,
        ) from None


def _cancel_quietly(handles: Sequence[TaskHandle], notify: Callable[[str], None]) -> str:
    outcomes = []
    cancelled = True
    for handle in handles:
        try:
            status = handle.cancel()
            outcomes.append(f"{handle.task_id}: {status.status}")
            cancelled = cancelled and status.cancelled
        except SirayError as exc:
            outcomes.append(f"{handle.task_id}: not cancelled ({exc.message})")
            cancelled = False
    notify("cancel on interrupt: " + "; ".join(outcomes))
    return "cancelled" if cancelled else "keeps running"
