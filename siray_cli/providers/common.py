"""What both providers' HTTP code shares: a client built on first use, reading a body as JSON,
saying why a request got no answer, and naming a wrong base URL when every request fails alike."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from siray_cli import errors

if TYPE_CHECKING:
    import httpx

    from siray_cli.transport import Trace
    from siray_cli.transport.pacing import AdaptiveRate


class LazyClient:
    """One host's HTTP client (transport.build_http_client), built on first use: a run that asks
    nothing (the catalogue from a fresh cache, Higgsfield's built-in ids) builds none and imports
    no httpx. A batch's workers share it (one request rate, `pace`), hence the lock."""

    def __init__(
        self,
        base_url: str,
        authorization: str,
        *,
        trace: Trace | None,
        backoff: float | None,
        read_timeout: float | None,
        max_rate: float | None = None,
    ) -> None:
        self._base_url = base_url
        self._authorization = authorization
        self._trace = trace
        self._backoff = backoff
        self._read_timeout = read_timeout
        self._max_rate = max_rate
        self._client: httpx.Client | None = None
        self.pace: AdaptiveRate | None = None  # the client's request rate, once built
        self._lock = threading.Lock()
        self.answered = False  # a 2xx came back: the base URL reaches the API
        self.not_found = 0  # lookups answered 404 or 405: what every one gets from a wrong base URL

    def get(self) -> httpx.Client:
        from siray_cli.transport import build_http_client
        from siray_cli.transport.pacing import CEILING, AdaptiveRate

        with self._lock:
            if self._client is None:
                self.pace = AdaptiveRate(CEILING if self._max_rate is None else self._max_rate)
                self._client = build_http_client(
                    pace=self.pace,
                    base_url=self._base_url,
                    headers={"Authorization": self._authorization},
                    trace=self._trace,
                    backoff=self._backoff,
                    read_timeout=self._read_timeout,
                )
                self._client.event_hooks["response"].append(self._saw)
            return self._client

    def _saw(self, response: httpx.Response) -> None:
        if response.is_success:
            self.answered = True

    def place_hint(self, set_by: str | None, default: str, added: str = "") -> str | None:
        """When a 404 may mean the base URL is wrong rather than the id or the model: it ends in
        the path siray adds itself (`added`, e.g. /v1: every request goes to /v1/v1/...), or it
        was set by hand and has a path of its own, or every request to it so far was answered
        404 or 405. None when the base URL is the default or has answered before."""
        from urllib.parse import urlsplit

        self.not_found += 1
        if self.answered:
            return None
        url = self._base_url.rstrip("/")
        path = urlsplit(url).path
        where = f" (set by {set_by})" if set_by else ""
        if added and path.endswith(added):
            return (
                f"the base URL {url}{where} ends in {added}, which siray adds to every path "
                f"itself: try {url[: -len(added)]}"
            )
        if set_by is None:
            return None
        if path or self.not_found > 1:
            return (
                f"is {url} the right base URL? It is set by {set_by}, and nothing this command "
                f"asked it has succeeded (the default is {default})"
            )
        return None

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
