"""Waiting for tasks: polling until each ends, recording every change in the history, and turning
a timeout or a Ctrl-C into an error that says how to resume."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from siray_cli import signals
from siray_cli.domain import Task
from siray_cli.errors import Interrupted, NetworkError, SirayError, WaitTimeoutError
from siray_cli.services.session import resume_hint

if TYPE_CHECKING:
    from siray_cli.services.session import Providers, Session


LAST_LOOK = 2.0  # seconds (or the read timeout, if shorter) the look made as --timeout runs out
# may take to be answered


class TaskWatcher(Protocol):
    """A display of the tasks being waited for (progress.task_display gives one)."""

    def update(self, status: Task) -> None: ...


def wait_for(
    session: Session,
    providers: Providers,
    task_ids: list[str],
    display: AbstractContextManager[TaskWatcher],
    *,
    timeout: float,
    poll_interval: float | None,
    cancel_on_interrupt: bool = False,
) -> dict[str, Task]:
    """Poll until every task ends; Ctrl-C and timeouts raise errors that say how to resume."""
    from siray_cli.services.polling import WaitTimedOut, default_schedule, wait_for_tasks
    from siray_cli.transport import deadline

    ends = time.monotonic() + timeout if timeout else None
    try:
        # no request outlives --timeout, but the last look (made at the deadline) gets a moment
        grace = min(LAST_LOOK, session.read_timeout)
        last_look = None if ends is None else ends + grace
        with display as watcher, deadline(last_look):

            def on_update(status: Task) -> None:
                watcher.update(status)
                session.history.update(status)

            return wait_for_tasks(
                task_ids,
                lambda task_id: providers.for_task(task_id).get(task_id),
                timeout=timeout or None,
                schedule=default_schedule(poll_interval),
                on_update=on_update,
                sleep=signals.sleep,
            )
    except NetworkError:
        if ends is None or time.monotonic() < ends + min(LAST_LOOK, session.read_timeout):
            raise
        raise WaitTimeoutError(  # a request still unanswered when --timeout ran out
            f"gave up waiting after {timeout:g}s (the last status request got no answer in "
            "time); the task may still finish",
            hint=resume_hint(task_ids),
            task_id=task_ids[0] if len(task_ids) == 1 else None,
        ) from None
    except WaitTimedOut as exc:
        last = [p for p in exc.pending if isinstance(p, Task)]
        states = ", ".join(f"{s.task_id} {s.status}" for s in last) or "no answer yet"
        raise WaitTimeoutError(
            f"gave up waiting after {timeout:g}s (last seen: {states}); the task may still finish",
            hint=resume_hint(task_ids),
            task_id=task_ids[0] if len(task_ids) == 1 else None,
        ) from None
    except KeyboardInterrupt:
        note = "keeps running"
        if cancel_on_interrupt:
            note = _cancel_quietly(session, providers, task_ids)
        raise Interrupted(
            f"interrupted while waiting; {', '.join(task_ids)} {note}",
            hint=resume_hint(task_ids) if note == "keeps running" else None,
            task_id=task_ids[0] if len(task_ids) == 1 else None,
        ) from None


def _cancel_quietly(session: Session, providers: Providers, task_ids: list[str]) -> str:
    outcomes = []
    cancelled = True
    for task_id in task_ids:
        try:
            status = providers.for_task(task_id).cancel(task_id)
            session.history.update(status)
            outcomes.append(f"{task_id}: {status.status}")
            cancelled = cancelled and status.cancelled
        except SirayError as exc:
            outcomes.append(f"{task_id}: not cancelled ({exc.message})")
            cancelled = False
    session.notices.always("cancel on interrupt: " + "; ".join(outcomes))
    return "cancelled" if cancelled else "keeps running"
