"""Submitting a paid task with the history journal. The intent is recorded (UNCERTAIN, with the
request's fingerprint) before the request is sent, so even a SIGKILL mid-request leaves a trace
that a rerun finds instead of paying again; the answer then confirms it (with the task id) or,
when the server certainly refused it, removes it.

A rerun of the same request (the same job key on the same provider, host and profile) first looks
for an earlier attempt whose result was never handed over (the command was killed, timed out, or
is still running in another process): it rejoins that task, sends an unanswered submit again with
its idempotency key, or refuses to guess about an unanswered one that had none. The look and the
submit happen under a lock per job, so two processes never both pay for the same job.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from siray_cli import signals
from siray_cli.errors import AmbiguousSubmitError, Interrupted, SirayError
from siray_cli.services.session import resume_hint

if TYPE_CHECKING:
    from siray_cli.domain import SubmittedTask, TaskKind
    from siray_cli.providers.base import Provider
    from siray_cli.services.session import Session
    from siray_cli.storage.history import Record

INTERRUPT_NOTICE = "interrupt received: stopping once the task id is known (again to force)"
REJOIN_WINDOW = 24 * 3600.0  # seconds: an attempt older than this is not rejoined by a rerun
LOCK_STRIPES = 256  # lock files, at most: jobs share them by their key's hash
LOCK_PAUSE = 0.05  # seconds between tries for a job's lock held by another submit


@dataclass(frozen=True)
class Earlier:
    """What the history says of a job on one provider, host and profile (newest first): it
    succeeded ("done"), is still running ("running"), its submit went unanswered with a key the
    provider honours ("resend") or without one ("report"); or it is to be submitted ("submit",
    settling `record`, an unanswered attempt, when there is one)."""

    verdict: Literal["done", "running", "resend", "report", "submit"]
    record: Record | None = None

    @property
    def kept_body(self) -> dict[str, Any] | None:
        """For "resend": the very body sent then (the files uploaded then); data URLs are not
        recorded, but rebuilt from the same files they are the same."""
        from siray_cli.storage.history import has_redacted_data

        request = self.record.request if self.record is not None else None
        return dict(request) if request and not has_redacted_data(request) else None

    @property
    def needs_new_body(self) -> bool:
        """Whether the job is submitted with a body built now (its local files uploaded)."""
        return self.verdict == "submit" or (self.verdict == "resend" and not self.kept_body)


def earlier(
    session: Session,
    provider: Provider,
    key: str,
    *,
    handed_over_too: bool,
    resubmit_uncertain: bool = False,
) -> Earlier:
    """The verdict on a job from its earlier attempts: all of them (a batch's --resume), or only
    those from the last REJOIN_WINDOW whose result was never handed over (any rerun)."""
    from siray_cli.domain import TERMINAL, TaskState

    records = session.history.by_job(
        key,
        provider=provider.name,
        base_url=provider.base_url,
        profile=session.settings.profile_name,
    )
    if not handed_over_too:
        since = time.time() - REJOIN_WINDOW
        records = [r for r in records if r.delivered_at is None and r.submitted_at >= since]
    uncertain: Record | None = None
    for record in records:  # newest first
        if record.task_id is None:
            uncertain = uncertain or record
            continue
        if record.state is TaskState.SUCCESS:
            return Earlier("done", record)
        if record.state not in TERMINAL:
            return Earlier("running", record)
        break  # a definite attempt that failed, newer than any uncertain one: submit again
    if uncertain is not None and uncertain.idempotency_key:
        return Earlier("resend", uncertain)
    if uncertain is not None and not resubmit_uncertain:
        return Earlier("report", uncertain)
    return Earlier("submit", uncertain)


def uncertain_message(record: Record, what: str = "this request") -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted_at))
    return (
        f"an earlier submit of {what} ({when}) got no answer and may have created a task, so it "
        "was not submitted again"
    )


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def job_lock(session: Session, provider: Provider, key: str) -> Iterator[None]:
    """Held from the look at a job's earlier attempts until its submit is journalled: another
    siray (or another thread of this one) submitting the same job waits, then finds its task."""
    digest = hashlib.sha256(
        json.dumps([provider.name, provider.base_url, session.settings.profile_name, key]).encode()
    ).digest()
    stripe = f"job-{int.from_bytes(digest[:4], 'big') % LOCK_STRIPES:03d}"
    with _thread_locks_guard:
        in_process = _thread_locks.setdefault(stripe, threading.Lock())
    with in_process:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks here
            yield
            return
        from siray_cli.storage.history import lock_file

        if not session.history.enabled:  # no history to look in: no lock to share either
            yield
            return
        descriptor = os.open(lock_file(f"{stripe}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            told = False
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        session.notices.info(
                            "waiting for another siray that is submitting a request..."
                        )
                        told = True
                    if threading.current_thread() is threading.main_thread():
                        signals.sleep(LOCK_PAUSE)
                    else:
                        time.sleep(LOCK_PAUSE)
            yield
        finally:
            os.close(descriptor)  # and with it the lock


def submit(
    session: Session,
    provider: Provider,
    kind: TaskKind,
    body: dict[str, Any],
    *,
    announce: bool = True,
    idempotency_key: str | None = None,
    webhook: str | None = None,
    job_key: str | None = None,
    new: bool = False,
    resubmit_uncertain: bool = False,
    **batch: Any,
) -> SubmittedTask:
    """Create the task and record it in the history before anything else happens, unless an
    earlier attempt of the same job was never handed over (then that task is returned, its
    `rejoined` set; `new` skips the look). A Ctrl-C while the create request is in flight is
    held until its answer is in and the id has been shown."""
    key = job_key or fingerprint(kind, body)
    settles = False
    with job_lock(session, provider, key):
        if not new:
            found = earlier(
                session, provider, key, handed_over_too=False, resubmit_uncertain=resubmit_uncertain
            )
            record = found.record
            if found.verdict in ("running", "done") and record is not None:
                return _rejoin(session, record, kind)
            if found.verdict == "report" and record is not None:
                raise AmbiguousSubmitError(
                    uncertain_message(record),
                    hint="check `siray history --status UNCERTAIN` before paying twice; "
                    "--new submits it anyway",
                )
            if found.verdict == "resend" and record is not None:
                # sent with a key the provider honours: sending it again with that key cannot
                # create a second paid task; under the same key, another body is another
                # request, which the service refuses, so the body is the one sent then
                idempotency_key = record.idempotency_key
                body = found.kept_body or body
                session.notices.info(
                    "an earlier submit of this request got no answer: sending it again with "
                    "the same idempotency key (never a second task)"
                )
            settles = record is not None
        task = _send(
            session,
            provider,
            kind,
            body,
            announce=announce,
            idempotency_key=idempotency_key,
            webhook=webhook,
            job_key=key,
            **batch,
        )
        if settles:  # never before the id is recorded: a crash in between keeps the attempt
            session.history.settle(
                key,
                provider=provider.name,
                base_url=provider.base_url,
                profile=session.settings.profile_name,
            )
    return task


def _rejoin(session: Session, record: Record, kind: TaskKind) -> SubmittedTask:
    from siray_cli.domain import SubmittedTask

    assert record.task_id is not None
    when = time.strftime("%H:%M:%S", time.localtime(record.submitted_at))
    day = time.strftime("%Y-%m-%d", time.localtime(record.submitted_at))
    if day != time.strftime("%Y-%m-%d"):
        when = f"{day} {when}"
    session.notices.always(
        f"the same request was submitted at {when} and its result never handed over: "
        f"following task {record.task_id} instead of paying again (--new submits another)"
    )
    return SubmittedTask(record.task_id, kind, record.model, rejoined=True)


def _send(
    session: Session,
    provider: Provider,
    kind: TaskKind,
    body: dict[str, Any],
    *,
    announce: bool,
    idempotency_key: str | None,
    webhook: str | None,
    **batch: Any,
) -> SubmittedTask:
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
                if history.enabled and idempotency_key:
                    exc.hint = (
                        f"{exc.hint}: run the same command again to do so (the key is in "
                        "`siray history`)"
                    )
                elif history.enabled:
                    exc.hint = f"{exc.hint}; the attempt is in `siray history --status UNCERTAIN`"
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


def fingerprint(kind: TaskKind, body: dict[str, Any], occurrence: int = 0) -> str:
    """What identifies a request's content: the same job submitted again has the same one. A
    batch's second line asking for the very same thing (`occurrence` 1) is another job."""
    document: dict[str, Any] = {"kind": kind.value, "body": body}
    if occurrence:
        document["occurrence"] = occurrence
    canonical = json.dumps(document, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
