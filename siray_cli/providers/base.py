"""The provider seam: the normalized values every provider returns, and the `Provider` protocol
the rest of siray talks to. Nothing here knows any provider's JSON."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from siray_cli.domain import ModelInfo, SubmittedTask, Task, TaskKind

if TYPE_CHECKING:
    from siray_cli.domain import Source, Uploaded


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
class SubmitRequest:
    """A create request as it goes on the wire, built without sending it: what `submit` sends and
    what `--dry-run` shows. The credential is never part of it (the HTTP client adds it)."""

    method: str
    base_url: str
    path: str
    body: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # besides the credential

    @property
    def url(self) -> str:
        from urllib.parse import urlencode

        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"{self.base_url}{self.path}{query}"


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
    def build_submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmitRequest:
        """The create request `submit` sends for this body, built and not sent."""

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
