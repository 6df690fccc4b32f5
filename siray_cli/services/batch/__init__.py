"""Batch runs: many jobs from one file, every line checked before any is paid for, a bounded
number of tasks in flight, each task recorded before it is waited for, and results reported as
soon as each task ends. No printing here: the command layer gives the callbacks.

jobs.py reads the file, plan.py checks and uploads before anything is paid, runner.py is the
worker pool, job.py one line's life through the Ledger and its TaskHandle."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING, Any

from siray_cli import collection, signals
from siray_cli.errors import BatchInterrupted
from siray_cli.services.batch.job import BatchWatcher, JobResult, LineFlow, LineOptions
from siray_cli.services.batch.jobs import (
    in_shard,
    label,
    parse_jobs,
    prepare_jobs,
    read_jobs,
    read_source,
)
from siray_cli.services.batch.plan import batch_lock
from siray_cli.services.ledger import FOLLOWED, Plan, PriorAttempt, unreadable_message
from siray_cli.services.outputs import today

if TYPE_CHECKING:
    from siray_cli.names import NameTemplate
    from siray_cli.services.batch.earlier import Earlier, EarlierResults
    from siray_cli.services.batch.jobs import PreparedJob
    from siray_cli.services.budget import Budget
    from siray_cli.services.dry_run import DryRun
    from siray_cli.services.requests import LocalFiles
    from siray_cli.services.session import Providers, Session
    from siray_cli.services.uploads import Transfers

__all__ = [
    "BatchOptions",
    "BatchOutcome",
    "BatchWatcher",
    "JobResult",
    "batch_lock",
    "dry_run_batch",
    "label",
    "read_jobs",
    "run_batch",
]


FRESH = ("submit", "resend")  # verdicts of lines that would write new files


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
    shard: tuple[int, int] | None = None  # (I, N): only the lines of shard I of N
    name_template: NameTemplate | None = None  # how saved files are named (else by the line)
    budget: Budget | None = None  # --max-cost / --max-tasks: what this run may submit
    # an earlier attempt's `--json` results (earlier.py), and whether a task they name that the
    # server does not know is submitted anew
    resume_from: tuple[str, ...] = ()
    resubmit_missing: bool = False

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
        if self.shard is not None:
            words += ["--shard", f"{self.shard[0]}/{self.shard[1]}"]
        if self.name_template is not None:
            words += ["--name-template", quote(self.name_template.text)]
        if self.budget is not None and self.budget.cap is not None:
            words += ["--max-cost", quote(f"{self.budget.cap.amount}{self.budget.cap.unit}")]
        if self.budget is not None and self.budget.max_tasks is not None:
            words += ["--max-tasks", str(self.budget.max_tasks)]
        return " ".join([*words, "--resume"])

    def resume_hint(self, prefix: str, tasks: str = "these tasks") -> str:
        """How to take the batch up again: its rerun command, said so that following it is
        safe (it follows `tasks` and pays for no line twice)."""
        again = self.rerun_command(prefix)
        if self.source == "-":
            return f"resume with the same input on standard input: {again}"
        return f"resume with: {again} (it follows {tasks}, and pays for no line twice)"


@dataclass(frozen=True)
class PlannedLine:
    """A line of the batch as planned, whether or not it ran (a report names every line)."""

    line: int
    name: str | None
    model: str


@dataclass
class BatchOutcome:
    """What a batch did: every line's result as it ended; with `interrupted`, the lines without
    one did not end (`running`: line -> the id of its task still running)."""

    results: list[JobResult]
    total: int
    seconds: float
    lines: list[PlannedLine] = field(default_factory=list)
    started: float = 0.0  # wall clock (epoch seconds) of the first submit
    interrupted: bool = False
    running: dict[int, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.resumed == "skipped")

    def summary(self) -> dict[str, Any]:
        """The batch's last record: counts, by each line's final state, and the wall time."""
        states: dict[str, int] = {}
        for result in self.results:
            states[result.status] = states.get(result.status, 0) + 1
        unsent = states.get("NOT_SENT", 0)  # over a spending cap: nothing paid, not a failure
        return {
            "type": "summary",
            "total": self.total,
            "succeeded": len(self.results) - len(self.failed),
            "failed": len(self.failed) - unsent,
            "not_sent": unsent,
            "skipped": self.skipped,
            "states": dict(sorted(states.items())),
            "seconds": round(self.seconds, 3),
        }


def run_batch(
    session: Session,
    providers: Providers,
    options: BatchOptions,
    display: Callable[[int], AbstractContextManager[BatchWatcher]],
    transfers: Transfers,
    on_result: Callable[[JobResult], None],
    on_started: Callable[[dict[str, Any]], None] | None = None,
) -> BatchOutcome:
    """Check every line, upload the local files they name, then run them all. A Ctrl-C stops
    submitting, lets the submits under way finish, and raises Interrupted naming the ids left
    running and the command that takes the batch up again. `on_started` is told each line's
    task as soon as it is known (a `submitted` record: what --resume-from ties to the line)."""
    earlier = _earlier(session, options)
    text, where = read_source(options.source, session.environment.stdin)
    session.history.open_early()  # made ready while the lines are checked
    planned: list[PlannedLine] = []  # filled once the lines are checked
    started = time.time()
    try:
        with batch_lock(text, where, options.shard):
            return _run_locked(
                session,
                providers,
                options,
                (text, where, earlier),
                display,
                transfers,
                (on_result, on_started),
                planned,
            )
    except KeyboardInterrupt:  # before any task was submitted (checks, uploads)
        stopped = _interrupted(session, options, [], 0)
        if planned:
            seconds = time.time() - started
            stopped.outcome = BatchOutcome([], len(planned), seconds, planned, started, True)
        raise stopped from None


def _earlier(session: Session, options: BatchOptions) -> EarlierResults | None:
    """The earlier attempt's results (--resume-from), read before anything else is done."""
    if not options.resume_from:
        return None
    from siray_cli.errors import UsageError
    from siray_cli.services.batch.earlier import read_results

    results = read_results(list(options.resume_from))
    if not session.history.enabled:
        raise UsageError(
            "--resume-from takes the earlier tasks up through the task history, which is off "
            "(or unavailable); nothing was submitted",
            hint="run it with the history on (without --no-history or SIRAY_HISTORY=off)",
        )
    return results


