"""What both providers' HTTP code shares: a client built on first use, reading a body as JSON,
and saying why a request got no answer."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from siray_cli import errors

if TYPE_CHECKING:
    import httpx

    from siray_cli.transport import Trace


class LazyClient:
    """One host's HTTP client (transport.build_http_client), built on first use: a run that asks
    nothing (the catalogue from a fresh cache, Higgsfield's built-in ids) builds none and imports
    no httpx. A batch's workers share it (one pacer), hence the lock."""

    def __init__(
        self,
        base_url: str,
        authorization: str,
        *,
        trace: Trace | None,
        backoff: float | None,
        read_timeout: float | None,
    ) -> None:
        self._base_url = base_url
        self._authorization = authorization
        self._trace = trace
        self._backoff = backoff
        self._read_timeout = read_timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        from siray_cli.transport import build_http_client

        with self._lock:
            if self._client is None:
                self._client = build_http_client(
                    base_url=self._base_url,
                    headers={"Authorization": self._authorization},
                    trace=self._trace,
                    backoff=self._backoff,
                    read_timeout=self._read_timeout,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def json_body(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise errors.ProtocolError(
            f"the server sent a response that is not JSON (HTTP {response.status_code})"
        ) from exc


def network_error(exc: Exception, what: str, url: str, setting: str) -> errors.NetworkError:
    """`what` got no answer from `url`; `setting` names the flag and variable that move it."""
    from siray_cli.transport import AnswerTooLarge, AnswerTooSlow, describe

    if isinstance(exc, (AnswerTooSlow, AnswerTooLarge)):
        return errors.NetworkError(
            f"{what}: {exc} from {url}",
            hint="the server's answers are too slow or too large; try again later",
        )
    hint = f"check your network and {setting}"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        hint = (
            "the server's certificate is not trusted; if your own authority signs it, "
            "point SSL_CERT_FILE at that authority's certificate"
        )
    return errors.NetworkError(
        f"{what}: could not reach {url} ({describe(exc)})",
        hint=hint,
    )
