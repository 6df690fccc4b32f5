"""`run --batch --resume-from RESULTS.jsonl`: the results of an earlier attempt of a batch (its
`--json` output, which CI keeps as an artifact) taken up where the history does not know them,
a re-run on a fresh runner. Each record is matched to its line (by the job key the records carry,
else by line number and name), then:

- a task that succeeded, or may still be running or done (submitted, timed out, its download
  failed), is looked at on the server and recorded in this history as the line's (the Ledger's
  `adopt`): the batch then follows it or fetches its files, as a rerun does, and pays nothing;
- a task the server does not know (404) is reported and its line not submitted, unless
  --resubmit-missing: the results may be of another host, where the task exists and was paid;
- a line recorded as failed (the task ended FAILURE, CANCELLED or NSFW), or never submitted, is
  submitted again;
- a line whose submit got no answer is submitted again only where that is safe (a provider that
  takes the run's idempotency key), else reported, unless --resubmit-uncertain.

Bad input (a missing file, a line that is no record, records of another batch) fails the batch
before anything is paid, exit 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from siray_cli.errors import NotFoundError, SirayError, UsageError

if TYPE_CHECKING:
    from siray_cli.services.batch.job import JobResult
    from siray_cli.services.batch.jobs import PreparedJob
    from siray_cli.services.session import Providers, Session

Outcome = Literal["done", "look", "failed", "uncertain", "none"]
FAILED_WORDS = frozenset({"FAILURE", "FAILED", "CANCELLED", "CANCELED", "NSFW"})
FAILED_TYPES = frozenset({"task_failed", "task_cancelled"})
IGNORED_TYPES = frozenset({"summary", "interrupted", "invalid"})
LINE_RECORDS = frozenset({"result", "error", "submitted"})


@dataclass(frozen=True)
class Earlier:
    """One line's record in an earlier attempt's results (the last one for the line wins)."""

    line: int
    name: str | None
    key: str | None
    task_id: str | None
    status: str | None
    outcome: Outcome
    where: str  # "FILE:N", for messages


@dataclass
class EarlierResults:
    records: list[Earlier]
    running: set[str]  # task ids an `interrupted` record names as still running
    files: list[str]


def read_results(paths: list[str]) -> EarlierResults:
    """Every line record of the results files, in order; a file that cannot be read or a line
    that is no record of a batch is a usage error (exit 2), found before anything is paid."""
    records: list[Earlier] = []
    running: set[str] = set()
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UsageError(
                f"results file {path} does not exist",
                hint="--resume-from takes the `run --batch --json` output of an earlier attempt",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read results file {path}: {exc}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                document = json.loads(line)
            except ValueError:
                raise _garbled(where, "not JSON") from None
            if not isinstance(document, dict):
                raise _garbled(where, "not a JSON object")
            kind = document.get("type")
            if kind == "interrupted":
                ids = document.get("task_ids") or []
                running.update(str(i) for i in ids if isinstance(i, str))
            if kind in IGNORED_TYPES:
                continue
            if kind is not None and kind not in LINE_RECORDS:
                raise _garbled(where, f"a record of type {kind!r}, not a batch's result")
            records.append(_record(document, where))
    return EarlierResults(records, running, list(paths))


def _garbled(where: str, why: str) -> UsageError:
    return UsageError(
        f"{where} is {why}: not the results of `run --batch --json`; nothing was submitted",
        hint="--resume-from takes the JSON Lines that `run --batch --json` printed",
    )


def _text(document: dict[str, Any], field: str, where: str) -> str | None:
    value = document.get(field)
    if value is not None and not isinstance(value, str):
        raise _garbled(where, f"a record whose {field} is not a string")
    return value or None


def _record(document: dict[str, Any], where: str) -> Earlier:
    line = document.get("line")
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise _garbled(where, "a record without a line number")
    task_id = _text(document, "task_id", where)
    status = _text(document, "status", where)
    error = document.get("error")
    kind = document.get("type") or ("error" if error else "result")
    outcome: Outcome
    if kind == "submitted":
        outcome = "look" if task_id else "none"
    elif kind == "result":
        outcome = "done" if task_id else "none"
    elif task_id is None:
        error_type = error.get("type") if isinstance(error, dict) else None
        uncertain = status == "UNCERTAIN" or error_type == "submit_uncertain"
        outcome = "uncertain" if uncertain else "none"
    else:  # an error with a task: ended failed, or to be looked at (timed out, not fetched)
        error_type = error.get("type") if isinstance(error, dict) else None
        ended = error_type in FAILED_TYPES or (status or "").upper() in FAILED_WORDS
        outcome = "failed" if ended else "look"
    return Earlier(
        line,
        _text(document, "name", where),
        _text(document, "key", where),
        task_id,
        status,
        outcome,
        where,
    )


def match(
    results: EarlierResults, every_job: list[PreparedJob], source: str
) -> tuple[dict[int, Earlier], str]:
    """Each record's line in this batch (all its lines, whatever the shard), and how they were
    matched: by the job key a record carries (a line may have moved), else by line number and
    name. A record that matches no line means the results are of another batch: refused."""
    by_key = {job.key: job for job in every_job}
    by_line = {job.line: job for job in every_job}
    matched: dict[int, Earlier] = {}
    keyed = 0
    for record in results.records:
        if record.key is not None:
            job = by_key.get(record.key)
            keyed += 1
        else:
            job = by_line.get(record.line)
            if job is not None and job.name != record.name:
                job = None
        if job is None:
            what = f"line {record.line}" + (f" ({record.name})" if record.name else "")
            raise UsageError(
                f"{record.where} ({what}) matches no line of {source}: the results are of "
                "another batch, or the batch changed since; nothing was submitted",
                hint="give --resume-from the results of an earlier attempt of this very batch",
            )
        matched[job.line] = record
    tied = {record.task_id for record in results.records if record.task_id}
    untied = sorted(results.running - tied)
    if untied:
        raise UsageError(
            f"the results name tasks still running that they tie to no line "
            f"({', '.join(untied[:5])}): nothing was submitted, since their lines would be "
            "paid twice",
            hint=f"follow them with `siray status {untied[0]} --wait`; a siray that ties "
            "each task to its line as it starts (a `submitted` record) wrote no such results",
        )
    if not results.records:
        how = "none (the results hold no line)"
    elif keyed == len(results.records):
        how = "by job key"
    else:
        how = "by line number and name (the records carry no job key: the file must be unchanged)"
    return matched, how


def take_up(
    session: Session,
    providers: Providers,
    jobs: list[PreparedJob],
    earlier: dict[int, Earlier],
    *,
    directory: Path | None,
    resubmit_missing: bool,
    resubmit_uncertain: bool,
) -> dict[int, JobResult]:
    """Record in this history, as their lines', the earlier attempt's tasks that may be of use
    (looked at on the server first); return the lines that are not to be submitted, with why:
    a task the server does not know, an unanswered submit that cannot be sent again safely."""
    from siray_cli.services.batch.job import JobResult

    ledger = session.ledger
    held: dict[int, JobResult] = {}
    error: dict[str, Any]
    for job in jobs:
        record = earlier.get(job.line)
        if record is None or record.outcome in ("failed", "none"):
            continue
        provider = providers.named(job.provider)
        if record.outcome == "uncertain":
            safe = provider.capabilities.supports_idempotency and session.run is not None
            if not (safe or resubmit_uncertain):
                message = (
                    f"the earlier attempt's submit of this line ({record.where}) got no answer "
                    "and may have created a task, so it was not submitted again; check before "
                    "paying twice, then run with --resubmit-uncertain to submit it anyway"
                )
                error = {"type": "submit_uncertain", "message": message, "status_code": None}
                held[job.line] = JobResult(job.line, job.name, None, "UNCERTAIN", error=error)
            continue
        assert record.task_id is not None
        # the history knows the job already (this runner ran it): it decides, as on any rerun
        if ledger.prior(provider, job.key, handed_over_too=True).verdict != "submit":
            continue
        try:
            task = provider.get(provider.check_task_id(record.task_id))
        except NotFoundError:
            if resubmit_missing:
                session.notices.always(
                    f"line {job.line}: task {record.task_id} ({record.where}) is not known to "
                    f"{provider.base_url}: submitting the line anew (--resubmit-missing)"
                )
                continue
            message = (
                f"task {record.task_id} ({record.where}) is not known to {provider.base_url} "
                "(404), so the line was not submitted again: the results may be of another "
                "host or account, where it was paid; check there, and if the task is gone, run "
                "with --resubmit-missing to submit the line anew"
            )
            error = {"type": "task_not_found", "message": message, "status_code": 404}
            held[job.line] = JobResult(job.line, job.name, record.task_id, "UNKNOWN", error=error)
            continue
        except SirayError as exc:
            error = {"type": exc.error_type, "message": exc.message, "status_code": None}
            held[job.line] = JobResult(job.line, job.name, record.task_id, "ERROR", error=error)
            continue
        ledger.adopt(
            provider,
            job.key,
            job.kind,
            job.body,
            task,
            batch_line=job.line,
            batch_name=job.name,
            destination=directory,
        )
    return held
