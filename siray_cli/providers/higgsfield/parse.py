"""Higgsfield's JSON turned into siray's normalized values: the only module that knows the shapes
of Higgsfield's answers (flat request objects, `detail` errors, `images[]`/`video`/`audio`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from siray_cli.domain import ModelInfo, OutputItem, Task, TaskKind, TaskState
from siray_cli.errors import ProtocolError

# A request id is a UUID (the OpenAPI path parameter is `format: uuid`); siray accepts any
# 8-4-4-4-12 hexadecimal form and nothing else, so an id can name a URL path and a file.
REQUEST_ID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

# The six documented states, in siray's words ("canceled" is spelt with one l there).
STATES = {
    "queued": TaskState.QUEUED,
    "in_progress": TaskState.IN_PROGRESS,
    "completed": TaskState.SUCCESS,
    "failed": TaskState.FAILURE,
    "nsfw": TaskState.FAILURE,
    "canceled": TaskState.CANCELLED,
}
MODERATED = "rejected by content moderation"


@dataclass(frozen=True)
class Submitted:
    request_id: str
    status_url: str | None
    cancel_url: str | None


def same_origin(url: object, base_url: str) -> str | None:
    """`url` when it is an absolute URL on the host siray was pointed at; a status or cancel URL
    elsewhere is never followed (the credentials would go with it)."""
    if not isinstance(url, str):
        return None
    here, there = urlsplit(base_url), urlsplit(url)
    if (there.scheme, there.netloc) != (here.scheme, here.netloc):
        return None
    return url


def _object(payload: object) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ProtocolError(f"expected a JSON object from the server, got {type(payload).__name__}")
    return payload


def parse_submit(payload: object, base_url: str) -> Submitted:
    data = _object(payload)
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise ProtocolError("the server accepted the request but sent no request_id")
    if not REQUEST_ID.match(request_id.strip()):
        raise ProtocolError(f"the server answered with an unusable request id {request_id!r}")
    return Submitted(
        request_id.strip(),
        same_origin(data.get("status_url"), base_url),
        same_origin(data.get("cancel_url"), base_url),
    )


def _urls(value: object) -> list[str]:
    if isinstance(value, Mapping):
        url = value.get("url")
        return [url] if isinstance(url, str) and url else []
    if isinstance(value, list):
        return [url for item in value for url in _urls(item)]
    return []


def parse_status(payload: object, kind: TaskKind, request_id: str) -> Task:
    data = _object(payload)
    word = data.get("status")
    if not isinstance(word, str) or not word.strip():
        raise ProtocolError(f"the server sent no status for request {request_id}")
    word = word.strip().lower()
    state = STATES.get(word, TaskState.UNKNOWN)
    outputs = [OutputItem(url, TaskKind.IMAGE) for url in _urls(data.get("images"))]
    outputs += [OutputItem(url, TaskKind.VIDEO) for url in _urls(data.get("video"))]
    outputs += [OutputItem(url, kind) for url in _urls(data.get("audio"))]
    reason = data.get("error")
    fail_reason = reason if isinstance(reason, str) else ""
    if word == "nsfw":
        fail_reason = fail_reason or MODERATED
    shown = {"nsfw": "NSFW", "canceled": "CANCELLED"}.get(word, state.value)
    if state is TaskState.UNKNOWN:
        shown = word.upper()
    return Task(
        task_id=request_id,  # the id asked about, whatever the answer says
        kind=kind,
        status=shown,
        state=state,
        progress=None,  # Higgsfield reports none
        outputs=tuple(outputs),
        fail_reason=fail_reason,
        raw=payload,
    )


def error_detail(payload: object) -> str | None:
    """The words of a FastAPI error body: a `detail` string, or each validation item as
    `field: message`."""
    if not isinstance(payload, Mapping):
        return None
    detail = payload.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if not isinstance(item, Mapping):
                continue
            loc = [str(part) for part in item.get("loc") or [] if part != "body"]
            message = item.get("msg") or item.get("type") or "invalid"
            lines.append(f"{'.'.join(loc) or 'body'}: {message}")
        return "; ".join(lines) or None
    for key in ("message", "error"):
        if isinstance(payload.get(key), str):
            return str(payload[key])
    return None


def parse_upload_slot(payload: object) -> tuple[str, str, dict[str, str]]:
    """(upload_url, public_url, headers for the PUT) of `POST /files/generate-upload-url`."""
    data = _object(payload)
    upload_url, public_url = data.get("upload_url"), data.get("public_url")
    if not isinstance(upload_url, str) or not isinstance(public_url, str):
        raise ProtocolError("the upload answer lacks upload_url or public_url")
    headers = data.get("upload_headers")
    extra = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}
    return upload_url, public_url, extra


def parse_estimate(payload: object) -> dict[str, str]:
    """The price, as the decimal strings the contract gives (`"1.500"`); anything that is not a
    finite decimal number is the server's mistake, not a price."""
    from decimal import Decimal, InvalidOperation

    data = _object(payload)
    price = {key: str(data[key]).strip() for key in ("credits", "usd") if key in data}
    for key, text in price.items():
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ProtocolError(f"the estimate's {key} is not a number")
    return price


