"""Submitting a paid task with the history journal. The intent is recorded (UNCERTAIN, with the
request's fingerprint) before the request is sent, so even a SIGKILL mid-request leaves a trace
that `--resume` reports instead of paying again; the answer then confirms it (with the task id)
or, when the server certainly refused it, removes it."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from siray_cli import signals
from siray_cli.errors import AmbiguousSubmitError, Interrupted, SirayError
from siray_cli.services.session import resume_hint

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider, SubmittedTask, TaskKind
    from siray_cli.services.session import Session

INTERRUPT_NOTICE = "interrupt received: stopping once the task id is known (again to force)"


def submit(
    session: Session,
    provider: Provider,
    kind: TaskKind,
    body: dict[str, Any],
    *,
    announce: bool = True,
    idempotency_key: str | None = None,
    webhook: str | None = None,
    **batch: Any,
) -> SubmittedTask:
    """Create the task and record it in the history before anything else happens. A Ctrl-C while
    the create request is in flight is held until its answer is in and the id has been shown."""
    history = session.history
    if provider.capabilities.supports_idempotency and idempotency_key is None:
        idempotency_key = str(uuid.uuid4())  # journalled with the intent, before sending
    if not provider.capabilities.supports_idempotency:
        idempotency_key = None
    record = {
        "kind": kind.value,
        "model": str(body.get("model", "")),
        "request": body,
        "base_url": provider.base_url,
        "profile": session.settings.profile_name,
        "provider": provider.name,
        "job_key": fingerprint(kind, body),
        "idempotency_key": idempotency_key,
        **batch,
    }
    task: SubmittedTask | None = None
    try:
        with signals.deferred_interrupts(INTERRUPT_NOTICE):
            row = history.record_submit(task_id=None, **record)
            try:
                task = provider.submit(kind, body, idempotency_key=idempotency_key, webhook=webhook)
            except AmbiguousSubmitError as exc:  # the journalled intent stays, as UNCERTAIN
                if history.enabled:
                    exc.hint = f"{exc.hint}; the attempt is in `siray history`"
                raise
            except SirayError:  # refused (a 4xx, a connection never made): nothing was created
                history.forget(row)
                raise
            except KeyboardInterrupt:  # forced by a second signal: the task may exist
                session.notices.always(
                    "interrupted while submitting: the task may have been "
                    "created; the attempt is in `siray history`"
                )
                raise
            history.confirm(row, task.task_id)
            if announce:
                session.notices.always(f"task {task.task_id} submitted ({task.model})")
    except KeyboardInterrupt:
        if task is None:
            raise
        # a signal held while the create was in flight: the task exists and keeps running
        raise Interrupted(
            f"{signals.name()} once the task was submitted; {task.task_id} keeps running",
            hint=resume_hint([task.task_id]),
            task_id=task.task_id,
        ) from None
    return task


def fingerprint(kind: TaskKind, body: dict[str, Any]) -> str:
    """What identifies a request's content: the same job submitted again has the same one."""
    canonical = json.dumps({"kind": kind.value, "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
