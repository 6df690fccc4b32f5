"""The Ledger: every decision about money, in one place. A paid task is never lost and never paid
twice, whoever runs siray and however it ends.

- The intent is recorded (UNCERTAIN, with the request's fingerprint) before the create request is
  sent, so even a SIGKILL mid-request leaves a trace that a rerun finds instead of paying again;
  the answer then confirms it (with the task id) or, when the server certainly refused it,
  removes it.
- A rerun of the same request (the same job key on the same provider, host and profile) first
  asks for the PriorAttempt: a task whose result was never handed over (the command was killed,
  timed out, or is still running in another process) is rejoined, an unanswered submit is sent
  again with its idempotency key, or, without one, reported rather than guessed about. The look
  and the submit happen under a lock per job, so two processes never both pay for one job.
- Inside a CI run (or with --run-id), a submit's idempotency key is derived from the run and the
  job (services.run_identity), not drawn at random: the run's re-run on a fresh runner, with no
  history, sends the same key, and a provider that honours it answers with the original request.
  A request of this run that ended in a definite failure is answered as it ended; the job is then
  submitted again under the run's next key for it, so a failed line is still tried anew.
- A result is handed over where the submitting command asked: a task submitted by `run -o DIR`
  is handed over once its files are in DIR, not when a `status --wait` printed its URLs, so a
  rerun of that `run` fetches them instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from siray_cli import signals
from siray_cli.domain import TERMINAL, Task, TaskKind, TaskState
from siray_cli.errors import (
    AmbiguousSubmitError,
    IdempotencyConflictError,
    Interrupted,
    SirayError,
)

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider
    from siray_cli.services.budget import Charge
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.run_identity import RunIdentity
    from siray_cli.services.session import Notices
    from siray_cli.storage.history import History
    from siray_cli.storage.records import Attempt, AttemptRow, Glance, Record

REJOIN_WINDOW = 24 * 3600.0  # seconds: an attempt older than this is not rejoined by a rerun
LOCK_STRIPES = 256  # lock files, at most: jobs share them by their key's hash
RUN_ATTEMPTS = 20  # a job's submits in one CI run that may each end failed before siray gives up
# the `destination` of a task recorded before siray kept one (migrations.m005): where its command
# asked for its files is not known, so printing its outputs is not taken for handing them over
UNKNOWN_PLACE = "*"

Verdict = Literal["done", "running", "resend", "report", "submit"]
FOLLOWED = ("done", "running")  # verdicts that follow a task instead of submitting
Seen = TypeVar("Seen", "Record", "Attempt")  # an attempt, whole or as a verdict reads it


class PriorAttempt(NamedTuple):
    """What the history says of a job on one provider, host and profile (newest first): it
    succeeded ("done"), is still running ("running"), its submit went unanswered with a key the
    provider honours ("resend") or without one ("report"); or it is to be submitted ("submit",
    settling `record`, an unanswered attempt, when there is one). `task_id`: the id of the task
    the verdict rests on (a batch's plan reads only that of a task it follows, not its record:
    Ledger.priors); `idempotency_key`: the key an unanswered attempt was sent with, read with
    its task's id (its record may not read). A tuple: a batch's plan makes one for each of its
    lines at once."""

    verdict: Verdict
    record: Record | None = None
    task_id: str | None = None
    idempotency_key: str | None = None

    @property
    def kept_body(self) -> dict[str, Any] | None:
        """For "resend": the very body sent then (the files uploaded then); data URLs are not
        recorded, but rebuilt from the same files they are the same."""
        from siray_cli.storage.records import has_redacted_data

        request = self.record.request if self.record is not None else None
        return dict(request) if request and not has_redacted_data(request) else None

    @property
    def needs_new_body(self) -> bool:
        """Whether the job is submitted with a body built now (its local files uploaded)."""
        return self.verdict == "submit" or (self.verdict == "resend" and not self.kept_body)


@dataclass(frozen=True)
class Plan:
    """What a submit of a job does (Ledger.decide): its verdict, the earlier attempt it rests
    on, and for "submit" and "resend" the body and idempotency key sent."""

    verdict: Verdict
    record: Record | None
    body: dict[str, Any]
    idempotency_key: str | None
    task_id: str | None = None  # of the task followed ("running", "done")


def uncertain_message(record: Record, what: str = "this request") -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted_at))
    return (
        f"an earlier submit of {what} ({when}) got no answer and may have created a task, so it "
        "was not submitted again"
    )


def unreadable_message(task_id: str | None, what: str = "this request") -> str:
    what_it_made = f" (task {task_id})" if task_id else ""
    return (
        f"the history's record of an earlier submit of {what}{what_it_made} cannot be read, "
        "and its task may exist, so it was not submitted again"
    )


def fingerprint(kind: TaskKind, body: dict[str, Any], occurrence: int = 0) -> str:
    """What identifies a request's content: the same job submitted again has the same one. A
    batch's second line asking for the very same thing (`occurrence` 1) is another job."""
    document: dict[str, Any] = {"kind": kind.value, "body": body}
    if occurrence:
        document["occurrence"] = occurrence
    canonical = json.dumps(document, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def same_place(a: Path | str, b: Path | str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


_SUBMIT = PriorAttempt("submit")  # a job the history knows nothing against: one for them all
# Ledger.priors makes the PriorAttempts of followed tasks by tuple.__new__, every field given
assert PriorAttempt._fields == ("verdict", "record", "task_id", "idempotency_key")


def _after(state: TaskState) -> Verdict:
    """The verdict on a job whose newest answered attempt is in this state: follow it, done or
    still going, or submit again (it failed or was cancelled)."""
    if state is TaskState.SUCCESS:
        return "done"
    return "submit" if state in TERMINAL else "running"


# by the state's word, as the history stores it (an enum's hash is Python code, a str's is not):
# a batch's plan reads ten thousand; a word siray does not know is no attempt (as its record)
_AFTER: dict[str, Verdict] = {state.value: _after(state) for state in TaskState}


def _rejoinable(
    delivered_at: float | None, delivered_by: str | None, submitted_at: float, since: float
) -> bool:
    """Whether a rerun (not --resume) reads this attempt: one from the last REJOIN_WINDOW whose
    result was never handed over. Handed over by a later command (a hint followed:
    `status --wait -o DIR`, say) is not handed over to this one: its rerun follows the task
    instead of paying again."""
    return (delivered_at is None or delivered_by == "later") and submitted_at >= since


def _verdict(
    attempts: Sequence[Seen], handed_over_too: bool, resubmit_uncertain: bool
) -> tuple[Verdict, Seen | None]:
    """The verdict from a job's attempts (newest first), and the attempt it rests on."""
    if not handed_over_too:
        since = time.time() - REJOIN_WINDOW
        attempts = [
            a
            for a in attempts
            if _rejoinable(a.delivered_at, a.delivered_by, a.submitted_at, since)
        ]
    uncertain: Seen | None = None
    for attempt in attempts:  # newest first
        if attempt.task_id is None:
            uncertain = uncertain or attempt
            continue
        verdict = _after(attempt.state)
        if verdict != "submit":
            return verdict, attempt
        break  # a definite attempt that failed, newer than any uncertain one: submit again
    if uncertain is not None and uncertain.idempotency_key:
        return "resend", uncertain
    if uncertain is not None and not resubmit_uncertain:
        return "report", uncertain
    return "submit", uncertain


class _JobLock:
    """A job's lock in this process, kept while a thread holds or waits for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


_job_locks: dict[bytes, _JobLock] = {}  # a job's key -> its lock (gone once no thread uses it)
_job_locks_guard = threading.Lock()


@contextmanager
def _job_held(digest: bytes) -> Iterator[None]:
    with _job_locks_guard:
        job = _job_locks.setdefault(digest, _JobLock())
        job.users += 1
    try:
        with job.lock:
            yield
    finally:
        with _job_locks_guard:
            job.users -= 1
            if job.users == 0 and _job_locks.get(digest) is job:  # (a forked child forgot it)
                del _job_locks[digest]


class _Stripe:
    """One stripe's lock file as this process holds it: taken by the first of its threads that
    needs it and let go by the last (each thread holds its own job's lock besides), so two
    different jobs of one batch never wait for each other's create because their keys share a
    stripe. Another process waits for the stripe, as before."""

    def __init__(self) -> None:
        self.turn = threading.Lock()  # taking or letting go of the file: one thread at a time
        self.holders = 0
        self.release: Callable[[], object] | None = None

    @contextmanager
    def held(self, take: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
        counted = False
        try:
            with self.turn:
                if self.holders == 0:
                    stack = ExitStack()
                    stack.enter_context(take())
                    self.release = stack.close
                self.holders += 1
                counted = True  # (no call in between: a signal cannot land before this)
            yield
        finally:
            if counted:
                with self.turn:
                    self.holders -= 1
                    if self.holders == 0 and self.release is not None:
                        release, self.release = self.release, None
                        release()


_stripes: dict[tuple[str, str], _Stripe] = {}  # (data directory, stripe) -> how it is held


def _forget_locks() -> None:
    """In a forked child: what the parent held is not the child's. Its threads take the files
    anew (and wait for the parent, as any other process does), never enter on its behalf."""
    global _job_locks_guard
    _job_locks.clear()
    _stripes.clear()
    _job_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks)


class Ledger:
    """The history's journal verbs, for one profile. Every method is safe to call whatever
    happened to the history (a broken one only warns, once)."""

    def __init__(
        self,
        history: History,
        notices: Notices,
        profile: str,
        prefix: str = "siray",
        run: RunIdentity | None = None,
    ) -> None:
        self.history = history
        self.notices = notices
        self.profile = profile
        self.prefix = prefix  # how hints spell siray: the same provider, host and profile
        self.run = run  # the CI run (or --run-id) the idempotency keys are derived from

    # -- the verdict on earlier attempts

    def prior(
        self,
        provider: Provider,
        key: str,
        *,
        handed_over_too: bool,
        resubmit_uncertain: bool = False,
    ) -> PriorAttempt:
        """The verdict on a job from its earlier attempts: all of them (a batch's --resume), or
        only those from the last REJOIN_WINDOW whose result was never handed over (any rerun),
        read as a batch's plan reads them (`priors`), with the record of the attempt it rests
        on. An attempt whose record cannot be read (a row edited by hand, a broken disk) still
        counts: its task may exist, so it is not paid for again (`decide` refuses it)."""
        from siray_cli.storage.records import newest_first

        rows = self.history.attempts(
            [key], provider=provider.name, base_url=provider.base_url, profile=self.profile
        )
        verdict, attempt = _verdict(newest_first(rows), handed_over_too, resubmit_uncertain)
        if attempt is None:
            return _SUBMIT
        record = self.history.records([attempt.row]).get(attempt.row)
        return PriorAttempt(verdict, record, attempt.task_id, attempt.idempotency_key)

    def priors(
        self,
        provider: Provider,
        keys: Sequence[str],
        *,
        handed_over_too: bool,
        resubmit_uncertain: bool = False,
        read_only: bool = False,
    ) -> dict[str, PriorAttempt]:
        """The verdict on each of these jobs (as `prior`), by key, from one look at the history
        for them all (a batch's plan), read from an index: a task followed ("done", "running")
        comes with its id, not its record (each line reads its own again when it runs); the
        other verdicts with the record of the attempt they rest on. `read_only` (a --dry-run)
        makes no history that is not there yet: with none, every job is to be submitted."""
        from siray_cli.storage.records import newest_first

        if read_only and not self.history.exists:
            return dict.fromkeys(keys, _SUBMIT)
        place = {"provider": provider.name, "base_url": provider.base_url, "profile": self.profile}
        since = time.time() - REJOIN_WINDOW
        # a first look, settling most jobs: one answered attempt (a task to follow, or to pay
        # for anew); the other jobs' attempts are read whole after
        glanced: dict[str, Glance] = {}
        whole: set[str] = set()  # jobs with more than one attempt, or an unanswered one
        for glance in self.history.glances(keys, since=since, **place):
            if glanced.setdefault(glance[0], glance) is not glance or glance[1] is None:
                whole.add(glance[0])
        found: dict[str, list[AttemptRow]] = {}
        if whole:
            for row in self.history.attempts(list(whole), **place):
                found.setdefault(row[0], []).append(row)
        priors: dict[str, PriorAttempt] = {}
        settling: dict[str, tuple[Verdict, Attempt]] = {}  # resting on a record, read after
        new = tuple.__new__  # a PriorAttempt made in C: a NamedTuple's __new__ is Python code
        for key in keys:
            seen = glanced.get(key)
            if seen is None:
                priors[key] = _SUBMIT
            elif key not in whole:
                # one answered attempt: what _verdict makes of it, without making an Attempt
                _, task_id, state, rejoinable = seen
                verdict = _AFTER.get(state, "submit")
                if verdict == "submit" or not (handed_over_too or rejoinable):
                    priors[key] = _SUBMIT
                else:
                    priors[key] = new(PriorAttempt, (verdict, None, task_id, None))
            else:
                attempts = newest_first(found.get(key, ()))
                verdict, attempt = _verdict(attempts, handed_over_too, resubmit_uncertain)
                if attempt is None:
                    priors[key] = _SUBMIT
                elif verdict in FOLLOWED:
                    priors[key] = PriorAttempt(verdict, None, attempt.task_id)
                else:
                    settling[key] = (verdict, attempt)
        if settling:
            records = self.history.records([attempt.row for _, attempt in settling.values()])
            for key, (verdict, attempt) in settling.items():
                record = records.get(attempt.row)
                priors[key] = PriorAttempt(
                    verdict, record, attempt.task_id, attempt.idempotency_key
                )
        return priors

    def decide(
        self,
        provider: Provider,
        key: str,
        body: dict[str, Any],
        *,
        new: bool,
        handed_over_too: bool,
        resubmit_uncertain: bool = False,
        read_only: bool = False,
        prior: PriorAttempt | None = None,
    ) -> Plan:
        """What a submit of this job does, from its earlier attempts: follow one ("running",
        "done"), send the unanswered one again with its key ("resend"), or submit ("submit");
        an unanswered attempt without a key is refused (AmbiguousSubmitError). `read_only`
        (a --dry-run) makes no history that is not there yet. `prior`: the verdict, looked up
        already (`priors`, for a batch's lines at once)."""
        if new or (read_only and not self.history.exists):
            return Plan("submit", None, body, None)
        found = prior or self.prior(
            provider, key, handed_over_too=handed_over_too, resubmit_uncertain=resubmit_uncertain
        )
        record = found.record
        if found.verdict == "resend" and found.idempotency_key:
            # sent with a key the provider honours: sending it again with that key cannot
            # create a second paid task; under the same key, another body is another request,
            # which the service refuses, so the body is the one sent (when its record reads:
            # the key is read with the task's id, from the index, when the record does not)
            return Plan("resend", record, found.kept_body or body, found.idempotency_key)
        if record is None and found.verdict != "submit" and prior is None:
            raise AmbiguousSubmitError(
                unreadable_message(found.task_id),
                hint=self._look_hint(found),
                task_id=found.task_id,
            )
        if found.verdict == "report" and record is not None:
            raise AmbiguousSubmitError(
                uncertain_message(record),
                hint="check `siray history --status UNCERTAIN` before paying twice; "
                "--new submits it anyway",
            )
        return Plan(found.verdict, record, body, None, found.task_id)

    def _look_hint(self, found: PriorAttempt) -> str:
        """What to do of an attempt whose record cannot be read (so no listing of the history
        shows it): look at its task, fetch its files, or pay again knowingly."""
        if found.task_id:
            look = f"{self.prefix} status {found.task_id}"
            return (
                f"`{look}` shows its task, `{look} --wait -o DIR` fetches its files; "
                "--new submits it anyway"
            )
        return "it got no answer, so whether it made a task is not known: --new submits it anyway"

    @contextmanager
    def job_lock(self, provider: Provider, key: str) -> Iterator[None]:
        """Held from the look at a job's earlier attempts until its submit is journalled: another
        siray (or another thread of this one) submitting the same job waits, then finds its
        task."""
        from siray_cli.storage.locks import flock
        from siray_cli.storage.private import data_dir

        digest = hashlib.sha256(
            json.dumps([provider.name, provider.base_url, self.profile, key]).encode()
        ).digest()
        stripe = f"job-{int.from_bytes(digest[:4], 'big') % LOCK_STRIPES:03d}"
        with _job_held(digest):
            if not self.history.enabled:  # no history to look in: no lock to share either
                yield
                return
            # the stripe's file in this data directory (flock makes its path, and the folders)
            place = (str(data_dir()), stripe)
            with _job_locks_guard:
                shared = _stripes.setdefault(place, _Stripe())
            main = threading.current_thread() is threading.main_thread()
            with shared.held(
                lambda: flock(
                    f"{stripe}.lock",
                    wait=True,
                    on_wait=lambda: self.notices.info(
                        "waiting for another siray that is submitting a request..."
                    ),
                    sleep=signals.sleep if main else time.sleep,
                )
            ):
                yield

    # -- submitting

    def submit(
        self,
        provider: Provider,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        destination: Path | None = None,
        announce: bool = True,
        idempotency_key: str | None = None,
        webhook: str | None = None,
        job_key: str | None = None,
        new: bool = False,
        resubmit_uncertain: bool = False,
        handed_over_too: bool = False,
        batch_line: int | None = None,
        batch_name: str | None = None,
        charge: Charge | None = None,
    ) -> TaskHandle:
        """Create the task and record it before anything else happens, unless an earlier attempt
        of the same job was never handed over (then that task's handle is returned, `rejoined`
        set; `new` skips the look). `destination` is where this command will hand the result
        over (a directory; None: printed). A Ctrl-C while the create request is in flight is
        held until its answer is in and the id has been shown. `charge`, a spending cap's, is
        made only when a create is sent (under the job's lock: a rejoined task costs nothing),
        and given back when the server certainly refused it."""
        key = job_key or fingerprint(kind, body)
        where = str(destination.resolve()) if destination is not None else None
        with self.job_lock(provider, key):
            plan = self.decide(
                provider,
                key,
                body,
                new=new,
                handed_over_too=handed_over_too,  # the scope the caller looked in (--resume)
                resubmit_uncertain=resubmit_uncertain,
            )
            record = plan.record
            if plan.verdict in ("running", "done") and record is not None:
                return self._rejoin(provider, record, kind, destination)
            if plan.verdict == "resend":
                self.notices.info(
                    "an earlier submit of this request got no answer: sending it again "
                    "with the same idempotency key (never a second task)"
                )
            settles = record is not None
            run = self.run if provider.capabilities.supports_idempotency and not new else None
            if plan.idempotency_key or idempotency_key:
                run = None  # a key already chosen (an unanswered submit's) is sent as it was
            if charge is not None:
                charge.charge()  # over the cap: raised here, and nothing is sent
            attempts_spent = False
            try:
                for attempt in range(RUN_ATTEMPTS):
                    handle = self._send(
                        provider,
                        kind,
                        plan.body,
                        announce=announce,
                        idempotency_key=(
                            run.idempotency_key(provider.name, key, attempt)
                            if run is not None
                            else plan.idempotency_key or idempotency_key
                        ),
                        webhook=webhook,
                        job_key=key,
                        batch_line=batch_line,
                        batch_name=batch_name,
                        destination=where,
                        run=run,
                    )
                    answer = handle.last
                    if run is None or answer is None or not answer.is_terminal or answer.succeeded:
                        break
                    # made earlier in this run under this key, and ended: a definite failure is
                    # the result of that attempt; the job is submitted again under its next key
                    if handle.row is not None:
                        self.history.deliver(handle.row, "submitter")
                    self.notices.info(
                        f"an earlier attempt of this run ({run.described}) submitted this "
                        f"request and task {handle.task_id} ended {answer.status}: submitting "
                        "it again"
                    )
                else:
                    attempts_spent = True
            except AmbiguousSubmitError:  # it may exist: it stays charged
                raise
            except SirayError:  # certainly refused (a 4xx, a connection never made)
                if charge is not None:
                    charge.refund()
                raise
            else:
                if attempts_spent:
                    raise SirayError(
                        f"this request ended failed {RUN_ATTEMPTS} times in this run "
                        f"({run.described if run else 'no run'}); not submitted again",
                        hint="--new submits it under a key of its own",
                    )
            priced = charge is not None and charge.price is not None and charge.unit is not None
            if priced and handle.row is not None:
                assert charge is not None and charge.price is not None and charge.unit is not None
                self.history.set_price(handle.row, float(charge.price), charge.unit)
            handle.asked = destination
            if settles:  # never before the id is recorded: a crash in between keeps the attempt
                self.history.settle(
                    key, provider=provider.name, base_url=provider.base_url, profile=self.profile
                )
        return handle

    def _rejoin(
        self, provider: Provider, record: Record, kind: TaskKind, destination: Path | None
    ) -> TaskHandle:
        from siray_cli.services.handle import TaskHandle

        assert record.task_id is not None
        when = time.strftime("%H:%M:%S", time.localtime(record.submitted_at))
        day = time.strftime("%Y-%m-%d", time.localtime(record.submitted_at))
        if day != time.strftime("%Y-%m-%d"):
            when = f"{day} {when}"
        there = destination is not None and any(
            Path(path).parent.resolve() == destination.resolve() and Path(path).is_file()
            for path in record.files
        )
        if record.state is TaskState.SUCCESS and there:
            self.notices.always(
                f"the same request was submitted at {when} and task {record.task_id} succeeded; "
                f"its files are in {destination} already: taking them (kept as they are) instead "
                "of paying again (--new submits another)"
            )
        elif record.state is TaskState.SUCCESS and destination is not None:
            self.notices.always(
                f"the same request was submitted at {when} and task {record.task_id} succeeded, "
                f"but its files never reached {destination}: fetching them instead of paying "
                "again (--new submits another)"
            )
        else:
            self.notices.always(
                f"the same request was submitted at {when} and its result never handed over: "
                f"following task {record.task_id} instead of paying again (--new submits another)"
            )
        # handed over where the command that submitted it asked (the record's destination),
        # not where this one does: a `generate` rejoining a `run -o DIR` task prints its id, and
        # that does not put its files in DIR
        return TaskHandle(
            record.task_id,
            provider,
            self,
            kind=kind,
            model=record.model,
            record=record,
            rejoined=True,
        )

    def _send(
        self,
        provider: Provider,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        announce: bool,
        idempotency_key: str | None,
        webhook: str | None,
        job_key: str,
        batch_line: int | None,
        batch_name: str | None,
        destination: str | None,
        run: RunIdentity | None = None,
    ) -> TaskHandle:
        from siray_cli.services.handle import TaskHandle

        history = self.history
        if provider.capabilities.supports_idempotency and idempotency_key is None:
            idempotency_key = str(uuid.uuid4())  # journalled with the intent, before sending
        if not provider.capabilities.supports_idempotency:
            idempotency_key = None
        handle: TaskHandle | None = None
        sent_at = time.time()
        try:
            with signals.deferred_interrupts(self.notices.always):
                row = self._journal(
                    provider,
                    kind,
                    body,
                    None,
                    idempotency_key=idempotency_key,
                    job_key=job_key,
                    batch=(batch_line, batch_name),
                    destination=destination,
                )
                try:
                    task = provider.submit(
                        kind, body, idempotency_key=idempotency_key, webhook=webhook
                    )
                except AmbiguousSubmitError as exc:  # the journalled intent stays, UNCERTAIN
                    if history.enabled and idempotency_key:
                        exc.hint = (
                            f"{exc.hint}: run the same command again to do so (the key is in "
                            "`siray history`)"
                        )
                    elif history.enabled:
                        exc.hint = (
                            f"{exc.hint}; the attempt is in `siray history --status UNCERTAIN`"
                        )
                    raise
                except IdempotencyConflictError as exc:  # nothing made now
                    history.forget(row)
                    if run is not None:
                        raise self._made_earlier_in_run(exc, run, batch_line) from None
                    raise
                except SirayError:  # refused (a 4xx, a connection never made): nothing made
                    history.forget(row)
                    raise
                except KeyboardInterrupt:  # forced by a second signal: the task may exist
                    self.notices.always(
                        "interrupted while submitting: the task may have been "
                        "created; the attempt is in `siray history`"
                    )
                    raise
                history.confirm(row, task.task_id)
                handle = TaskHandle(
                    task.task_id,
                    provider,
                    self,
                    kind=task.kind,
                    model=task.model,
                    row=row,
                    asked=Path(destination) if destination is not None else None,
                    request=body,
                    created_at=sent_at,
                )
                if task.answer is not None and task.answer.is_terminal:
                    handle.seen(task.answer)  # made earlier under the same key, and ended
                if announce:
                    self.notices.always(f"task {task.task_id} submitted ({task.model})")
        except KeyboardInterrupt:
            if handle is None:
                raise
            # a signal held while the create was in flight: the task exists and keeps running
            raise Interrupted(
                f"{signals.name()} once the task was submitted; {handle.task_id} keeps running",
                hint=handle.resume_hint(),
                task_id=handle.task_id,
            ) from None
        return handle

    def _made_earlier_in_run(
        self, exc: IdempotencyConflictError, run: RunIdentity, batch_line: int | None
    ) -> IdempotencyConflictError:
        """A 422 for the run's key of this job: an earlier attempt of the run submitted it with
        other parameters (a local file uploaded again has a new URL). Never sent again under
        another key: its task exists, and is taken up from that attempt's results."""
        message = (
            f"submitted by an earlier attempt of this run ({run.described}) with other "
            "parameters (a local file uploaded again has a new URL, say), so it was not "
            "submitted again"
        )
        if batch_line is not None:  # a line's result carries its message, not a hint
            message += (
                "; take its task up with --resume-from RESULTS, the `run --batch --json` "
                "output of that attempt (no line is paid twice)"
            )
            hint = "rerun the batch with --resume-from the earlier attempt's results"
        else:
            hint = (
                "its task id is in that attempt's log: follow it with `siray status ID --wait`; "
                "--new submits (and pays for) another"
            )
        return IdempotencyConflictError(message, hint=hint, status_code=exc.status_code)

    def adopt(
        self,
        provider: Provider,
        key: str,
        kind: TaskKind,
        body: dict[str, Any],
        task: Task,
        *,
        batch_line: int | None = None,
        batch_name: str | None = None,
        destination: Path | None = None,
    ) -> None:
        """A task that an earlier attempt of this job submitted on another machine (its results
        file: `run --batch --resume-from`), recorded here as the job's, in the state its server
        gives now: from then on the verdicts on the job follow it as if this history had
        submitted it (rejoined, fetched, or, ended failed, submitted again)."""
        where = str(destination.resolve()) if destination is not None else None
        with self.job_lock(provider, key):
            row = self._journal(
                provider,
                kind,
                body,
                task.task_id,
                job_key=key,
                batch=(batch_line, batch_name),
                destination=where,
            )
            if row is not None:
                self.history.update(row, task)

    def _journal(
        self,
        provider: Provider,
        kind: TaskKind,
        body: dict[str, Any],
        task_id: str | None,
        *,
        job_key: str,
        batch: tuple[int | None, str | None],
        destination: str | None,
        idempotency_key: str | None = None,
    ) -> int | None:
        """A submit's row in the history: an intent (no task id yet) or a task made."""
        return self.history.record_submit(
            task_id=task_id,
            kind=kind.value,
            model=str(body.get("model", "")),
            request=body,
            base_url=provider.base_url,
            profile=self.profile,
            provider=provider.name,
            idempotency_key=idempotency_key,
            job_key=job_key,
            batch_line=batch[0],
            batch_name=batch[1],
            destination=destination,
        )

    # -- what a handle records

    def record_for(self, handle: TaskHandle) -> Record | None:
        return self.history.find(
            handle.task_id, provider=handle.provider.name, base_url=handle.provider.base_url
        )

    def saw(self, handle: TaskHandle, task: Task) -> None:
        """A look at the task: its state is recorded (nothing when it did not change)."""
        if handle.row is not None:
            self.history.update(handle.row, task)

    def saved(self, handle: TaskHandle, files: list[Path]) -> None:
        """The task's outputs were saved there (absolute: the history is read from anywhere),
        each with its SHA-256."""
        if handle.row is not None:
            from siray_cli.storage.provenance import digests_of

            paths = [path.resolve() for path in files]
            digests: list[tuple[str, str | None]] = []  # how `siray info` finds them
            for path in paths:
                try:
                    digests.append(digests_of(path))
                except OSError:  # gone already: the files before it keep theirs
                    break
            self.history.set_files(handle.row, [str(path) for path in paths], digests)

    def hand_over(self, handle: TaskHandle, task: Task | None, directory: Path | None) -> None:
        """The command told the task's result: its failure, its id or outputs (printed), or its
        files (saved in `directory`). It counts as handed over, so that a rerun of the command
        that submitted it pays for a new task, only where that command asked: a task whose
        files were asked into a directory is handed over once they are there."""
        if handle.row is None:
            return
        by = "later" if handle.resuming else "submitter"
        if task is not None and task.is_terminal and not task.succeeded:
            self.history.deliver(handle.row, by)  # the failure is the result, wherever told
            return
        asked = handle.destination()
        if asked == UNKNOWN_PLACE:  # recorded before siray kept it: saved files, anywhere
            if directory is not None:
                self.history.deliver(handle.row, by)
        elif asked is None or (directory is not None and same_place(directory, asked)):
            self.history.deliver(handle.row, by)

    def forget(self, task_ids: list[str]) -> int:
        return self.history.forget_tasks(task_ids)