def _run_locked(
    session: Session,
    providers: Providers,
    options: BatchOptions,
    source: tuple[str, str, EarlierResults | None],
    display: Callable[[int], AbstractContextManager[BatchWatcher]],
    transfers: Transfers,
    callbacks: tuple[Callable[[JobResult], None], Callable[[dict[str, Any]], None] | None],
    planned: list[PlannedLine],
) -> BatchOutcome:
    from siray_cli.services.batch.earlier import take_up
    from siray_cli.services.batch.plan import refuse_existing_files, upload_files
    from siray_cli.services.batch.runner import BatchRunner
    from siray_cli.services.outputs import Downloads

    text, where, results = source
    on_result, on_started = callbacks
    date = today()  # a name template's {date}, the same for the checks and every file
    jobs, files, earlier = _prepare(session, providers, options, text, where, date, results)
    planned[:] = [PlannedLine(job.line, job.name, str(job.body.get("model", ""))) for job in jobs]
    held = take_up(
        session,
        providers,
        jobs,
        earlier,
        directory=options.directory,
        resubmit_missing=options.resubmit_missing,
        resubmit_uncertain=options.resubmit_uncertain,
    )
    line_options = LineOptions(
        directory=options.directory,
        force=options.force,
        timeout=options.timeout,
        poll_interval=options.poll_interval,
        resume=options.resume,
        resubmit_uncertain=options.resubmit_uncertain,
        budget=options.budget,
    )
    if options.budget is not None:  # a cap it cannot price is refused before anything is paid
        for job in jobs:
            options.budget.check(providers.named(job.provider), str(job.body.get("model")))
    downloads_named = Downloads(session, options.name_template, date)
    with display(len(jobs)) as watcher, downloads_named as downloads:
        flow = LineFlow(session, providers, line_options, watcher, on_result, downloads, on_started)
        flow.held = held
        found = verdicts(session, providers, jobs, options)
        found.update({line: PriorAttempt("report") for line in held})
        if options.directory is not None and not options.force and not options.resume:
            # (a line whose earlier task is rejoined writes that task's files, whatever is there)
            fresh = [job for job in jobs if found[job.line].verdict not in ("done", "running")]
            refuse_existing_files(fresh, options.directory, options.name_template, date)
        upload_files(providers, jobs, found, files, transfers)
        runner = BatchRunner(
            jobs,
            flow,
            concurrency=options.concurrency,
            hold_limit=options.timeout or None,
            notify=session.notices.info,
            backoff=session.backoff,
        )
        started, wall = time.monotonic(), time.time()
        # What the imports and the plan made lives to the end of the batch: no collection need
        # walk it again. Frozen now, the collection those objects were due to set off (about
        # 15 ms, the GIL held) cannot fall among the first wave's submits.
        collection.keep_to_the_end()
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
            stopped = _interrupted(session, options, left, unanswered)
            with runner.lock:  # what ended, and what runs on, for the reports
                running = {job.line: task_id for task_id, job in runner.in_flight.items()}
                stopped.outcome = BatchOutcome(
                    list(runner.results), len(jobs), time.monotonic() - started, planned, wall
                )
            stopped.outcome.interrupted, stopped.outcome.running = True, running
            raise stopped from None
        ended = {result.line for result in runner.results}
        for job in jobs:  # a job that ended without a result is a failure, never a silent 0
            if job.line not in ended:
                error = {"type": "internal_error", "message": "the job did not run to its end"}
                lost = JobResult(job.line, job.name, None, "ERROR", error=error, key=job.key)
                runner.results.append(lost)
                flow.finished(lost)
    return BatchOutcome(runner.results, len(jobs), time.monotonic() - started, planned, wall)


