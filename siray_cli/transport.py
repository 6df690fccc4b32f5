"""The HTTP transport every provider and download shares: httpx with retries, pacing, proxies
and a --debug trace.

Retries follow an httpx-retries Retry policy: GETs ride through connection errors, timeouts,
truncated bodies, 429 and 502/503/504 with jittered exponential backoff, honouring a capped
Retry-After. The create POST is retried only when it certainly never reached the server (the
connection was never made) or on 429; anything else could start a second paid task. Whatever
the policy, a request and all its retries end within one overall deadline (REQUEST_BUDGET read
timeouts): six attempts of a full read timeout each would keep a look waiting for minutes.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from siray_cli import __version__

if TYPE_CHECKING:
    from httpx_retries import Retry

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


class BadBody(Exception):
    """A 2xx body cut short or not JSON; retried like a dropped connection."""


JSON_BODY_LIMIT = 16 * 1024 * 1024  # bytes of an API answer, once decompressed


class AnswerTooSlow(httpx.TransportError):
    """No complete answer before the request's deadline (a server that trickles, or streams
    forever). Not retried: the time is spent."""


class AnswerTooLarge(httpx.TransportError):
    """An answer larger than siray reads (after decompression: a gzip bomb stops here)."""


_deadline = threading.local()


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Requests made by this thread inside the block end by `at` (time.monotonic()) at the
    latest, whatever their own deadline: a wait bounded by --timeout stays bounded."""
    outer = getattr(_deadline, "at", None)
    _deadline.at = at if outer is None or at is None else min(at, outer)
    try:
        yield
    finally:
        _deadline.at = outer


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
        outer = getattr(_deadline, "at", None)
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


def _read_json_body(response: httpx.Response) -> None:
    response.read()
    if response.is_success:
        try:
            json.loads(response.content)
        except ValueError as exc:
            raise BadBody("the server sent a response that is not valid JSON") from exc


_GET_FAULTS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    BadBody,
)


def read_retry(
    *,
    backoff: float | None = None,
    total: int = 5,
    methods: Iterable[str] = ("GET",),
    expect_json: bool = True,
    statuses: Iterable[int] = (429, 502, 503, 504),
) -> Retry:
    """The policy for requests that are safe to repeat. With `expect_json`, a 2xx body that is cut
    short or is not JSON is retried too (downloads check their own bodies)."""
    return _retry_class()(  # asyncio comes with httpx-retries: only when a client is built
        total=total,
        allowed_methods=list(methods),
        status_forcelist=list(statuses),
        retry_on_exceptions=list(_GET_FAULTS),
        backoff_factor=DEFAULT_BACKOFF if backoff is None else backoff,
        max_backoff_wait=MAX_RETRY_AFTER,
        total_timeout=90.0,
        validate_response=_read_json_body if expect_json else None,
    )


def create_retry(*, backoff: float | None = None) -> Retry:
    """The paid create POST: retried only if it never reached the server, or on 429."""
    return _retry_class()(
        total=4,
        allowed_methods=["POST"],
        status_forcelist=[429],
        retry_on_exceptions=[httpx.ConnectError, httpx.ConnectTimeout],
        backoff_factor=DEFAULT_BACKOFF if backoff is None else backoff,
        max_backoff_wait=MAX_RETRY_AFTER,
        total_timeout=90.0,
    )


