"""Batch runs: many jobs from one file, every line checked before any is paid for, a bounded
number of tasks in flight, each task recorded before it is waited for, and results reported as
soon as each task ends. No printing here: the command layer gives the callbacks."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from siray_cli import signals
from siray_cli.domain import SubmittedTask, Task, TaskKind
from siray_cli.errors import (
    BatchBusyError,
    ConcurrencyLimitError,
    Interrupted,
    NetworkError,
    ProtocolError,
    SirayError,
    UsageError,
    WaitTimeoutError,
)
from siray_cli.names import safe_name
from siray_cli.providers import command_prefix
from siray_cli.services.journal import Earlier, earlier, fingerprint, uncertain_message
from siray_cli.services.values import (
    UPLOAD_PLACEHOLDER,
    InputItem,
    check_input_value,
    load_json,
)

if TYPE_CHECKING:
    from siray_cli.domain import ModelInfo
    from siray_cli.services.polling import AdaptiveSchedule, Schedule
    from siray_cli.services.session import Providers, Session
    from siray_cli.services.uploads import Transfers
    from siray_cli.storage.history import Record

FIELDS = ("model", "prompt", "inputs", "name", "provider")
BOM = "\ufeff"  # a byte-order mark, as editors on Windows write at the start of a file
STATUS_RATE = 20.0  # status requests a second, at most, for the whole batch
CONCURRENCY_RETRIES = 120  # times a job refused for the account's concurrency limit waits
CONCURRENCY_WAIT = 5.0  # seconds at most before it tries again, if no task of the batch ends
MAX_REPORTED = 20


@dataclass
class Job:
    line: int
    model: str | None
    prompt: str | None
    inputs: dict[str, Any] = field(default_factory=dict)  # JSON Lines: typed values
    items: list[InputItem] = field(default_factory=list)  # CSV: text, typed by the schema
    name: str | None = None
    provider: str | None = None  # the line's own provider, else the one in effect


@dataclass
class PreparedJob:
    line: int
    name: str | None
    kind: TaskKind
    body: dict[str, Any]
    key: str  # identifies the job's content (and its rank among equal lines) in the history
    provider: str | None = None


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.succeeded

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "name": self.name,
            "task_id": self.task_id,
            "status": self.status,
            "outputs": self.outputs,
            "files": self.files,
            "error": self.error,
            "resumed": self.resumed,
        }


def _bad(problems: list[str], what: str) -> UsageError:
    shown = problems[:MAX_REPORTED]
    more = f"; and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return UsageError(
        f"{what}: {len(problems)} bad line{'s' if len(problems) > 1 else ''}, nothing was "
        f"submitted: " + "; ".join(shown) + more,
        hint='each line is {"model": ..., "prompt": ..., "inputs": {...}, "name": ...} '
        "(or a CSV row with a header)",
    )


def read_jobs(text: str, source: str) -> list[Job]:
    """JSON Lines, or CSV with a header row (detected from the first non-blank line)."""
    jobs, problems = parse_jobs(text, source)
    if problems:
        raise _bad(problems, source)
    return jobs


def parse_jobs(text: str, source: str) -> tuple[list[Job], list[str]]:
    """The jobs that could be read, and a problem for each line that could not."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise UsageError(f"{source} holds no job")
    return (_read_jsonl if first.lstrip().startswith("{") else _read_csv)(text)


