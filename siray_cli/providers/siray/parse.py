"""Siray's JSON (its API contract), turned into siray's normalized values. The only module that
knows the shapes of Siray's answers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from siray_cli.domain import (
    ModelInfo,
    OutputItem,
    SubmittedTask,
    Task,
    TaskKind,
    TaskState,
    UploadToken,
)
from siray_cli.errors import ProtocolError
from siray_cli.providers.base import parse_progress

# Paths of the Siray API: create, and status (cancel is the status path + "/cancel").
CREATE_PATHS = {
    TaskKind.IMAGE: "/v1/images/generations/async",
    TaskKind.VIDEO: "/v1/video/generations",
}
STATUS_PATHS = {
    TaskKind.IMAGE: "/v1/images/generations/async/{task_id}",
    TaskKind.VIDEO: "/v1/video/generations/{task_id}",
}

# Siray's words for a task's state (the API contract), and the "CANCELED" spelling some servers use.
STATES = {
    "NOT_START": TaskState.SUBMITTED,
    "SUBMITTED": TaskState.SUBMITTED,
    "QUEUED": TaskState.QUEUED,
    "IN_PROGRESS": TaskState.IN_PROGRESS,
    "SUCCESS": TaskState.SUCCESS,
    "FAILURE": TaskState.FAILURE,
    "CANCELLED": TaskState.CANCELLED,
    "CANCELED": TaskState.CANCELLED,
}


# A task id as the contract shows them (image_..., video_...), and what siray accepts of any
# server: letters, digits and _.:- only, at most 200 characters, so an id can name a URL path,
# a history row and (cut short, see storage.downloads.safe_name) a file.
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")


def state_of(status: str) -> TaskState:
    return STATES.get(status.strip().upper(), TaskState.UNKNOWN)


def kind_from_task_id(task_id: str) -> TaskKind | None:
    lowered = task_id.lower()
    if lowered.startswith("image_"):
        return TaskKind.IMAGE
    if lowered.startswith("video_"):
        return TaskKind.VIDEO
    return None


def _timestamp(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0 and value < 1e11:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return _timestamp(int(value.strip()))
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _outputs(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        urls = []
        for item in value:
            if isinstance(item, str) and item:
                urls.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("url"), str):
                urls.append(item["url"])
        return urls
    return []


def _envelope_data(payload: object) -> Mapping[str, Any]:
    """The `data` object of a success envelope, or the payload itself when it has none."""
    if not isinstance(payload, Mapping):
        raise ProtocolError(f"expected a JSON object from the server, got {type(payload).__name__}")
    data = payload.get("data")
    if isinstance(data, Mapping):
        return data
    return payload


def parse_submit(payload: object, kind: TaskKind, model: str) -> SubmittedTask:
    """Both create-response shapes: `data.task_id` (the contract) and a top-level `task_id`/`id`."""
    data = _envelope_data(payload)
    candidates: list[object] = [data.get("task_id"), data.get("id")]
    if isinstance(payload, Mapping) and payload is not data:
        candidates += [payload.get("task_id"), payload.get("id")]
    for candidate in candidates:
        if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
            task_id = str(candidate).strip()
            if task_id and TASK_ID.match(task_id):
                return SubmittedTask(task_id=task_id, kind=kind, model=model)
            if task_id:
                raise ProtocolError(f"the server answered with an unusable task id {task_id!r}")
    raise ProtocolError("the server accepted the request but sent no task id")


def parse_status(payload: object, kind: TaskKind, task_id: str) -> Task:
    data = _envelope_data(payload)
    status = _text(data.get("status")).strip()
    if not status:
        raise ProtocolError(f"the server sent no status for task {task_id}")
    return Task(
        task_id=task_id,  # the id asked about, whatever the answer says (it names files, rows)
        kind=kind,
        status=status,
        state=state_of(status),
        progress=parse_progress(data.get("progress")),
        outputs=tuple(OutputItem(url, kind) for url in _outputs(data.get("outputs"))),
        fail_reason=_text(data.get("fail_reason")),
        submit_time=_timestamp(data.get("submit_time")),
        start_time=_timestamp(data.get("start_time")),
        finish_time=_timestamp(data.get("finish_time")),
        raw=payload,
    )


def _schema_of(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def parse_catalogue(payload: object) -> list[ModelInfo]:
    """`{"data": [{"model_name", "tag", "model_extend_info": "<JSON Schema as a string>"}]}`."""
    entries = payload.get("data") if isinstance(payload, Mapping) else payload
    if not isinstance(entries, list):
        raise ProtocolError("the model catalogue is not a list of models")
    models = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = entry.get("model_name") or entry.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        tag = entry.get("tag")
        models.append(
            ModelInfo(
                name.strip(),
                tag if isinstance(tag, str) else "",
                _schema_of(entry.get("model_extend_info")),
            )
        )
    return models


def _expiry(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / (1000 if value > 1e11 else 1)
    if isinstance(value, str) and value.strip():
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def parse_upload_token(payload: object) -> UploadToken:
    data = _envelope_data(payload)
    credentials = data.get("credentials")
    if not isinstance(credentials, Mapping):
        raise ProtocolError("the upload token has no credentials")
    fields = {
        "access_key_id": credentials.get("access_key_id"),
        "secret_access_key": credentials.get("access_key_secret"),
        "session_token": credentials.get("security_token") or "",
        "region": credentials.get("region") or "us-east-1",
        "bucket": data.get("bucket_name"),
        "upload_path": data.get("upload_path") or "",
        "upload_endpoint": data.get("upload_endpoint"),
        "access_endpoint": data.get("access_endpoint"),
    }
    missing = [
        k
        for k, v in fields.items()
        if not isinstance(v, str) or (not v and k not in ("session_token", "upload_path"))
    ]
    if missing:
        raise ProtocolError(f"the upload token lacks {', '.join(missing)}")
    expiry = _expiry(credentials.get("expiration") or data.get("expiration"))
    return UploadToken(**fields, expires_at=expiry)  # type: ignore[arg-type]
