"""The provider seam: the normalized values every provider returns, and the `Provider` protocol
the rest of siray talks to. Nothing here knows any provider's JSON."""

from __future__ import annotations

import abc
import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from siray_cli.storage.upload import Source, Uploaded


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


_VIDEO_NAME = re.compile(r"(-t2v|-i2v|video)", re.IGNORECASE)


def kind_from_model_name(model: str) -> TaskKind:
    """The fallback guess of a model's kind from its name (`-t2v`, `-i2v`, `video` mean video)."""
    return TaskKind.VIDEO if _VIDEO_NAME.search(model) else TaskKind.IMAGE


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


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, so commands ask instead of branching on names."""

    supports_cancel: bool = True
    supports_progress: bool = True
    supports_upload: bool = True
    supports_catalogue: bool = True
    supports_estimate: bool = False
    supports_idempotency: bool = False  # a submit may be resent with the same key, safely
    supports_webhook: bool = False
    open_catalogue: bool = False  # a model outside the catalogue is sent (with a note), not refused


Trace = Callable[[str], None]
ProgressFor = Callable[["Source"], Callable[[int], None]]


_P = TypeVar("_P", bound="Provider")


class Provider(abc.ABC):
    """What siray needs from a generation API. Every method raises siray_cli.errors types."""

    name: str
    capabilities: Capabilities
    base_url: str
    image_field = "image"  # the input `--image` sets

    @property
    @abc.abstractmethod
    def catalogue_url(self) -> str:
        """Where the model catalogue comes from (its cache is kept per URL)."""

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmittedTask:
        """Create a task. Never repeats a request that may have reached the server without an
        idempotency guarantee."""

    @abc.abstractmethod
    def get(self, task_id: str, kind: TaskKind | None = None) -> Task: ...

    @abc.abstractmethod
    def cancel(self, task_id: str, kind: TaskKind | None = None) -> Task: ...

    @abc.abstractmethod
    def check_task_id(self, task_id: str) -> str:
        """The id, stripped; a UsageError when it cannot be one of this provider's ids."""

    @abc.abstractmethod
    def list_models(self) -> list[ModelInfo]: ...

    probe_id: str  # a task id that cannot exist: asking for it is the cheapest authenticated call

    def verify_credentials(self) -> bool:
        """True when the API takes the credential (a 404 for a task that cannot exist), False
        when it refuses it (401, 403)."""
        from siray_cli.errors import (
            AuthenticationError,
            NetworkError,
            NotFoundError,
            PermissionDeniedError,
        )

        try:
            self.get(self.probe_id)
        except NotFoundError:
            return True
        except (AuthenticationError, PermissionDeniedError):
            return False
        except NetworkError as exc:  # the probe's id is siray's own device: not the user's
            exc.message = exc.message.replace(f"querying {self.probe_id}", "checking the key")
            exc.task_id = None
            raise
        return True

    def estimate(self, body: dict[str, Any]) -> dict[str, str]:
        """The price of a request (`credits`, `usd`), without submitting it."""
        from siray_cli.errors import UsageError

        raise UsageError(f"{self.name} has no price endpoint: nothing to estimate")

    @abc.abstractmethod
    def upload(
        self,
        sources: Sequence[Source],
        progress: ProgressFor,
        *,
        part_size: int,
        virtual_host: bool,
        on_secret: Callable[[str], None],
    ) -> list[Uploaded]:
        """Upload local files; their public URLs, in order."""