class BoundedRetries(httpx.BaseTransport):
    """Sends a request, and sends it again as its Retry policy allows (the request's own, in
    extensions["retry"], else the client's), all before one overall deadline: each attempt's
    timeouts are cut to the time left, and a pause that would end past the deadline is not
    taken; the last answer or error then stands. With `keep_body_reads` (downloads), the body,
    read after this returns, keeps the full read timeout between reads: a large file may take
    long, and the download's own stall check bounds it."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        retry: Retry,
        *,
        seconds: float,
        keep_body_reads: bool = False,
    ) -> None:
        self._inner, self._retry, self._seconds = inner, retry, seconds
        self._keep_body_reads = keep_body_reads

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = dict(request.extensions.get("timeout") or {})
        with deadline(time.monotonic() + self._seconds):
            ends: float = _deadline.at
            try:
                return self._send(request, timeouts, ends)
            except httpx.ConnectError as exc:
                # whether the grace ran out first or the retries did: nothing listens there
                if isinstance(exc, NothingListening) or not _refused_locally(request, exc):
                    raise
                raise nothing_listens(request) from exc

    def _send(
        self, request: httpx.Request, timeouts: dict[str, float | None], ends: float
    ) -> httpx.Response:
        retry: Retry = request.extensions.get("retry") or self._retry
        if not retry.is_retryable_method(request.method):
            return self._attempt(request, timeouts, ends)
        while True:
            last: httpx.Response | Exception
            try:
                response = self._attempt(request, timeouts, ends)
            except Exception as exc:
                if retry.is_exhausted() or not retry.is_retryable_exception(exc):
                    raise
                last = exc
            else:
                if retry.is_exhausted():
                    return response
                if retry.is_retryable_status_code(response.status_code):
                    last = response
                elif retry.validate_response is None:
                    return response
                else:
                    response.request = request
                    try:
                        retry.validate_response(response)
                    except Exception as exc:
                        if not retry.is_retryable_exception(exc):
                            raise
                        response.close()
                        last = exc
                    else:
                        return response
            retry = retry.increment()
            pause = _pause(retry, last)
            if time.monotonic() + pause >= ends:
                if isinstance(last, Exception):
                    raise last
                return last
            if isinstance(last, httpx.Response):
                last.close()
            time.sleep(pause)
            retry.elapsed_sleep += pause

    def _attempt(
        self, request: httpx.Request, timeouts: dict[str, float | None], ends: float
    ) -> httpx.Response:
        left = ends - time.monotonic()
        if left <= 0:
            raise AnswerTooSlow("no time left for the request", request=request)
        request.extensions["timeout"] = {
            name: left if value is None else min(value, left) for name, value in timeouts.items()
        }
        response = self._inner.handle_request(request)
        if self._keep_body_reads:  # httpcore reads this dict again for every read of the body
            request.extensions["timeout"] = dict(timeouts)
        return response

    def close(self) -> None:
        self._inner.close()


def _pause(retry: Retry, last: httpx.Response | Exception) -> float:
    """Seconds to wait before the next attempt: the server's Retry-After (capped), else the
    policy's jittered backoff; within the policy's total of pauses."""
    wait = 0.0
    header = last.headers.get("Retry-After", "") if isinstance(last, httpx.Response) else ""
    if header.strip() and retry.respect_retry_after_header:
        try:
            wait = min(retry.parse_retry_after(header), retry.max_backoff_wait)
        except ValueError:
            wait = 0.0
    if wait <= 0 and retry.attempts_made > 0:
        wait = retry.backoff_strategy()
    if retry.total_timeout is not None:
        wait = min(wait, max(0.0, retry.total_timeout - retry.elapsed_sleep))
    return float(wait)


class TraceTransport(httpx.BaseTransport):
    """Reports every attempt (method, URL, status, time) to the `--debug` trace; never headers."""

    def __init__(self, inner: httpx.BaseTransport, trace: Trace) -> None:
        self._inner = inner
        self._trace = trace

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        url = request.url.copy_with(query=None)
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            self._trace(
                f"{request.method} {url} failed after {elapsed:.0f} ms: {type(exc).__name__}"
            )
            raise
        elapsed = (time.perf_counter() - started) * 1000
        self._trace(f"{request.method} {url} -> {response.status_code} ({elapsed:.0f} ms)")
        return response

    def close(self) -> None:
        self._inner.close()


class Pacer:
    """Shared by every request of one client: after a 429 with Retry-After, nobody sends until
    the server's moment has passed (a batch's threads slow down together)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._not_before - time.monotonic()
        outer = getattr(_deadline, "at", None)
        if outer is not None:  # the request ends then anyway: sleeping past it only delays that
            delay = min(delay, outer - time.monotonic())
        if delay > 0:
            time.sleep(min(delay, MAX_RETRY_AFTER))

    def note(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        try:
            seconds = min(float(response.headers.get("Retry-After", "")), MAX_RETRY_AFTER)
        except ValueError:
            return
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)


class PacingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, pacer: Pacer) -> None:
        self._inner = inner
        self._pacer = pacer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._pacer.wait()
        response = self._inner.handle_request(request)
        self._pacer.note(response)
        return response

    def close(self) -> None:
        self._inner.close()


class ProxyRouter(httpx.BaseTransport):
    """Sends each request directly or through the proxy that HTTPS_PROXY, HTTP_PROXY, ALL_PROXY
    and NO_PROXY name (read the standard library's way): httpx itself stops reading them once a
    transport of one's own is given. Certificate checks stay on either way."""

    def __init__(self) -> None:
        import urllib.request

        self._proxies = {k.lower(): v for k, v in urllib.request.getproxies().items()}
        self._bypass = urllib.request.proxy_bypass
        self._direct: dict[str, httpx.HTTPTransport] = {}  # by scheme, made on first use
        self._through: dict[str, httpx.HTTPTransport] = {}

    def route(self, url: httpx.URL) -> str | None:
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if not proxy:
            return None
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        return None if self._bypass(host) else proxy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._send(request)
        except httpx.ConnectError as exc:
            if _refused_locally(request, exc) and _refused_for_long(request):
                raise nothing_listens(request) from exc
            raise

    def _send(self, request: httpx.Request) -> httpx.Response:
        proxy = self.route(request.url)
        if proxy is None:
            scheme = request.url.scheme
            if scheme not in self._direct:
                # plain http never does TLS: its transport gets a context that trusts nothing
                # rather than the certificate bundle, whose loading costs ~20 ms
                verify = tls_context() if scheme == "https" else _NO_TLS
                self._direct[scheme] = httpx.HTTPTransport(verify=verify)
            return self._direct[scheme].handle_request(request)
        if proxy not in self._through:
            self._through[proxy] = httpx.HTTPTransport(proxy=proxy, verify=tls_context())
        return self._through[proxy].handle_request(request)

    def close(self) -> None:
        for transport in [*self._direct.values(), *self._through.values()]:
            transport.close()


