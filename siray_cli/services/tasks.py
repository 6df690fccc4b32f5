"""Looking tasks up: which tasks a command means (the ids given, the latest, every pending one)
and their current state, recorded in the history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from siray_cli.errors import UsageError

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider, Task
    from siray_cli.services.session import Session


def tasks_to_show(session: Session, given: list[str], all_pending: bool) -> list[str]:
    """The ids asked for; with none, the most recent task (or every pending one) in the history."""
    if given and all_pending:
        raise UsageError("give task ids or --all-pending, not both")
    if given:
        return list(dict.fromkeys(given))
    if all_pending:
        return [r.task_id for r in reversed(session.history.query(pending=True)) if r.task_id]
    latest = session.history.latest()
    if latest is None or latest.task_id is None:
        raise UsageError(
            "no task id given, and the history holds none",
            hint="siray status TASK_ID (the id that `siray generate` printed)",
        )
    session.notices.info(f"the most recent task: {latest.task_id} ({latest.model})")
    return [latest.task_id]


def look_up(session: Session, provider: Provider, task_id: str) -> Task:
    """The task's current state, recorded in the history."""
    task = provider.get(task_id)
    session.history.update(task)
    return task


def cancel(session: Session, provider: Provider, task_id: str) -> Task:
    """Ask the provider to cancel a task. The history keeps its last polled state: the task is
    pending there until a status look sees it end."""
    return provider.cancel(task_id)
