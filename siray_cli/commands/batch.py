"""`siray run --batch`: the glue between the batch runner and the terminal or the pipe."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siray_cli import inputs, signals
from siray_cli.api.errors import UsageError
from siray_cli.api.models import ModelInfo, TaskKind, TaskStatus
from siray_cli.batch import (
    BatchHooks,
    BatchRunner,
    Job,
    JobResult,
    PreparedJob,
    Stopped,
    prepare_jobs,
    read_jobs,
)
from siray_cli.commands.generate import LocalFiles
from siray_cli.errors import ExitCode, Interrupted, WaitTimeoutError

if TYPE_CHECKING:
    from siray_cli.api.client import SirayClient
    from siray_cli.commands.common import AppState

STATUS_RATE = 20.0  # status requests a second, at most, for the whole batch


def _read_source(source: str) -> tuple[str, str]:
    if source == "-":
        return sys.stdin.read(), "standard input"
    try:
        return Path(source).read_text(encoding="utf-8"), source
    except FileNotFoundError:
        raise UsageError(f"batch file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read batch file {source}: {exc}") from None


def _builder(  # type: ignore[no-untyped-def]
    state: AppState,
    client: SirayClient,
    default_model: str | None,
    validate: bool,
    files: LocalFiles,
):
    infos: dict[str, ModelInfo] = {}

    def build(job: Job) -> tuple[TaskKind, dict[str, Any]]:
        model = job.model or default_model
        if not model:
            raise UsageError("no model (give one on the line, or --model for every line)")
        info = None
        if validate:
            info = infos.get(model) or state.model_info(client, model)
            infos[model] = info
        body = inputs.build_body(
            model,
            job.prompt,
            dict(job.inputs),
            job.items,
            info=info,
            local_file=files.add,
        )
        return inputs.pick_kind(model, None, info), body

    return build


def label(job: PreparedJob) -> str:
    return f"line {job.line}" + (f" ({job.name})" if job.name else "")


class BatchSession:
    """The hooks a batch runner calls: waiting with the shared rate limit, downloads named from
    the job, the live display, and one result per finished task on stdout."""

    def __init__(
        self,
        state: AppState,
        client: SirayClient,
        *,
        directory: Path | None,
        force: bool,
        timeout: float,
        poll_interval: float | None,
        json_mode: bool,
        total: int,
    ) -> None:
        from siray_cli.api.client import build_http_client, timeouts
        from siray_cli.polling import RateLimiter, default_schedule
        from siray_cli.progress import BatchDisplay

        self.state, self.client = state, client
        self.directory, self.force, self.timeout = directory, force, timeout
        self.json_mode = json_mode
        self.schedule = default_schedule(poll_interval)
        self.limiter = RateLimiter(STATUS_RATE)
        self.display = BatchDisplay(state.output, total)
        self.downloads = build_http_client(
            backoff=state.settings.backoff,
            expect_json=False,
            timeout=timeouts(state.read_timeout),
        )
        self._write = threading.Lock()

    def hooks(self) -> BatchHooks:
        return BatchHooks(
            submit=lambda job: self.state.submit(
                self.client,
                job.kind,
                job.body,
                announce=False,
                job_key=job.key,
                batch_line=job.line,
                batch_name=job.name,
            ),
            wait=self.wait,
            download=self.download if self.directory is not None else None,
            started=lambda job, task_id: self.display.started(label(job), task_id),
            finished=self.finished,
        )

    def wait(self, job: PreparedJob, task_id: str, stop: threading.Event) -> TaskStatus:
        from siray_cli.polling import WaitTimedOut, wait_for_tasks

        def fetch(tid: str) -> TaskStatus:
            if stop.is_set():
                raise Stopped
            self.limiter.acquire()
            return self.client.get_status(tid)

        def sleep(seconds: float) -> None:
            if stop.wait(seconds):
                raise Stopped

        def on_update(status: TaskStatus) -> None:
            self.display.update(label(job), status)
            self.state.history.update(status)

        try:
            return wait_for_tasks(
                [task_id],
                fetch,
                timeout=self.timeout or None,
                schedule=self.schedule,
                on_update=on_update,
                sleep=sleep,
            )[task_id]
        except WaitTimedOut:
            raise WaitTimeoutError(
                f"gave up waiting after {self.timeout:g}s; it may still finish", task_id=task_id
            ) from None

    def download(self, job: PreparedJob, final: TaskStatus) -> list[Path]:
        from siray_cli.storage.downloads import download_one

        assert self.directory is not None
        paths = []
        for index, url in enumerate(final.outputs, start=1):
            stem = None
            if job.name:
                stem = job.name if len(final.outputs) == 1 else f"{job.name}_{index}"
            paths.append(
                download_one(
                    self.downloads,
                    url,
                    self.directory,
                    final.task_id,
                    index,
                    force=self.force,
                    stem=stem,
                )
            )
        self.state.history.set_files(final.task_id, [str(p) for p in paths])
        return paths

    def finished(self, result: JobResult) -> None:
        output = self.state.output
        job_label = f"line {result.line}" + (f" ({result.name})" if result.name else "")
        summary = (
            result.status
            if result.error is None
            else (f"{result.status}: {result.error['message']}")
        )
        if result.resumed == "skipped":
            summary = "SUCCESS (already, skipped)"
        with self._write:
            self.display.finished(
                job_label,
                result.task_id,
                result.ok,
                summary,
                was_running=result.resumed != "skipped",
            )
            if self.json_mode or not output.stdout_is_tty:
                output.emit_json(result.to_json())
            else:
                shown = (
                    result.files
                    or result.outputs
                    or ([result.error["message"]] if result.error else [])
                )
                output.data(
                    f"{job_label}\t{result.task_id or '-'}\t{result.status}\t" + " ".join(shown)
                )


def run_batch(
    state: AppState,
    client: SirayClient,
    *,
    source: str,
    default_model: str | None,
    concurrency: int,
    directory: Path | None,
    force: bool,
    timeout: float,
    poll_interval: float | None,
    resume: bool,
    validate: bool,
    inline: bool,
    json_mode: bool,
) -> int:
    """Check every line, then run them all; exit 1 when any failed, 130 on Ctrl-C."""
    output = state.output
    text, where = _read_source(source)
    files = LocalFiles(state, inline=inline)
    jobs = prepare_jobs(
        read_jobs(text, where), _builder(state, client, default_model, validate, files), where
    )
    for job in jobs:  # every line passed: now upload the local files they name, once each
        job.body = files.resolve(client, job.body)
    session = BatchSession(
        state,
        client,
        directory=directory,
        force=force,
        timeout=timeout,
        poll_interval=poll_interval,
        json_mode=json_mode,
        total=len(jobs),
    )
    runner = BatchRunner(
        jobs, session.hooks(), concurrency=concurrency, history=state.history, resume=resume
    )
    started = time.monotonic()
    try:
        with session.display:
            runner.start()
            while runner.running():
                runner.join(0.2)
                signals.check()
    except KeyboardInterrupt:
        output.always("interrupted: no new task is submitted; waiting for submits under way...")
        left = runner.interrupt()
        raise Interrupted(
            f"interrupted; {len(left)} task{'s' if len(left) != 1 else ''} keep running"
            + (f": {' '.join(left)}" if left else ""),
            hint="resume waiting with: siray status --all-pending --wait "
            "(or run the batch again with --resume)",
        ) from None
    finally:
        session.downloads.close()
    failed = [r for r in runner.results if not r.ok]
    skipped = sum(1 for r in runner.results if r.resumed == "skipped")
    output.always(
        f"batch: {len(runner.results) - len(failed)} succeeded"
        + (f" ({skipped} already, skipped)" if skipped else "")
        + f", {len(failed)} failed, of {len(jobs)} in {time.monotonic() - started:.1f}s"
    )
    return ExitCode.TASK_FAILED if failed else ExitCode.OK