LOCAL_REFUSED_GRACE = 1.0  # seconds a refused connection to this machine is tried again
_LOOPBACK = ("127.", "::1", "localhost")


class NothingListening(httpx.ConnectError):
    """A server on this machine (an emulator, say) refuses the connection: once it has done so
    for LOCAL_REFUSED_GRACE seconds, no network outage is there to ride out, so the retries stop
    (a task recorded on an emulator long gone would otherwise cost ~15 s of retries); and when
    the retries run out sooner (a short backoff), that is still what happened. Still a
    ConnectError: the request certainly never reached a server."""


def nothing_listens(request: httpx.Request) -> NothingListening:
    return NothingListening(
        f"nothing listens on {request.url.host}:{request.url.port}", request=request
    )


def _refused_locally(request: httpx.Request, exc: httpx.ConnectError) -> bool:
    host = request.url.host or ""
    return host.startswith(_LOOPBACK) and "refused" in str(exc).lower()


def _refused_for_long(request: httpx.Request) -> bool:
    first = request.extensions.setdefault("siray_refused_since", time.monotonic())
    return bool(time.monotonic() - first >= LOCAL_REFUSED_GRACE)


# What went wrong, in words, by the kind of error (the most specific first).
_WORDS: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectTimeout, "connecting timed out"),
    (httpx.ReadTimeout, "no answer within the read timeout"),
    (httpx.WriteTimeout, "sending the request timed out"),
    (httpx.PoolTimeout, "no connection was free in time"),
    (httpx.ProxyError, "the proxy failed"),
    (httpx.ConnectError, "could not connect"),
    (httpx.RemoteProtocolError, "the server broke off or garbled its answer"),
    (httpx.ReadError, "the connection failed while reading the answer"),
    (httpx.WriteError, "the connection failed while sending the request"),
    (httpx.DecodingError, "the answer could not be decoded"),
    (httpx.UnsupportedProtocol, "the URL's scheme is not supported"),
    (httpx.TooManyRedirects, "too many redirects"),
    (httpx.TimeoutException, "timed out"),
)


def describe(exc: BaseException) -> str:
    """What went wrong with a request, for people: what happened and the detail, never an
    exception's class name."""
    if isinstance(exc, (NothingListening, AnswerTooSlow, AnswerTooLarge)):
        return str(exc)
    words = next((said for kind, said in _WORDS if isinstance(exc, kind)), "the request failed")
    detail = str(exc).strip()
    return f"{words}: {detail}" if detail and detail.lower() != "timed out" else words


def _retry_class() -> type[Retry]:
    """httpx-retries' Retry, which does not retry NothingListening (made on first use: the
    module imports asyncio)."""
    global _RETRY
    if _RETRY is None:
        from httpx_retries import Retry

        class SirayRetry(Retry):
            def is_retryable_exception(self, exception: Exception) -> bool:
                if isinstance(exception, NothingListening):
                    return False
                return bool(super().is_retryable_exception(exception))

        _RETRY = SirayRetry
    return _RETRY


_RETRY: type[Retry] | None = None
_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and trusts no authority at all
_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """The certificate-checking TLS context, built once per process (and per SSL_CERT_FILE /
    SSL_CERT_DIR, which name extra authorities): loading the bundle is the slow part."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _contexts_lock:
        if key not in _contexts:
            _contexts[key] = httpx.create_ssl_context()
        return _contexts[key]


def build_http_client(
    *,
    base_url: str = "",
    headers: dict[str, str] | None = None,
    trace: Trace | None = None,
    backoff: float | None = None,
    timeout: httpx.Timeout | None = None,
    read_timeout: float | None = None,
    expect_json: bool = True,
) -> httpx.Client:
    """An HTTP client with siray's stack: retries (`backoff`, default DEFAULT_BACKOFF), pacing,
    bounded JSON answers and the proxy rules. `timeout` defaults to DEFAULT_TIMEOUT, or to
    `timeouts(read_timeout)` when a read timeout is given."""
    if timeout is None:
        timeout = DEFAULT_TIMEOUT if read_timeout is None else timeouts(read_timeout)

    budget = REQUEST_BUDGET * timeout_of(timeout)
    inner: httpx.BaseTransport = ProxyRouter()
    if expect_json:  # downloads bound their own bodies (by size and Content-Length)
        inner = BoundedTransport(inner, seconds=budget, limit=JSON_BODY_LIMIT)
    if trace is not None:
        inner = TraceTransport(inner, trace)
    inner = PacingTransport(inner, Pacer())
    retry = read_retry(backoff=backoff, expect_json=expect_json)
    transport = BoundedRetries(inner, retry, seconds=budget, keep_body_reads=not expect_json)
    all_headers = {"User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url,
        headers=all_headers,
        timeout=timeout,
        transport=transport,
        follow_redirects=not expect_json,
        trust_env=False,  # proxies are ProxyRouter's; SSL_CERT_FILE is read by tls_context()
    )