# The application ids the contract names, with their kind and the arguments it shows
# (required first). An id outside the list is sent all the same, with a note.
APPLICATIONS: dict[str, tuple[TaskKind, list[str], list[str]]] = {
    "bytedance/seedream/v4/text-to-image": (
        TaskKind.IMAGE, ["prompt"], ["resolution", "aspect_ratio", "camera_fixed"]
    ),
    "bytedance/seedream/v4/edit": (
        TaskKind.IMAGE, ["prompt"], ["image_urls", "image_url", "aspect_ratio", "resolution"]
    ),
    "higgsfield-ai/soul/standard": (TaskKind.IMAGE, ["prompt"], ["aspect_ratio", "resolution"]),
    "higgsfield-ai/soul/v2/standard": (TaskKind.IMAGE, ["prompt"], []),
    "reve/text-to-image": (TaskKind.IMAGE, [], ["prompt", "aspect_ratio", "resolution"]),
    "flux-pro/kontext/max/text-to-image": (
        TaskKind.IMAGE, ["prompt"], ["aspect_ratio", "safety_tolerance", "seed"]
    ),
    "kling-video/v2.1/pro/image-to-video": (
        TaskKind.VIDEO, ["prompt", "image_url"], ["duration"]
    ),
    "kling-video/v2.5-turbo/pro/image-to-video": (
        TaskKind.VIDEO, ["prompt", "image_url"], ["duration"]
    ),
    "kling-video/v3.0-turbo/image-to-video": (
        TaskKind.VIDEO, ["prompt", "image_url"], ["duration", "resolution"]
    ),
    "bytedance/seedance/v1/pro/image-to-video": (
        TaskKind.VIDEO, [], ["prompt", "image_url", "duration"]
    ),
    "higgsfield-ai/dop/standard": (TaskKind.VIDEO, [], ["prompt", "image_url", "duration"]),
    "higgsfield-ai/dop/preview": (TaskKind.VIDEO, [], ["prompt", "image_url", "duration"]),
}  # fmt: skip

_TYPES = {"camera_fixed": "boolean", "seed": "integer", "safety_tolerance": "integer",
          "duration": "integer", "image_urls": "array"}  # fmt: skip


def catalogue() -> list[ModelInfo]:
    """The known applications as catalogue entries: only the checks that are safe (required
    arguments, their JSON types); any other argument is let through (`open` schemas)."""
    models = []
    for name, (kind, required, optional) in APPLICATIONS.items():
        properties: dict[str, Any] = {}
        for field in [*required, *optional]:
            kind_of = _TYPES.get(field, "string")
            prop: dict[str, Any] = {"type": kind_of}
            if kind_of == "array":
                prop["items"] = {"type": "string"}
            properties[field] = prop
        schema = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": True,
        }
        tag = "image-to-video" if kind is TaskKind.VIDEO else "text-to-image"
        models.append(ModelInfo(name, tag, schema))
    return models
