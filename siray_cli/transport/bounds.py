"""Bounds on every request: its timeouts, one overall deadline per thread, and the size and
speed of the answer it reads (a gzip bomb or a trickling server stops here)."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timezone
from typing import TYPE_CHECKING, Any

import httpx

from siray_cli import __version__

if TYPE_CHECKING:
    pass

Trace = Callable[[str], None]

USER_AGENT = f"siray-cli/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)


def timeouts(read: float) -> httpx.Timeout:
    return httpx.Timeout(connect=min(10.0, read), read=read, write=read, pool=10.0)


def timeout_of(timeout: httpx.Timeout) -> float:
    """The read timeout: a request's overall deadline, retries included, is REQUEST_BUDGET of it."""
    return timeout.read if timeout.read is not None else 60.0


REQUEST_BUDGET = 2.0  # read timeouts a request may take in all, every retry and pause included


MAX_RETRY_AFTER = 30.0
DEFAULT_BACKOFF = 0.5  # seconds before the first retry; doubles each time, with full jitter


_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After in seconds, capped at MAX_RETRY_AFTER; None when it gives none or
    one that cannot be read. The one reading of it, for the retry of the request that got it
    (retries._pause) and for the pace of every other (pacing): seconds (HTTP's are whole; a
    fraction is taken too), or an HTTP date, which is always GMT (one without a zone included,
    not the machine's local time)."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    if _SECONDS.fullmatch(header):  # digits only: not 1e3, 1_0, -1, inf or others' digits
        seconds = float(header)  # a number too big for a float is inf: the cap
    else:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class BadBody(Exception):
    """A 2xx body cut short or not JSON; retried like a dropped connection."""


JSON_BODY_LIMIT = 16 * 1024 * 1024  # bytes of an API answer, once decompressed


class AnswerTooSlow(httpx.TransportError):
    """No complete answer before the request's deadline (a server that trickles, or streams
    forever). Not retried: the time is spent."""


class AnswerTooLarge(httpx.TransportError):
    """An answer larger than siray reads (after decompression: a gzip bomb stops here)."""


deadline_state = threading.local()


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Requests made by this thread inside the block end by `at` (time.monotonic()) at the
    latest, whatever their own deadline: a wait bounded by --timeout stays bounded."""
    outer = getattr(deadline_state, "at", None)
    deadline_state.at = at if outer is None or at is None else min(at, outer)
    try:
        yield
    finally:
        deadline_state.at = outer


class _BoundedStream(httpx.SyncByteStream):
    def __init__(
        self,
        inner: httpx.SyncByteStream,
        request: httpx.Request,
        *,
        ends: float,
        limit: int,
        encoding: str,
    ) -> None:
        self._inner, self._request = inner, request
        self._ends, self._limit = ends, limit
        self._decoder = _decoder(encoding, request)

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for raw in self._inner:
            if time.monotonic() > self._ends:
                raise AnswerTooSlow("no complete answer in time", request=self._request)
            chunk = raw if self._decoder is None else self._decompress(raw, size)
            size += len(chunk)
            if size > self._limit:
                raise AnswerTooLarge(f"an answer over {self._limit} bytes", request=self._request)
            yield chunk
        if self._decoder is not None:
            yield self._decoder.flush()

    def _decompress(self, raw: bytes, size: int) -> bytes:
        assert self._decoder is not None
        chunk: bytes = self._decoder.decompress(raw, self._limit - size + 1)
        if self._decoder.unconsumed_tail:
            raise AnswerTooLarge(f"an answer over {self._limit} bytes", request=self._request)
        return chunk

    def close(self) -> None:
        self._inner.close()


def _decoder(encoding: str, request: httpx.Request) -> Any:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise httpx.DecodingError(f"an answer in an unasked-for encoding {encoding!r}", request=request)


class BoundedTransport(httpx.BaseTransport):
    """Every answer read within an overall deadline (not only per read) and a size limit, and
    decompressed here, within that limit (siray asks for gzip or deflate only)."""

    def __init__(self, inner: httpx.BaseTransport, *, seconds: float, limit: int) -> None:
        self._inner, self._seconds, self._limit = inner, seconds, limit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        ends = time.monotonic() + self._seconds
        outer = getattr(deadline_state, "at", None)
        if outer is not None:
            ends = min(ends, outer)
        if time.monotonic() >= ends:
            raise AnswerTooSlow("no time left for the request", request=request)
        request.headers["Accept-Encoding"] = "gzip, deflate"
        response = self._inner.handle_request(request)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        headers = [
            (name, value)
            for name, value in response.headers.raw
            if not encoding or name.lower() not in (b"content-encoding", b"content-length")
        ]
        assert isinstance(response.stream, httpx.SyncByteStream)
        stream = _BoundedStream(
            response.stream, request, ends=ends, limit=self._limit, encoding=encoding
        )
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=stream,
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()
