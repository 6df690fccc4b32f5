"""Submitting a paid task with the history journal: the task is recorded before siray waits or
returns, and a submit whose answer never came is recorded too, as UNCERTAIN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siray_cli import signals
from siray_cli.errors import AmbiguousSubmitError

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider, SubmittedTask, TaskKind
    from siray_cli.services.session import Session

INTERRUPT_NOTICE = "interrupt received: stopping once the task id is known (Ctrl-C again to force)"


def submit(
    session: Session,
    provider: Provider,
    kind: TaskKind,
    body: dict[str, Any],
    *,
    announce: bool = True,
    **batch: Any,
) -> SubmittedTask:
    """Create the task and record it in the history before anything else happens. A Ctrl-C while
    the create request is in flight is held until its answer is in and the id has been shown."""
    history = session.history
    record = {
        "kind": kind.value,
        "model": str(body.get("model", "")),
        "request": body,
        "base_url": provider.base_url,
        "profile": session.settings.profile_name,
        "provider": provider.name,
        **batch,
    }
    with signals.deferred_interrupts(INTERRUPT_NOTICE):
        try:
            task = provider.submit(kind, body)
        except AmbiguousSubmitError as exc:
            history.record_submit(task_id=None, **record)
            if history.enabled:
                exc.hint = f"{exc.hint}; the attempt is in `siray history`"
            raise
        except KeyboardInterrupt:  # forced by a second Ctrl-C: the task may exist
            history.record_submit(task_id=None, **record)
            session.notices.always(
                "interrupted while submitting: the task may have been "
                "created; the attempt is in `siray history`"
            )
            raise
        history.record_submit(task_id=task.task_id, **record)
        if announce:
            session.notices.always(f"task {task.task_id} submitted ({task.model})")
    return task
