"""The nouns every layer of siray shares, and nothing else: what a task is and what state it is
in, what it made, a model's catalogue entry, and the files an upload takes and gives back.

At the bottom of the package graph: it imports nothing of siray_cli (commands, services,
storage and providers all import it; see tests/test_architecture.py)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any


class TaskKind(str, enum.Enum):
    """What a task makes (and so which media its outputs are)."""

    IMAGE = "image"
    VIDEO = "video"


class TaskState(str, enum.Enum):
    """A task's state, the same words for every provider."""

    SUBMITTED = "SUBMITTED"  # accepted, not queued yet
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"  # a word no contract documents: treated as not ended yet


TERMINAL = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED})


@dataclass(frozen=True)
class OutputItem:
    url: str
    media: TaskKind


@dataclass(frozen=True)
class SubmittedTask:
    task_id: str
    kind: TaskKind
    model: str
    rejoined: bool = False  # an earlier attempt's task, found in the history, not a new one
    # the task as the submit's answer described it, when it did (a request made earlier under
    # the same idempotency key may be answered as it is now: ended, say)
    answer: Task | None = None


@dataclass(frozen=True)
class Task:
    """A task as siray shows it. `status` is the provider's own word for the state (shown to
    people and scripts); `state` is what siray acts on."""

    task_id: str
    kind: TaskKind
    status: str
    state: TaskState
    progress: int | None = None
    outputs: tuple[OutputItem, ...] = ()
    fail_reason: str = ""
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def urls(self) -> list[str]:
        return [item.url for item in self.outputs]

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state is TaskState.SUCCESS

    @property
    def cancelled(self) -> bool:
        return self.state is TaskState.CANCELLED

    @property
    def running(self) -> bool:
        return self.state is TaskState.IN_PROGRESS

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

    @property
    def took(self) -> int | None:
        """Seconds between submission and finish (queued and run), when the server gave both."""
        if self.submit_time and self.finish_time and self.finish_time >= self.submit_time:
            return self.finish_time - self.submit_time
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "kind": self.kind.value,
            "status": self.status,
            "progress": self.progress,
            "outputs": self.urls,
            "fail_reason": self.fail_reason,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "finish_time": self.finish_time,
            "queued_for": self.queued_for,
            "ran_for": self.ran_for,
        }


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

    # read once a model (a batch checks each of its lines against them): the schema is not
    # changed once the entry is made

    @cached_property
    def properties(self) -> dict[str, dict[str, Any]]:
        props = self.schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {k: v for k, v in props.items() if isinstance(v, dict)}

    @cached_property
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


_VIDEO_NAME = re.compile(r"(-t2v|-i2v|video)", re.IGNORECASE)


def kind_from_model_name(model: str) -> TaskKind:
    """The fallback guess of a model's kind from its name (`-t2v`, `-i2v`, `video` mean video)."""
    return TaskKind.VIDEO if _VIDEO_NAME.search(model) else TaskKind.IMAGE


@dataclass(frozen=True)
class UploadToken:
    """Temporary S3 credentials and where to put files (the Siray API's "File upload")."""

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


@dataclass
class Source:
    """One thing to upload: a file on disk, or standard input."""

    label: str  # what the user typed
    name: str  # the name the object gets (after a unique prefix)
    content_type: str
    path: Path | None = None
    stream: Any = None  # a readable object, for standard input
    size: int | None = None


@dataclass
class Uploaded:
    file: str
    url: str
    bytes: int
    content_type: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "url": self.url,
            "bytes": self.bytes,
            "content_type": self.content_type,
        }
