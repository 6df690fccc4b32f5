"""The worker pool of a batch: a bounded number of lines in flight, each line's whole life run by
a LineFlow (job.py), a provider's concurrency limit waited out, and a stop that lets the submits
already sent finish so their ids are recorded."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable

from siray_cli import signals
from siray_cli.services.admission import when_admitted
from siray_cli.services.batch.job import JobResult, LineFlow, Stopped, failed_result
from siray_cli.services.batch.jobs import PreparedJob, label
from siray_cli.services.handle import TaskHandle


class BatchRunner:
    def __init__(
        self,
        jobs: list[PreparedJob],
        flow: LineFlow,
        *,
        concurrency: int,
        hold_limit: float | None = None,
        notify: Callable[[str], None] = lambda message: None,
        backoff: float = 0.5,
    ) -> None:
        self.jobs = jobs
        self.flow = flow
        self.hold_limit = hold_limit  # seconds a job waits out a concurrency limit, at most
        self.notify = notify
        self.backoff = backoff  # paces the tries of a submit held back by a concurrency limit
        self.concurrency = max(1, min(concurrency, len(jobs) or 1))
        self.stop = threading.Event()
        self.results: list[JobResult] = []
        self.in_flight: dict[str, PreparedJob] = {}  # task id -> job, submitted and not ended
        self._submitting = 0
        self.lock = threading.Lock()
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
        """Wait (at most `timeout` seconds) for every worker to finish, in slices: a signal the
        kernel handed to a worker is seen by the main thread only between two (signals.SLICE)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._working > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._done.wait(min(remaining, signals.SLICE))

    def interrupt(self, grace: float = 15.0) -> tuple[list[str], int]:
        """Stop submitting; let submits already sent finish (so their ids are recorded), unless
        a second signal forces it; return the ids of the tasks left running, and how many
        submits are still unanswered (journalled as UNCERTAIN: they may have created tasks)."""
        self.stop.set()
        with contextlib.suppress(KeyboardInterrupt):  # forced: what is known now is told
            if grace > 0:
                self.join(grace)
        with self.lock:
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
            result.key = job.key
            with self.lock:
                self.results.append(result)
            with self._ended:
                self._ended.notify_all()
            try:
                self.flow.finished(result)
            except Exception:  # a display that failed must not take the other jobs with it
                continue

    def _submit(self, job: PreparedJob) -> TaskHandle | None:
        """Submit a job. A provider's concurrency limit is no failure: the request was refused,
        so it is sent again once one of this batch's tasks has ended (or a while has passed),
        for as long as --timeout allows."""

        def pause(seconds: float) -> bool:
            with self._ended:
                self._ended.wait(seconds)
            return self.stop.is_set()

        display, what = self.flow.display, label(job.line, job.name)

        def on_hold(next_try: float, gives_up: float | None) -> None:
            display.held(what, next_try, gives_up)

        return when_admitted(
            lambda: self.flow.submit(job),
            patience=self.hold_limit,
            say=self.notify,
            backoff=self.backoff,
            what=what,
            pause=pause,
            on_hold=on_hold if display.counts_down else None,
        )

    def _run(self, job: PreparedJob) -> JobResult | None:
        """The job's result, timed: its task's queued and run time, else the line's."""
        began = time.monotonic()
        result = self._run_line(job)
        if result is not None and result.seconds is None:
            result.seconds = time.monotonic() - began
        return result

    def _run_line(self, job: PreparedJob) -> JobResult | None:
        """The job from submit (or rejoin) to downloaded outputs. Whatever goes wrong ends as
        this job's result, never as the worker's death: the other jobs still run."""
        handle: TaskHandle | None = None
        try:
            handle, done = self.flow.previous(job)
            if done is not None:
                return done
            if handle is None:
                with self.lock:
                    if self.stop.is_set():
                        return None
                    self._submitting += 1
                try:
                    handle = self._submit(job)
                finally:
                    with self.lock:
                        self._submitting -= 1
                if handle is None:
                    return None
            with self.lock:
                self.in_flight[handle.task_id] = job
            self.flow.started(job, handle)
            final = self.flow.wait(job, handle, self.stop)
            files = self.flow.download(job, handle, final) if final.succeeded else []
            with self.lock:
                self.in_flight.pop(handle.task_id, None)
            error = (
                None
                if final.succeeded
                else {"type": "task_failed", "message": final.fail_reason or final.status}
            )
            return JobResult(
                job.line,
                job.name,
                handle.task_id,
                final.status,
                final.urls,
                [str(p) for p in files],
                error,
                "rejoined" if handle.rejoined else None,
                final.succeeded,
                final.took,
            )
        except Stopped:
            return None
        except Exception as exc:
            task_id = handle.task_id if handle is not None else None
            with self.lock:
                if task_id:
                    self.in_flight.pop(task_id, None)
            failed = failed_result(job, task_id, exc)
            failed.resumed = "rejoined" if handle is not None and handle.rejoined else None
            return failed