def _prepare(
    session: Session,
    providers: Providers,
    options: BatchOptions,
    text: str,
    where: str,
    date: str,
    results: EarlierResults | None = None,
) -> tuple[list[PreparedJob], LocalFiles, dict[int, Earlier]]:
    """Every line read, built and checked (all problems at once), its local files named, (with
    -o and a name template) no two lines' files named alike, and the earlier attempt's record
    of each (--resume-from), matched to its line."""
    from siray_cli.services.batch.earlier import match
    from siray_cli.services.batch.plan import builder, refuse_template_clashes
    from siray_cli.services.requests import LocalFiles

    files = LocalFiles(session, inline=options.inline)
    build = builder(session, providers, options.default_model, options.validate, files)
    read, unread = parse_jobs(text, where)
    template = options.name_template
    jobs = prepare_jobs(
        read, build, where, unread, identity=files.identity, names_files=template is None
    )
    if template is not None and options.directory is not None:
        refuse_template_clashes(jobs, template, date)
    earlier: dict[int, Earlier] = {}
    if results is not None:
        earlier, how = match(results, jobs, where)
        session.notices.info(
            f"--resume-from: {len(earlier)} line{'s' if len(earlier) != 1 else ''} of "
            f"{', '.join(results.files)} matched {how}"
        )
    if options.shard is not None:
        index, count = options.shard
        mine = [job for job in jobs if in_shard(job.key, index, count)]
        session.notices.info(f"shard {index}/{count}: {len(mine)} of the {len(jobs)} lines")
        jobs = mine
    return jobs, files, earlier


def verdicts(
    session: Session,
    providers: Providers,
    jobs: list[PreparedJob],
    options: BatchOptions,
    *,
    read_only: bool = False,
) -> dict[int, PriorAttempt]:
    """Each line's verdict from the history (as LineFlow.prior gives it), by line: one look per
    provider for the whole batch, not one a line. Each line looks again, under its job's lock,
    when it runs (LineFlow.previous)."""
    by_provider: dict[str | None, list[PreparedJob]] = {}
    for job in jobs:
        by_provider.setdefault(job.provider, []).append(job)
    found: dict[int, PriorAttempt] = {}
    for name, group in by_provider.items():
        priors = session.ledger.priors(
            providers.named(name),
            [job.key for job in group],
            handed_over_too=options.resume,
            resubmit_uncertain=options.resubmit_uncertain,
            read_only=read_only,
        )
        found.update({job.line: priors[job.key] for job in group})
    return found


