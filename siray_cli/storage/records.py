"""A task as the history records it, and how a request is recorded (data URLs replaced by their
size, so a record never holds a file's bytes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from siray_cli.domain import TaskState

if TYPE_CHECKING:
    import sqlite3  # a record is read from a row; importing records needs no database

_DATA_URL = re.compile(r"^data:([^;,]*)(;base64)?,(.*)$", re.S)


def has_redacted_data(value: Any) -> bool:
    """Whether a recorded request lost data URLs to redact_data_urls (so is not the body sent)."""
    if isinstance(value, str):
        return value.startswith("<data:") and value.endswith(" bytes>")
    if isinstance(value, list):
        return any(has_redacted_data(v) for v in value)
    if isinstance(value, dict):
        return any(has_redacted_data(v) for v in value.values())
    return False


def redact_data_urls(value: Any) -> Any:
    """The request as recorded: each data URL replaced by a short placeholder with its size."""
    if isinstance(value, str):
        match = _DATA_URL.match(value)
        if match is None:
            return value
        payload = match.group(3)
        padding = payload[-2:].count("=")
        size = len(payload) * 3 // 4 - padding if match.group(2) else len(payload)
        return f"<data:{match.group(1) or 'text/plain'}, {size} bytes>"
    if isinstance(value, list):
        return [redact_data_urls(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_data_urls(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Record:
    task_id: str | None
    kind: str
    model: str
    request: dict[str, Any]
    submitted_at: float
    base_url: str
    profile: str
    provider: str
    status: str  # the provider's word
    state: TaskState
    idempotency_key: str | None
    progress: int | None
    outputs: list[str]
    fail_reason: str
    finished_at: float | None
    files: list[str]
    job_key: str | None
    batch_line: int | None
    batch_name: str | None
    delivered_at: float | None = None
    destination: str | None = None  # the directory its files were asked into; None: printed
    row: int = 0  # the row's own id
    delivered_by: str | None = None  # "submitter" or "later" (see migrations.m005)
    price: float | None = None  # what it cost, where a spending cap priced it (m006)
    price_unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "kind": self.kind,
            "model": self.model,
            "status": self.status,
            "progress": self.progress,
            "outputs": self.outputs,
            "fail_reason": self.fail_reason,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "files": self.files,
            "base_url": self.base_url,
            "profile": self.profile,
            "provider": self.provider,
            "request": self.request,
            "price": None
            if self.price is None
            else {"amount": self.price, "unit": self.price_unit},
        }


def record_from_row(row: sqlite3.Row) -> Record:
    return Record(
        task_id=row["task_id"],
        kind=row["kind"],
        model=row["model"],
        request=json.loads(row["request"]),
        submitted_at=row["submitted_at"],
        base_url=row["base_url"],
        profile=row["profile"],
        provider=row["provider"],
        status=row["status"],
        state=TaskState(row["state"]),
        idempotency_key=row["idempotency_key"],
        progress=row["progress"],
        outputs=json.loads(row["outputs"]),
        fail_reason=row["fail_reason"],
        finished_at=row["finished_at"],
        files=json.loads(row["files"]),
        job_key=row["job_key"],
        batch_line=row["batch_line"],
        batch_name=row["batch_name"],
        delivered_at=row["delivered_at"],
        destination=row["destination"],
        row=row["id"],
        delivered_by=row["delivered_by"],
        price=row["price"],
        price_unit=row["price_unit"],
    )


ATTEMPT_COLUMNS = (
    "id",
    "task_id",
    "state",
    "submitted_at",
    "delivered_at",
    "delivered_by",
    "idempotency_key",
)
_STATES = {state.value: state for state in TaskState}


class Attempt(NamedTuple):
    """One submit of a job as a verdict on the job reads it (services.ledger): a batch's plan
    reads these of every line from an index (migrations.m008), not each whole record."""

    row: int
    task_id: str | None
    state: TaskState
    submitted_at: float
    delivered_at: float | None
    delivered_by: str | None
    idempotency_key: str | None


# a first look at an attempt (History.glances): its job's key, its task's id (None: the submit
# went unanswered), its state's word, and whether a rerun reads it (1) or not (0)
Glance = tuple[str, "str | None", str, int]
# an attempt as History.attempts reads it: the job's key, then the values of ATTEMPT_COLUMNS (the
# state as its word); a batch's plan reads ten thousand, and makes an Attempt of few of them
AttemptRow = tuple[str, int, "str | None", str, float, "float | None", "str | None", "str | None"]


def newest_first(rows: Iterable[AttemptRow]) -> list[Attempt]:
    """One job's attempts from their rows, newest first. A row of a state siray does not know
    (edited by hand) is skipped, as its record would be."""
    attempts = [
        Attempt(row, task_id, _STATES[state], submitted_at, delivered_at, delivered_by, sent_key)
        for _, row, task_id, state, submitted_at, delivered_at, delivered_by, sent_key in rows
        if state in _STATES
    ]
    attempts.sort(key=lambda attempt: (attempt.submitted_at, attempt.row), reverse=True)
    return attempts
