"""Looking tasks up: which tasks a command means (the ids given, the latest, every pending one)
and their current state, recorded in the history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from siray_cli.errors import CancelUnsupportedError, UsageError

if TYPE_CHECKING:
    from siray_cli.providers.base import Task
    from siray_cli.services.session import Providers, Session


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


def look_up(session: Session, providers: Providers, task_id: str) -> Task:
    """The task's current state (asked where it was created), recorded in the history."""
    task = providers.for_task(task_id).get(task_id)
    session.history.update(task)
    return task


def cancel(session: Session, providers: Providers, task_id: str) -> Task:
    """Ask the task's provider to cancel it; its answer is recorded in the history (a cancelled
    task is no longer pending there)."""
    provider = providers.for_task(task_id)
    if not provider.capabilities.supports_cancel:
        raise CancelUnsupportedError(
            f"{provider.name} has no way to cancel a task; {task_id} keeps running",
            task_id=task_id,
            hint=f"follow it with `siray status {task_id} --wait`",
        )
    task = provider.cancel(task_id)
    session.history.update(task)
    return task
