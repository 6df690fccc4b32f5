"""Batch runs: many jobs from one file, every line checked before any is paid for, a bounded
number of tasks in flight, each task recorded before it is waited for, and results reported as
soon as each task ends. No printing here: the command layer gives the callbacks.

jobs.py reads the file, plan.py checks and uploads before anything is paid, runner.py is the
worker pool, job.py one line's life through the Ledger and its TaskHandle."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING

from siray_cli import signals
from siray_cli.errors import Interrupted
from siray_cli.services.batch.job import BatchWatcher, JobResult, LineFlow, LineOptions
from siray_cli.services.batch.jobs import label, parse_jobs, prepare_jobs, read_jobs, read_source
from siray_cli.services.batch.plan import batch_lock

if TYPE_CHECKING:
    from siray_cli.services.session import Providers, Session
    from siray_cli.services.uploads import Transfers

__all__ = [
    "BatchOptions",
    "BatchOutcome",
    "BatchWatcher",
    "JobResult",
    "batch_lock",
    "label",
    "read_jobs",
    "run_batch",
]


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

    def rerun_command(self, prefix: str) -> str:
        """The command that takes this batch up again without paying twice: --resume (lines
        done are skipped or fetched again, lines running rejoined), with the root flags that
        chose the provider, host and profile (`prefix`) and every option that makes a line's
        request or says where its files go; paths absolute, so it works from anywhere."""
        source = "-" if self.source == "-" else quote(str(Path(self.source).resolve()))
        words = [prefix, "run", "--batch", source]
        if self.default_model:
            words += ["--model", quote(self.default_model)]
        if self.directory is not None:
            words += ["-o", quote(str(self.directory.resolve()))]
        words += [flag for flag, on in (("--force", self.force), ("--inline", self.inline)) if on]
        if not self.validate:
            words.append("--no-validate")
        return " ".join([*words, "--resume"])


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
    running and the command that takes the batch up again."""
    text, where = read_source(options.source, session.environment.stdin)
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
    from siray_cli.services.batch.plan import builder, refuse_existing_files, upload_files
    from siray_cli.services.batch.runner import BatchRunner
    from siray_cli.services.outputs import Downloads
    from siray_cli.services.requests import LocalFiles

    files = LocalFiles(session, inline=options.inline)
    build = builder(session, providers, options.default_model, options.validate, files)
    read, unread = parse_jobs(text, where)
    jobs = prepare_jobs(read, build, where, unread, identity=files.identity)
    line_options = LineOptions(
        directory=options.directory,
        force=options.force,
        timeout=options.timeout,
        poll_interval=options.poll_interval,
        resume=options.resume,
        resubmit_uncertain=options.resubmit_uncertain,
    )
    with display(len(jobs)) as watcher, Downloads(session) as downloads:
        flow = LineFlow(session, providers, line_options, watcher, on_result, downloads)
        found = {job.line: flow.prior(job) for job in jobs}
        if options.directory is not None and not options.force and not options.resume:
            # (a line whose earlier task is rejoined writes that task's files, whatever is there)
            fresh = [job for job in jobs if found[job.line].verdict not in ("done", "running")]
            refuse_existing_files(fresh, options.directory)
        upload_files(providers, jobs, found, files, transfers)
        runner = BatchRunner(
            jobs,
            flow,
            concurrency=options.concurrency,
            hold_limit=options.timeout or None,
            notify=session.notices.info,
            backoff=session.backoff,
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
            raise _interrupted(session, options, left, unanswered) from None
        ended = {result.line for result in runner.results}
        for job in jobs:  # a job that ended without a result is a failure, never a silent 0
            if job.line not in ended:
                error = {"type": "internal_error", "message": "the job did not run to its end"}
                lost = JobResult(job.line, job.name, None, "ERROR", error=error)
                runner.results.append(lost)
                flow.finished(lost)
    return BatchOutcome(runner.results, len(jobs), time.monotonic() - started)


def _interrupted(
    session: Session, options: BatchOptions, left: list[str], unanswered: int
) -> Interrupted:
    """What a stopped batch says: the tasks left running, the submits that got no answer, and
    how to take the batch up again, its files still going where this run put them."""
    message = f"{signals.name()}; {len(left)} task{'s' if len(left) != 1 else ''} keep running" + (
        f": {' '.join(left)}" if left else ""
    )
    again = options.rerun_command(session.command_prefix())
    hint = f"resume with: {again} (it follows these tasks, and pays for no line twice)"
    if options.source == "-":
        hint = f"resume with the same input on standard input: {again}"
    if unanswered:
        message += (
            f"; {unanswered} submit{'s' if unanswered != 1 else ''} got no answer and "
            "may have created tasks"
        )
        hint += "; `siray history --status UNCERTAIN` lists the unanswered submits"
    return Interrupted(message, hint=hint)
