"""One line of a batch, from its verdict to its result: rejoined, skipped or submitted through
the Ledger; waited for through its TaskHandle, with its peers' news (the request rate is the
provider client's, shared by every line: transport/pacing.py); its files saved under the line's
name; and its result handed on as soon as it ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from siray_cli.domain import Task
from siray_cli.errors import OverBudgetError, ProtocolError, SirayError
from siray_cli.services.batch.jobs import PreparedJob, label
from siray_cli.services.budget import Budget, Charge
from siray_cli.services.handle import TaskHandle, wait
from siray_cli.services.ledger import PriorAttempt, uncertain_message
from siray_cli.services.values import UPLOAD_PLACEHOLDER

if TYPE_CHECKING:
    from siray_cli.services.outputs import Downloads
    from siray_cli.services.polling import AdaptiveSchedule, Schedule
    from siray_cli.services.session import Providers, Session
    from siray_cli.storage.records import Record


class Stopped(Exception):  # a signal between threads, never shown
    pass


@dataclass
class JobResult:
    line: int
    name: str | None
    task_id: str | None
    status: str
    outputs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    # with --resume: "skipped" (already succeeded), "downloaded again" (succeeded, files were
    # missing) or "rejoined" (was running)
    resumed: str | None = None
    succeeded: bool = False
    # the task's queued and run time where the server told it, else the line's own wall time
    # (reports: JUnit's time; not a field of the JSON record)
    seconds: float | None = None
    key: str | None = None  # the job's key (jobs.PreparedJob.key): --resume-from matches by it

    @property
    def ok(self) -> bool:
        return self.error is None and self.succeeded

    def to_json(self) -> dict[str, Any]:
        """One record of a batch's stream: "result" for a line that succeeded (or was skipped,
        done already), "error" for one that did not (its `error` says why)."""
        return {
            "type": "result" if self.ok else "error",
            "line": self.line,
            "name": self.name,
            "task_id": self.task_id,
            "status": self.status,
            "outputs": self.outputs,
            "files": self.files,
            "error": self.error,
            "resumed": self.resumed,
            "key": self.key,
        }


def failed_result(job: PreparedJob, task_id: str | None, exc: Exception) -> JobResult:
    if isinstance(exc, SirayError):
        error = {"type": exc.error_type, "message": exc.message, "status_code": exc.status_code}
        status = "NOT_SENT" if isinstance(exc, OverBudgetError) else "ERROR"
        return JobResult(job.line, job.name, task_id or exc.task_id, status, error=error)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        message = f"{exc.strerror or type(exc).__name__}{where}"
        error = {"type": "io_error", "message": message, "status_code": None}
    else:
        message = f"{type(exc).__name__}: {exc}"
        error = {"type": "internal_error", "message": message, "status_code": None}
    return JobResult(job.line, job.name, task_id, "ERROR", error=error)


class BatchWatcher(Protocol):
    """A batch's live display (progress.BatchDisplay is one); called from worker threads.
    `counts_down`: it shows `held` (a terminal), so no periodic line needs to say it."""

    counts_down: bool

    def held(self, label: str, next_try: float, gives_up: float | None) -> None: ...

    def started(
        self, label: str, task_id: str, since: float | None = None, rejoined: bool = False
    ) -> None: ...

    def update(self, label: str, status: Task) -> None: ...

    def finished(
        self, label: str, task_id: str | None, ok: bool, summary: str, was_running: bool
    ) -> None: ...


@dataclass
class LineOptions:
    """What of the batch's options a line needs."""

    directory: Path | None
    force: bool
    timeout: float
    poll_interval: float | None
    resume: bool
    resubmit_uncertain: bool
    budget: Budget | None = None  # --max-cost / --max-tasks, shared by every line