def _unreadable_followed(
    session: Session, providers: Providers, jobs: list[PreparedJob], found: dict[int, PriorAttempt]
) -> set[int]:
    """The lines whose verdict follows a task whose record cannot be read: the batch's plan
    reads a followed task from the index alone, but each line's run reads its record, and
    refuses the line when it cannot (Ledger.decide), which a --dry-run shows as its run does."""
    by_provider: dict[str | None, dict[str, int]] = {}
    for job in jobs:
        prior = found.get(job.line)
        if prior is not None and prior.verdict in FOLLOWED and prior.task_id:
            by_provider.setdefault(job.provider, {})[prior.task_id] = job.line
    lines: set[int] = set()
    for name, followed in by_provider.items():
        provider = providers.named(name)
        bad = session.ledger.history.unreadable(
            list(followed),
            provider=provider.name,
            base_url=provider.base_url,
            profile=session.ledger.profile,
        )
        lines.update(followed[task_id] for task_id in bad)
    return lines


def dry_run_batch(session: Session, providers: Providers, options: BatchOptions) -> list[DryRun]:
    """What each line would send (--dry-run), checked as a run checks it: the lines, their
    schemas and files, the files they would write, each line's verdict from the history (read
    only); nothing uploaded, submitted, recorded or locked."""
    from siray_cli.errors import AmbiguousSubmitError
    from siray_cli.services.batch.earlier import read_results
    from siray_cli.services.batch.plan import refuse_existing_files
    from siray_cli.services.dry_run import DryRun, described

    results = read_results(list(options.resume_from)) if options.resume_from else None
    text, where = read_source(options.source, session.environment.stdin)
    date = today()
    jobs, files, earlier = _prepare(session, providers, options, text, where, date, results)
    plans: dict[int, Plan | AmbiguousSubmitError] = {}
    found = verdicts(session, providers, jobs, options, read_only=True)
    unreadable = _unreadable_followed(session, providers, jobs, found)
    for job in jobs:
        record = earlier.get(job.line)
        if record is not None and record.task_id and record.outcome in ("done", "look"):
            continue  # followed (looked at on the server), never paid: shown below
        if job.line in unreadable:  # its run refuses it, as Ledger.decide does
            task_id = found[job.line].task_id
            plans[job.line] = AmbiguousSubmitError(
                unreadable_message(task_id, "this line"), task_id=task_id
            )
            continue
        try:
            plans[job.line] = session.ledger.decide(
                providers.named(job.provider),
                job.key,
                job.body,
                new=False,
                handed_over_too=options.resume,
                resubmit_uncertain=options.resubmit_uncertain,
                read_only=True,
                prior=found[job.line],
            )
        except AmbiguousSubmitError as exc:  # the line would end UNCERTAIN, the others go on
            plans[job.line] = exc
    if options.directory is not None and not options.force and not options.resume:
        fresh = [
            job
            for job in jobs
            if job.line in plans
            and (not isinstance(plan := plans[job.line], Plan) or plan.verdict in FRESH)
        ]
        refuse_existing_files(fresh, options.directory, options.name_template, date)
    shown = []
    for job in jobs:
        provider = providers.named(job.provider)
        if job.line not in plans:  # the earlier attempt's task (--resume-from)
            one = DryRun(provider.name, "follow", task_id=earlier[job.line].task_id)
        elif isinstance(plan := plans[job.line], Plan):
            one = described(session, provider, job.kind, plan, files, done="skip")
        else:
            one = DryRun(provider.name, "report", error=plan.message)
        one.line, one.name, one.model = job.line, job.name, str(job.body.get("model"))
        shown.append(one)
    return shown


def _interrupted(
    session: Session, options: BatchOptions, left: list[str], unanswered: int
) -> BatchInterrupted:
    """What a stopped batch says: the tasks left running, the submits that got no answer, and
    how to take the batch up again, its files still going where this run put them."""
    tasks = "1 task keeps" if len(left) == 1 else f"{len(left)} tasks keep"
    message = f"{signals.name()}; {tasks} running" + (f": {' '.join(left)}" if left else "")
    again = options.rerun_command(session.command_prefix())
    hint = options.resume_hint(session.command_prefix())
    if unanswered:
        message += (
            f"; {unanswered} submit{'s' if unanswered != 1 else ''} got no answer and "
            "may have created tasks"
        )
        hint += "; `siray history --status UNCERTAIN` lists the unanswered submits"
    return BatchInterrupted(message, hint=hint, task_ids=left, unanswered=unanswered, resume=again)