def _text_or_none(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _read_jsonl(text: str) -> tuple[list[Job], list[str]]:
    jobs, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            document = load_json(line)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            unknown = sorted(set(document) - set(FIELDS))
            if unknown:
                raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
            inputs = document.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise ValueError("inputs must be an object")
            jobs.append(
                Job(
                    number,
                    _text_or_none(document.get("model"), "model"),
                    _text_or_none(document.get("prompt"), "prompt"),
                    inputs=inputs,
                    name=_text_or_none(document.get("name"), "name"),
                    provider=_text_or_none(document.get("provider"), "provider"),
                )
            )
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                where = f"{exc.msg} at column {exc.colno}"
                problems.append(f"line {number}: not valid JSON ({where})")
            else:
                problems.append(f"line {number}: {exc}")
    return jobs, problems


def _read_csv(text: str) -> tuple[list[Job], list[str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        return [], [f"line {reader.line_num}: {exc}"]
    if not reader.fieldnames or "prompt" not in reader.fieldnames:
        return [], ["line 1: a CSV batch needs a header row with at least a prompt column"]
    jobs, problems = [], []
    for number, row in zip(_row_lines(text), rows, strict=False):
        if None in row:
            problems.append(f"line {number}: more cells than header columns")
            continue
        items = [
            InputItem(key, value)
            for key, value in row.items()
            if key not in FIELDS and key and value not in (None, "")
        ]
        try:
            for item in items:
                check_input_value(item.key, item.raw)
        except UsageError as exc:
            problems.append(f"line {number}: {exc.message}")
            continue
        jobs.append(
            Job(
                number,
                row.get("model") or None,
                row.get("prompt") or None,
                items=items,
                name=row.get("name") or None,
                provider=row.get("provider") or None,
            )
        )
    return jobs, problems


def _row_lines(text: str) -> list[int]:
    """The line number each CSV row starts on (a quoted cell may span lines; blank lines, which
    csv.DictReader skips, are not rows)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    numbers, previous = [], 0
    for row in reader:
        if row:
            numbers.append(previous + 1)
        previous = reader.line_num
    return numbers[1:]  # after the header


def _line_number(problem: str) -> int:
    match = re.match(r"line (\d+)", problem)
    return int(match.group(1)) if match else 0


def prepare_jobs(
    jobs: list[Job],
    build: Callable[[Job], tuple[TaskKind, dict[str, Any]]],
    source: str,
    unread: list[str] | None = None,
    identity: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body,
) -> list[PreparedJob]:
    """Every line built and checked; any problem on any line (`unread`: those that could not
    even be read) fails the batch before a submit, all of them named at once. Each job's key is
    made from its body as `identity` gives it (the local files it names, by what they are) and
    from how many lines before it ask for the same."""
    prepared: list[PreparedJob] = []
    problems: list[str] = list(unread or [])
    names: dict[str, tuple[int, str]] = {}
    seen: dict[str, int] = {}  # a body's key -> lines with it so far
    for job in jobs:
        try:
            kind, body = build(job)
        except SirayError as exc:
            if not isinstance(exc, UsageError):
                raise
            problems.append(f"line {job.line}: {exc.message}")
            continue
        if job.name is not None:
            stem = safe_name(job.name).casefold()  # as a file name, on any file system
            if stem in names:
                first = names[stem]
                problems.append(
                    f"line {job.line}: name {job.name!r} gives the same file name as the name "
                    f"{first[1]!r} on line {first[0]}"
                    if first[1] != job.name
                    else f"line {job.line}: name {job.name!r} is already used on line {first[0]}"
                )
                continue
            names[stem] = (job.line, job.name)
        named = identity(body)
        plain = fingerprint(kind, named)
        earlier_lines = seen.get(plain, 0)
        seen[plain] = earlier_lines + 1
        key = fingerprint(kind, named, occurrence=earlier_lines) if earlier_lines else plain
        prepared.append(PreparedJob(job.line, job.name, kind, body, key, provider=job.provider))
    if problems:
        problems.sort(key=_line_number)
        raise _bad(problems, source)
    return prepared


class Stopped(Exception):  # a signal between threads, never shown
    pass


@dataclass
class BatchHooks:
    """What the runner needs from the command layer."""

    submit: Callable[[PreparedJob], SubmittedTask]
    wait: Callable[[PreparedJob, str, threading.Event], Task]
    download: Callable[[PreparedJob, Task], list[Path]] | None
    started: Callable[[PreparedJob, str], None]
    finished: Callable[[JobResult], None]
    # (a task of this job to rejoin, or the job's result already), from the history
    previous: Callable[[PreparedJob], tuple[str | None, JobResult | None]]


class BatchRunner:
    def __init__(
        self,
        jobs: list[PreparedJob],
        hooks: BatchHooks,
        *,
        concurrency: int,
        hold_limit: float | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.jobs = jobs
        self.hooks = hooks
        self.hold_limit = hold_limit  # seconds a job waits out a concurrency limit, at most
        self.notify = notify
        self.concurrency = max(1, min(concurrency, len(jobs) or 1))
        self.stop = threading.Event()
        self.results: list[JobResult] = []
        self.in_flight: dict[str, PreparedJob] = {}  # task id -> job, submitted and not ended
        self._submitting = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[PreparedJob] = queue.Queue()
        self._threads: list[threading.Thread] = []
        # Workers count themselves out here. The main thread never joins them: on Python 3.11 a
        # Ctrl-C landing inside Thread.join() can mark a thread that is still running as
        # stopped (bpo-45274's cleanup), and a later join would then not wait for its submit.
        self._working = 0
        self._done = threading.Condition()
        self._ended = threading.Condition()  # a job ended: one held back by a limit may go

    def start(self) -> None:
        for job in self.jobs:
            self._queue.put(job)
        with self._done:
            self._working = self.concurrency
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"siray-batch-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def running(self) -> bool:
        with self._done:
            return self._working > 0

    def join(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for every worker to finish."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._working > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._done.wait(remaining)

    def interrupt(self, grace: float = 15.0) -> tuple[list[str], int]:
        """Stop submitting; let submits already sent finish (so their ids are recorded), unless
        a second signal forces it; return the ids of the tasks left running, and how many
        submits are still unanswered (journalled as UNCERTAIN: they may have created tasks)."""
        self.stop.set()
        with contextlib.suppress(KeyboardInterrupt):  # forced: what is known now is told
            if grace > 0:
                self.join(grace)
        with self._lock:
            return list(self.in_flight), self._submitting

    def _work(self) -> None:
        try:
            self._take_jobs()
        finally:
            with self._done:
                self._working -= 1
                self._done.notify_all()

    def _take_jobs(self) -> None:
        while not self.stop.is_set():
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            result = self._run(job)
            if result is None:
                return
            with self._lock:
                self.results.append(result)
            with self._ended:
                self._ended.notify_all()
            try:
                self.hooks.finished(result)
            except Exception:  # a display that failed must not take the other jobs with it
                continue

    def _submit(self, job: PreparedJob) -> SubmittedTask | None:
        """Submit a job. A provider's concurrency limit is no failure: the request was refused,
        so it is sent again once one of this batch's tasks has ended (or a while has passed)."""
        held_since = time.monotonic()
        for attempt in range(CONCURRENCY_RETRIES):
            try:
                return self.hooks.submit(job)
            except ConcurrencyLimitError:
                if self.hold_limit and time.monotonic() - held_since > self.hold_limit:
                    raise
                if attempt == 0:
                    self.notify(
                        f"{label(job.line, job.name)}: the provider's concurrency limit is "
                        "reached; held back until a task ends"
                    )
                with self._ended:
                    self._ended.wait(CONCURRENCY_WAIT)
                if self.stop.is_set():
                    return None
        return self.hooks.submit(job)

    def _run(self, job: PreparedJob) -> JobResult | None:
        """The job from submit (or rejoin) to downloaded outputs. Whatever goes wrong ends as
        this job's result, never as the worker's death: the other jobs still run."""
        task_id: str | None = None
        resumed: str | None = None
        try:
            task_id, done = self.hooks.previous(job)
            if done is not None:
                return done
            resumed = "rejoined" if task_id else None
            if task_id is None:
                with self._lock:
                    if self.stop.is_set():
                        return None
                    self._submitting += 1
                try:
                    task = self._submit(job)
                finally:
                    with self._lock:
                        self._submitting -= 1
                if task is None:
                    return None
                task_id = task.task_id
                resumed = "rejoined" if task.rejoined else None
            with self._lock:
                self.in_flight[task_id] = job
            self.hooks.started(job, task_id)
            final = self.hooks.wait(job, task_id, self.stop)
            files = (
                self.hooks.download(job, final) if final.succeeded and self.hooks.download else []
            )
            with self._lock:
                self.in_flight.pop(task_id, None)
            error = (
                None
                if final.succeeded
                else {"type": "task_failed", "message": final.fail_reason or final.status}
            )
            return JobResult(
                job.line,
                job.name,
                task_id,
                final.status,
                final.urls,
                [str(p) for p in files],
                error,
                resumed,
                final.succeeded,
            )
        except Stopped:
            return None
        except Exception as exc:
            with self._lock:
                if task_id:
                    self.in_flight.pop(task_id, None)
            failed = _failed(job, task_id, exc)
            failed.resumed = resumed
            return failed


def _failed(job: PreparedJob, task_id: str | None, exc: Exception) -> JobResult:
    if isinstance(exc, SirayError):
        error = {"type": exc.error_type, "message": exc.message, "status_code": exc.status_code}
        return JobResult(job.line, job.name, task_id or exc.task_id, "ERROR", error=error)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        message = f"{exc.strerror or type(exc).__name__}{where}"
        error = {"type": "io_error", "message": message, "status_code": None}
    else:
        message = f"{type(exc).__name__}: {exc}"
        error = {"type": "internal_error", "message": message, "status_code": None}
    return JobResult(job.line, job.name, task_id, "ERROR", error=error)


def read_source(source: str) -> tuple[str, str]:
    """The batch file's text (or standard input's, for `-`), and how to name it in messages."""
    if source == "-":
        return sys.stdin.read().removeprefix(BOM), "standard input"
    try:
        return Path(source).read_text(encoding="utf-8-sig"), source
    except FileNotFoundError:
        raise UsageError(f"batch file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read batch file {source}: {exc}") from None


def label(line: int, name: str | None) -> str:
    return f"line {line}" + (f" ({name})" if name else "")


class BatchWatcher(Protocol):
    """A batch's live display (progress.BatchDisplay is one); called from worker threads."""

    def started(self, label: str, task_id: str) -> None: ...

    def update(self, label: str, status: Task) -> None: ...

    def finished(
        self, label: str, task_id: str | None, ok: bool, summary: str, was_running: bool
    ) -> None: ...


@dataclass
class BatchOptions:
    source: str
    default_model: str | None
    concurrency: int
    directory: Path | None
    force: bool
    timeout: float
    poll_interval: float | None
    resume: bool
    validate: bool
    inline: bool
    resubmit_uncertain: bool = False


@dataclass
class BatchOutcome:
    results: list[JobResult]
    total: int
    seconds: float

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.resumed == "skipped")


def _builder(
    session: Session, providers: Providers, default_model: str | None, validate: bool, files: Any
) -> Callable[[Job], tuple[TaskKind, dict[str, Any]]]:
    from siray_cli.services.requests import build_body, checked_model, pick_kind

    infos: dict[tuple[str, str], ModelInfo] = {}

    def build(job: Job) -> tuple[TaskKind, dict[str, Any]]:
        model = job.model or default_model
        if not model:
            raise UsageError("no model (give one on the line, or --model for every line)")
        provider = providers.named(job.provider)
        info = None
        if validate:
            info = infos.get((provider.name, model)) or checked_model(session, provider, model)
            if info is not None:
                infos[(provider.name, model)] = info
        body = build_body(
            model,
            job.prompt,
            dict(job.inputs),
            job.items,
            info=info,
            local_file=files.add,
            command=command_prefix(provider.name),
        )
        return pick_kind(model, None, info), body

    return build


def _earlier(
    session: Session, providers: Providers, job: PreparedJob, options: BatchOptions
) -> Earlier:
    """What the history says of a job: with --resume, every earlier attempt; without, only
    those whose result was never handed over (a run killed or timed out, or still under way)."""
    return earlier(
        session,
        providers.named(job.provider),
        job.key,
        handed_over_too=options.resume,
        resubmit_uncertain=options.resubmit_uncertain,
    )


class _BatchSession:
    """The hooks a batch runner calls: waiting with the shared rate limit, downloads named from
    the job, the live display, and each result handed on as soon as its task ends."""

    def __init__(
        self,
        session: Session,
        providers: Providers,
        options: BatchOptions,
        display: BatchWatcher,
        on_result: Callable[[JobResult], None],
    ) -> None:
        from siray_cli.services.outputs import download_client
        from siray_cli.services.polling import Peers, RateLimiter, default_schedule

        self.session, self.providers, self.options = session, providers, options
        self.display, self.on_result = display, on_result
        self.schedule = default_schedule(options.poll_interval)
        self.limiter = RateLimiter(STATUS_RATE)
        # with the adaptive schedule, the tasks submitted here on one model (by provider and
        # model) bring each other's looks forward as they end
        self._peers: dict[tuple[str, str], Peers] = {}
        self._submitted: dict[str, float] = {}  # task id -> when its submit was answered
        # built only when the batch downloads (-o): a batch that prints URLs needs none
        self.downloads = download_client(session) if options.directory is not None else None
        self._write = threading.Lock()
        self._running: set[int] = set()  # lines whose task the display shows as running

    def hooks(self) -> BatchHooks:

        return BatchHooks(
            submit=self.submit,
            wait=self.wait,
            download=self.download if self.options.directory is not None else None,
            started=self.started,
            finished=self.finished,
            previous=self.previous,
        )

    def started(self, job: PreparedJob, task_id: str) -> None:
        with self._write:
            self._running.add(job.line)
        self.display.started(label(job.line, job.name), task_id)

    def previous(self, job: PreparedJob) -> tuple[str | None, JobResult | None]:
        """What the history says of this job on this provider, host and profile (with --resume,
        of every earlier attempt; without, of those whose result was never handed over): a task
        still running (rejoined), one that succeeded (skipped once its files are where this run
        puts them, else downloaded again from that task, never paid again), or a submit whose
        answer never came (sent again with its idempotency key where the provider takes one,
        else reported, not resubmitted, unless --resubmit-uncertain)."""
        from siray_cli.services.journal import job_lock

        # under the job's lock: a submit of it under way in another siray is waited for, so
        # its journalled intent is not taken for one whose answer never came
        with job_lock(self.session, self.providers.named(job.provider), job.key):
            found = _earlier(self.session, self.providers, job, self.options)
        record = found.record
        if found.verdict == "done" and record is not None:
            return None, self._already_done(job, record)
        if found.verdict == "running" and record is not None:
            return record.task_id, None
        if found.verdict == "resend":  # the submit sends it again with its key (journal.submit)
            job.body = found.kept_body or job.body
        if found.verdict == "report" and record is not None:
            message = (
                f"{uncertain_message(record, 'this line')}; check before paying twice, then run "
                "with --resubmit-uncertain to submit it anyway"
            )
            error = {"type": "submit_uncertain", "message": message, "status_code": None}
            return None, JobResult(job.line, job.name, None, "UNCERTAIN", error=error)
        return None, None

    def submit(self, job: PreparedJob) -> SubmittedTask:
        """Submit a job, journalled; under the job's lock, journal.submit looks at the history
        again, so a task another siray submitted for this job meanwhile is rejoined instead."""
        from siray_cli.services.journal import submit
        from siray_cli.services.polling import Peers

        provider = self.providers.named(job.provider)
        if UPLOAD_PLACEHOLDER in json.dumps(job.body):  # never sent: a file was not uploaded
            raise AssertionError(f"line {job.line}: a local file of it was not uploaded")
        task = submit(
            self.session,
            provider,
            job.kind,
            job.body,
            announce=False,
            job_key=job.key,
            resubmit_uncertain=self.options.resubmit_uncertain,
            batch_line=job.line,
            batch_name=job.name,
        )
        with self._write:
            if not task.rejoined:
                self._submitted[task.task_id] = time.monotonic()
            if self.options.poll_interval is None:
                self._peers.setdefault((provider.name, str(job.body.get("model"))), Peers())
        return task

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

    def _already_done(self, job: PreparedJob, record: Record) -> JobResult:
        assert record.task_id is not None
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
        task = self.providers.for_task(record.task_id).get(record.task_id)
        self.session.history.update(task)
        if not task.succeeded:
            raise ProtocolError(
                f"task {task.task_id} was recorded as succeeded, but the server now says "
                f"{task.status}",
                task_id=task.task_id,
            )
        files = self.download(job, task)
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

    def wait(self, job: PreparedJob, task_id: str, stop: threading.Event) -> Task:
        from siray_cli.services.polling import WaitTimedOut, wait_for_tasks
        from siray_cli.services.waiting import LAST_LOOK
        from siray_cli.transport import deadline

        def fetch(tid: str) -> Task:
            if stop.is_set():
                raise Stopped
            self.limiter.acquire()
            return self.providers.for_task(tid).get(tid)

        adaptive = self._schedule_for(job, task_id)
        schedule: Callable[[], Schedule] = self.schedule if adaptive is None else lambda: adaptive

        def sleep(seconds: float) -> None:
            if adaptive is not None and adaptive.peers is not None:
                adaptive.peers.nap(seconds, adaptive.peer_look, stop)
                if stop.is_set():
                    raise Stopped
            elif stop.wait(seconds):
                raise Stopped

        def on_update(status: Task) -> None:
            self.display.update(label(job.line, job.name), status)
            self.session.history.update(status)

        timeout = self.options.timeout
        ends = time.monotonic() + timeout if timeout else None
        try:
            with deadline(None if ends is None else ends + LAST_LOOK):
                return wait_for_tasks(
                    [task_id],
                    fetch,
                    timeout=timeout or None,
                    schedule=schedule,
                    on_update=on_update,
                    sleep=sleep,
                )[task_id]
        except (WaitTimedOut, NetworkError) as exc:
            late = ends is not None and time.monotonic() >= ends + LAST_LOOK
            if isinstance(exc, NetworkError) and not late:
                raise
            raise WaitTimeoutError(
                f"gave up waiting after {timeout:g}s; it may still finish", task_id=task_id
            ) from None

    def download(self, job: PreparedJob, final: Task) -> list[Path]:
        from siray_cli.services.outputs import download_outputs

        assert self.options.directory is not None and self.downloads is not None
        return download_outputs(
            self.session,
            final,
            self.options.directory,
            force=self.options.force,
            client=self.downloads,
            name=job.name,
            tell_on_failure=False,
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
        handed_over = result.succeeded or (result.error or {}).get("type") == "task_failed"
        if result.task_id and handed_over:
            self.session.history.deliver(result.task_id)


def run_batch(
    session: Session,
    providers: Providers,
    options: BatchOptions,
    display: Callable[[int], AbstractContextManager[BatchWatcher]],
    transfers: Transfers,
    on_result: Callable[[JobResult], None],
) -> BatchOutcome:
    """Check every line, upload the local files they name, then run them all. A Ctrl-C stops
    submitting, lets the submits under way finish, and raises Interrupted naming the ids left
    running."""

    text, where = read_source(options.source)
    with batch_lock(text, where):
        return _run_locked(session, providers, options, text, where, display, transfers, on_result)


def _run_locked(
    session: Session,
    providers: Providers,
    options: BatchOptions,
    text: str,
    where: str,
    display: Callable[[int], AbstractContextManager[BatchWatcher]],
    transfers: Transfers,
    on_result: Callable[[JobResult], None],
) -> BatchOutcome:
    from siray_cli.services.requests import LocalFiles

    files = LocalFiles(session, inline=options.inline)
    build = _builder(session, providers, options.default_model, options.validate, files)
    read, unread = parse_jobs(text, where)
    jobs = prepare_jobs(read, build, where, unread, identity=files.identity)
    found = {job.line: _earlier(session, providers, job, options) for job in jobs}
    if options.directory is not None and not options.force and not options.resume:
        # (a line whose earlier task is rejoined writes that task's files, whatever is there)
        fresh = [job for job in jobs if found[job.line].verdict not in ("done", "running")]
        _refuse_existing_files(fresh, options.directory)
    # every line passed: now upload the local files they name, once each per provider, all of
    # one provider's together; only those of lines that may be submitted now (a line whose
    # earlier task succeeded, is still running or waits on an unanswered submit needs none)
    by_provider: dict[str | None, list[PreparedJob]] = {}
    for job in jobs:
        if found[job.line].needs_new_body:
            by_provider.setdefault(job.provider, []).append(job)
    for name, group in by_provider.items():
        provider = providers.named(name)
        files.upload(provider, [job.body for job in group], transfers)
        for job in group:
            job.body = files.resolve(provider, job.body, transfers)
    with display(len(jobs)) as watcher:
        batch = _BatchSession(session, providers, options, watcher, on_result)
        runner = BatchRunner(
            jobs,
            batch.hooks(),
            concurrency=options.concurrency,
            hold_limit=options.timeout or None,
            notify=session.notices.info,
        )
        started = time.monotonic()
        try:
            runner.start()
            while runner.running():
                runner.join(0.2)
                signals.check()
        except KeyboardInterrupt:
            try:
                session.notices.always(
                    "interrupted: no new task is submitted; waiting for submits under way..."
                )
                left, unanswered = runner.interrupt()
            except KeyboardInterrupt:  # a second signal, wherever it landed: tell what is known
                left, unanswered = runner.interrupt(grace=0)
            message = (
                f"{signals.name()}; {len(left)} task{'s' if len(left) != 1 else ''} keep running"
                + (f": {' '.join(left)}" if left else "")
            )
            hint = (
                "resume waiting with: siray status --all-pending --wait "
                "(or run the same command again: it follows these tasks)"
            )
            if unanswered:
                message += (
                    f"; {unanswered} submit{'s' if unanswered != 1 else ''} got no answer and "
                    "may have created tasks"
                )
                hint += "; `siray history --status UNCERTAIN` lists the unanswered submits"
            raise Interrupted(message, hint=hint) from None
        finally:
            if batch.downloads is not None:
                batch.downloads.close()
        ended = {result.line for result in runner.results}
        for job in jobs:  # a job that ended without a result is a failure, never a silent 0
            if job.line not in ended:
                error = {"type": "internal_error", "message": "the job did not run to its end"}
                lost = JobResult(job.line, job.name, None, "ERROR", error=error)
                runner.results.append(lost)
                batch.finished(lost)
    return BatchOutcome(runner.results, len(jobs), time.monotonic() - started)


def _refuse_existing_files(jobs: list[PreparedJob], directory: Path) -> None:
    """Files a named job would write that exist already: refused before anything is paid for
    (downloading over them is refused anyway, after the task ran)."""
    import glob

    clashes = []
    for job in jobs:
        if job.name is None:
            continue
        stem = glob.escape(safe_name(job.name))
        found = sorted({*directory.glob(f"{stem}.*"), *directory.glob(f"{stem}_[0-9]*.*")})
        clashes += [f"line {job.line}: {path} exists" for path in found]
    if clashes:
        raise UsageError(
            f"{len(clashes)} output file{'s' if len(clashes) > 1 else ''} exist already, "
            "nothing was submitted: " + "; ".join(clashes[:MAX_REPORTED]),
            hint="--resume skips the lines already done, --force overwrites, or choose another -o",
        )


@contextmanager
def batch_lock(text: str, where: str) -> Iterator[None]:
    """One run of a batch at a time: two runs of the same jobs (the same file, or its copy) would
    each pay for every job that the other has not recorded yet. A second run is refused."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks here
        yield
        return
    from siray_cli.storage.history import lock_file

    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    path = lock_file(f"batch-{digest}.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
            raise BatchBusyError(
                f"another siray is running the batch in {where} (pid {holder or '?'}); "
                "nothing was submitted",
                hint="wait for it to end, then run again with --resume",
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)