class LineFlow:
    """What the runner asks of each line: its verdict, its submit, its wait, its downloads named
    from the job, the live display, and each result handed on, and handed over, as soon as its
    task ends."""

    def __init__(
        self,
        session: Session,
        providers: Providers,
        options: LineOptions,
        display: BatchWatcher,
        on_result: Callable[[JobResult], None],
        downloads: Downloads,
        on_started: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        from siray_cli.services.polling import Peers, default_schedule

        self.session, self.providers, self.options = session, providers, options
        self.ledger = session.ledger
        self.display, self.on_result, self.downloads = display, on_result, downloads
        self.on_started = on_started
        # lines not to be submitted, with why, decided before the batch began (--resume-from)
        self.held: dict[int, JobResult] = {}
        self.schedule = default_schedule(options.poll_interval)
        # with the adaptive schedule, the tasks submitted here on one model (by provider and
        # model) bring each other's looks forward as they end
        self._peers: dict[tuple[str, str], Peers] = {}
        self._submitted: dict[str, float] = {}  # task id -> when its submit was answered
        self._write = threading.Lock()
        self._running: set[int] = set()  # lines whose task the display shows as running
        self._handles: dict[int, TaskHandle] = {}  # line -> its task, to hand over at its end

    def prior(self, job: PreparedJob) -> PriorAttempt:
        """What the history says of a job: with --resume, every earlier attempt; without, only
        those whose result was never handed over (a run killed or timed out, or still under
        way)."""
        return self.ledger.prior(
            self.providers.named(job.provider),
            job.key,
            handed_over_too=self.options.resume,
            resubmit_uncertain=self.options.resubmit_uncertain,
        )

    def started(self, job: PreparedJob, handle: TaskHandle) -> None:
        with self._write:
            self._running.add(job.line)
            self._handles[job.line] = handle
            if self.on_started is not None:  # tied to its line now: a SIGKILL cannot lose it
                self.on_started(
                    {
                        "type": "submitted",
                        "line": job.line,
                        "name": job.name,
                        "key": job.key,
                        "task_id": handle.task_id,
                        "resumed": "rejoined" if handle.rejoined else None,
                    }
                )
        self.display.started(
            label(job.line, job.name), handle.task_id, handle.submitted_at, handle.rejoined
        )

    def previous(self, job: PreparedJob) -> tuple[TaskHandle | None, JobResult | None]:
        """What the history says of this job on this provider, host and profile: a task still
        running (its handle, rejoined), one that succeeded (skipped once its files are where
        this run puts them, else downloaded again from that task, never paid again), or a
        submit whose answer never came (sent again with its idempotency key where the provider
        takes one, else reported, not resubmitted, unless --resubmit-uncertain)."""
        if job.line in self.held:
            return None, self.held[job.line]
        provider = self.providers.named(job.provider)
        # under the job's lock: a submit of it under way in another siray is waited for, so
        # its journalled intent is not taken for one whose answer never came
        with self.ledger.job_lock(provider, job.key):
            found = self.prior(job)
        record = found.record
        if found.verdict == "done" and record is not None:
            return None, self._already_done(job, self._rejoined(job, record))
        if found.verdict == "running" and record is not None:
            return self._rejoined(job, record), None
        if found.verdict == "resend":  # the submit sends it again with its key (Ledger.submit)
            job.body = found.kept_body or job.body
        if found.verdict == "report" and record is not None:
            message = (
                f"{uncertain_message(record, 'this line')}; check before paying twice, then run "
                "with --resubmit-uncertain to submit it anyway"
            )
            error = {"type": "submit_uncertain", "message": message, "status_code": None}
            return None, JobResult(job.line, job.name, None, "UNCERTAIN", error=error)
        return None, None

    def _rejoined(self, job: PreparedJob, record: Record) -> TaskHandle:
        assert record.task_id is not None
        return TaskHandle(
            record.task_id,
            self.providers.named(job.provider),
            self.ledger,
            kind=job.kind,
            record=record,
            rejoined=True,
            resuming=self.options.resume,
        )

    def submit(self, job: PreparedJob) -> TaskHandle:
        """Submit a job, journalled; under the job's lock, the Ledger looks at the history again,
        so a task another siray submitted for this job meanwhile is rejoined instead."""
        from siray_cli.services.polling import Peers

        provider = self.providers.named(job.provider)
        if UPLOAD_PLACEHOLDER in json.dumps(job.body):  # never sent: a file was not uploaded
            raise AssertionError(f"line {job.line}: a local file of it was not uploaded")
        budget = self.options.budget
        handle = self.ledger.submit(
            provider,
            job.kind,
            job.body,
            destination=self.options.directory,
            announce=False,
            job_key=job.key,
            resubmit_uncertain=self.options.resubmit_uncertain,
            handed_over_too=self.options.resume,  # the attempts this run's look saw
            batch_line=job.line,
            batch_name=job.name,
            charge=Charge(budget, provider, str(job.body.get("model")), job.body)
            if budget is not None and budget.active
            else None,
        )
        handle.resuming = self.options.resume
        with self._write:
            if not handle.rejoined:
                self._submitted[handle.task_id] = time.monotonic()
            if self.options.poll_interval is None:
                self._peers.setdefault((provider.name, str(job.body.get("model"))), Peers())
        return handle

    def _schedule_for(self, job: PreparedJob, task_id: str) -> AdaptiveSchedule | None:
        """The adaptive schedule of a task this batch submitted, sharing its peers' news (a
        rejoined task's age is unknown, and a fixed beat stays fixed)."""
        from siray_cli.services.polling import AdaptiveSchedule

        provider = self.providers.named(job.provider)
        with self._write:
            submitted = self._submitted.pop(task_id, None)
            peers = self._peers.get((provider.name, str(job.body.get("model"))))
        if submitted is None or peers is None:
            return None
        return AdaptiveSchedule(started=submitted, peers=peers)

    def _already_done(self, job: PreparedJob, handle: TaskHandle) -> JobResult:
        record = handle.record
        assert record is not None
        with self._write:
            self._handles[job.line] = handle
        directory = self.options.directory
        result = JobResult(
            job.line,
            job.name,
            record.task_id,
            record.status,
            record.outputs,
            record.files,
            resumed="skipped",
            succeeded=True,
        )
        if directory is None:
            return result
        here = [directory / Path(name).name for name in record.files]
        if record.files and len(here) >= len(record.outputs) and all(p.is_file() for p in here):
            result.files = [str(p) for p in here]
            return result
        task = handle.status()
        if not task.succeeded:
            raise ProtocolError(
                f"task {task.task_id} was recorded as succeeded, but the server now says "
                f"{task.status}",
                task_id=task.task_id,
            )
        files = self.download(job, handle, task)
        return JobResult(
            job.line,
            job.name,
            task.task_id,
            task.status,
            task.urls,
            [str(p) for p in files],
            resumed="downloaded again",
            succeeded=True,
        )

    def wait(self, job: PreparedJob, handle: TaskHandle, stop: threading.Event) -> Task:
        def before_look() -> None:
            if stop.is_set():
                raise Stopped

        adaptive = self._schedule_for(job, handle.task_id)
        schedule: Callable[[], Schedule] = self.schedule if adaptive is None else lambda: adaptive

        def sleep(seconds: float) -> None:
            if adaptive is not None and adaptive.peers is not None:
                adaptive.peers.nap(seconds, adaptive.peer_look, stop)
                if stop.is_set():
                    raise Stopped
            elif stop.wait(seconds):
                raise Stopped

        return wait(
            [handle],
            timeout=self.options.timeout,
            read_timeout=self.session.read_timeout,
            schedule=schedule,
            on_update=lambda status: self.display.update(label(job.line, job.name), status),
            sleep=sleep,
            before_look=before_look,
        )[handle.task_id]

    def download(self, job: PreparedJob, handle: TaskHandle, final: Task) -> list[Path]:
        if self.options.directory is None:
            return []
        return self.downloads.save(
            handle,
            final,
            self.options.directory,
            force=self.options.force,
            name=job.name,
            line=job.line,
            model=str(job.body.get("model", "")),
            tell_on_failure=False,
            keep=handle.rejoined,  # its files may be there already: kept, never overwritten
        )

    def finished(self, result: JobResult) -> None:
        summary = (
            result.status
            if result.error is None
            else (f"{result.status}: {result.error['message']}")
        )
        if result.resumed == "skipped":
            summary = "SUCCESS (already, skipped)"
        with self._write:
            self.display.finished(
                label(result.line, result.name),
                result.task_id,
                result.ok,
                summary,
                was_running=result.line in self._running,
            )
            self.on_result(result)
            handle = self._handles.pop(result.line, None)
        failed = (result.error or {}).get("type") == "task_failed"
        if handle is not None and (result.succeeded or failed):
            handle.hand_over(handle.last, self.options.directory if result.files else None)
