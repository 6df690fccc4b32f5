"""Typed results of the API layer, and the parsers that build them from whatever the server sent."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from siray_cli.api.errors import ProtocolError


class TaskKind(str, enum.Enum):
    IMAGE = "image"
    VIDEO = "video"


# Paths of API.md: create, and status (cancel is the status path + "/cancel").
CREATE_PATHS = {
    TaskKind.IMAGE: "/v1/images/generations/async",
    TaskKind.VIDEO: "/v1/video/generations",
}
STATUS_PATHS = {
    TaskKind.IMAGE: "/v1/images/generations/async/{task_id}",
    TaskKind.VIDEO: "/v1/video/generations/{task_id}",
}


class TaskState(str, enum.Enum):
    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELLED", "CANCELED"})
CANCELLED = frozenset({"CANCELLED", "CANCELED"})


@dataclass(frozen=True)
class SubmittedTask:
    task_id: str
    kind: TaskKind
    model: str


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    kind: TaskKind
    status: str
    progress: int | None = None
    outputs: list[str] = field(default_factory=list)
    fail_reason: str = ""
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    action: str = ""

    @property
    def is_terminal(self) -> bool:
        return self.status.upper() in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status.upper() == "SUCCESS"

    @property
    def cancelled(self) -> bool:
        return self.status.upper() in CANCELLED

    @property
    def queued_for(self) -> int | None:
        """Seconds between submission and start, when the server gave both."""
        if self.submit_time and self.start_time and self.start_time >= self.submit_time:
            return self.start_time - self.submit_time
        return None

    @property
    def ran_for(self) -> int | None:
        """Seconds between start and finish, when the server gave both."""
        if self.start_time and self.finish_time and self.finish_time >= self.start_time:
            return self.finish_time - self.start_time
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "kind": self.kind.value,
            "status": self.status,
            "progress": self.progress,
            "outputs": list(self.outputs),
            "fail_reason": self.fail_reason,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "finish_time": self.finish_time,
            "queued_for": self.queued_for,
            "ran_for": self.ran_for,
        }


_VIDEO_NAME = re.compile(r"(-t2v|-i2v|video)", re.IGNORECASE)


def kind_from_model_name(model: str) -> TaskKind:
    """The fallback guess of a model's kind from its name (`-t2v`, `-i2v`, `video` mean video)."""
    return TaskKind.VIDEO if _VIDEO_NAME.search(model) else TaskKind.IMAGE


def kind_from_task_id(task_id: str) -> TaskKind | None:
    lowered = task_id.lower()
    if lowered.startswith("image_"):
        return TaskKind.IMAGE
    if lowered.startswith("video_"):
        return TaskKind.VIDEO
    return None


def parse_progress(value: object) -> int | None:
    """`"45%"`, `45`, `"45"`, `45.5` -> 45; anything else -> None. Clamped to 0..100."""
    if isinstance(value, bool) or value is None:
        return None
    number: float
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if math.isnan(number):
        return None
    return int(max(0.0, min(100.0, number)))


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
    """Both create-response shapes: `data.task_id` (API.md) and a top-level `task_id`/`id`."""
    data = _envelope_data(payload)
    candidates: list[object] = [data.get("task_id"), data.get("id")]
    if isinstance(payload, Mapping) and payload is not data:
        candidates += [payload.get("task_id"), payload.get("id")]
    for candidate in candidates:
        if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
            task_id = str(candidate).strip()
            if task_id:
                return SubmittedTask(task_id=task_id, kind=kind, model=model)
    raise ProtocolError("the server accepted the request but sent no task id")


def parse_status(payload: object, kind: TaskKind, task_id: str) -> TaskStatus:
    data = _envelope_data(payload)
    status = _text(data.get("status")).strip()
    if not status:
        raise ProtocolError(f"the server sent no status for task {task_id}")
    returned_id = data.get("task_id")
    return TaskStatus(
        task_id=returned_id if isinstance(returned_id, str) and returned_id else task_id,
        kind=kind,
        status=status,
        progress=parse_progress(data.get("progress")),
        outputs=_outputs(data.get("outputs")),
        fail_reason=_text(data.get("fail_reason")),
        submit_time=_timestamp(data.get("submit_time")),
        start_time=_timestamp(data.get("start_time")),
        finish_time=_timestamp(data.get("finish_time")),
        action=_text(data.get("action")),
    )


VIDEO_TAGS = frozenset({"text-to-video", "image-to-video", "video"})


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry: the model's name, its tag, and the JSON Schema of its request body."""

    name: str
    tag: str
    schema: dict[str, Any]

    @property
    def kind(self) -> TaskKind:
        return TaskKind.VIDEO if self.tag in VIDEO_TAGS else TaskKind.IMAGE

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        props = self.schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {k: v for k, v in props.items() if isinstance(v, dict)}

    @property
    def required(self) -> list[str]:
        required = self.schema.get("required")
        return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "tag": self.tag,
            "required": self.required,
            "schema": self.schema,
        }


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


@dataclass(frozen=True)
class UploadToken:
    """Temporary S3 credentials and where to put files (API.md, "File upload")."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    region: str
    bucket: str
    upload_path: str
    upload_endpoint: str
    access_endpoint: str
    expires_at: float | None = None  # epoch seconds, when the gateway says

    def secrets(self) -> list[str]:
        return [self.secret_access_key, self.session_token]

    def key_for(self, name: str) -> str:
        return self.upload_path.lstrip("/") + name

    def public_url(self, key: str) -> str:
        base = self.access_endpoint.rstrip("/")
        if "://" not in base:
            base = "https://" + base
        return f"{base}/{key}"


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
