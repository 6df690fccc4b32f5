"""Looking tasks up: which tasks a command means (the ids given, the latest, every pending one)
and their current state, each look recorded by the task's handle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from siray_cli.errors import NetworkError, UsageError

if TYPE_CHECKING:
    from siray_cli.domain import Task
    from siray_cli.services.handle import TaskHandle
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


def look_up(providers: Providers, handle: TaskHandle) -> Task:
    """The task's current state, asked where it was created.

    A host that did not answer is not asked again for the next task of the same look-up (each
    would wait out its retries: `status --all-pending` after a crash, with tasks of an emulator
    long gone, took minutes); those tasks are reported at once."""
    host = handle.provider.base_url
    try:
        if host in providers.unreachable:
            raise NetworkError(
                f"querying {handle.task_id}: {host} did not answer a moment ago; not asked again",
                task_id=handle.task_id,
            )
        return handle.status()
    except NetworkError as exc:
        providers.unreachable.add(host)
        if handle.provider is not providers.current:
            exc.hint = _where_hint(handle.task_id, host)
        raise


def saved_files(handle: TaskHandle) -> list[str]:
    """The task's files that an earlier command saved and that are still there."""
    from pathlib import Path

    if handle.record is None:
        return []
    return [path for path in handle.record.files if Path(path).is_file()]


def _where_hint(task_id: str, host: str) -> str:
    return (
        f"{task_id} was created on {host}, as the history records; ask again once that server "
        f"answers (if it is gone for good, an emulator say, the task is too: "
        f"`siray history forget {task_id}` sets it aside)"
    )
