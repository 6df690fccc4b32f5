"""Which requests are sent again, and when: the retry policies, one overall deadline for a
request and all its retries, and a refused connection on this machine told as nothing
listening there."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import httpx

from siray_cli.transport.bounds import (
    DEFAULT_BACKOFF,
    MAX_RETRY_AFTER,
    AnswerTooLarge,
    AnswerTooSlow,
    BadBody,
    deadline,
    deadline_state,
    retry_after,
)

if TYPE_CHECKING:
    from httpx_retries import Retry


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


_STARTED = frozenset({"attempts_made", "elapsed_sleep", "allowed_methods", "status_forcelist"})


class RetryPolicy:
    """Which requests are sent again, and how: the arguments of an httpx-retries Retry, which is
    made only when an attempt fails. Its module imports asyncio (about 25 ms): a command whose
    requests are all answered at the first attempt never pays for it. Until then the policy's own
    methods, statuses and body check, the very ones the Retry is made with, decide whether the
    first answer stands."""

    def __init__(
        self,
        *,
        methods: Iterable[str],
        statuses: Iterable[int],
        validate_response: Callable[[httpx.Response], None] | None = None,
        **options: Any,
    ) -> None:
        # the first answer is judged without a Retry: one that could be exhausted before any
        # attempt, or whose empty sets would mean httpx-retries' defaults, is not this
        if options.get("total", 1) < 1 or _STARTED.intersection(options):
            raise ValueError("a retry policy starts with no attempt made, and allows another")
        self.methods = frozenset(method.upper() for method in methods)
        self.statuses = frozenset(statuses)
        if not self.methods or not self.statuses:
            raise ValueError("a retry policy names the methods and statuses it sends again")
        self.validate_response = validate_response
        self._options = options

    def start(self) -> Retry:
        """httpx-retries' Retry for this policy, no attempt made yet."""
        return _retry_class()(
            allowed_methods=list(self.methods),
            status_forcelist=list(self.statuses),
            validate_response=self.validate_response,
            **self._options,
        )


def read_retry(
    *,
    backoff: float | None = None,
    total: int = 5,
    methods: Iterable[str] = ("GET",),
    expect_json: bool = True,
    statuses: Iterable[int] = (429, 502, 503, 504),
) -> RetryPolicy:
    """The policy for requests that are safe to repeat. With `expect_json`, a 2xx body that is cut
    short or is not JSON is retried too (downloads check their own bodies)."""
    return RetryPolicy(
        total=total,
        methods=methods,
        statuses=statuses,
        retry_on_exceptions=list(_GET_FAULTS),
        backoff_factor=DEFAULT_BACKOFF if backoff is None else backoff,
        max_backoff_wait=MAX_RETRY_AFTER,
        total_timeout=90.0,
        validate_response=_read_json_body if expect_json else None,
    )


def create_retry(*, backoff: float | None = None) -> RetryPolicy:
    """The paid create POST: retried only if it never reached the server, or on 429."""
    return RetryPolicy(
        total=4,
        methods=["POST"],
        statuses=[429],
        retry_on_exceptions=[httpx.ConnectError, httpx.ConnectTimeout],
        backoff_factor=DEFAULT_BACKOFF if backoff is None else backoff,
        max_backoff_wait=MAX_RETRY_AFTER,
        total_timeout=90.0,
    )


class BoundedRetries(httpx.BaseTransport):
    """Sends a request, and sends it again as its RetryPolicy allows (the request's own, in
    extensions["retry"], else the client's), all before one overall deadline: each attempt's
    timeouts are cut to the time left, and a pause that would end past the deadline is not
    taken; the last answer or error then stands. With `keep_body_reads` (downloads), the body,
    read after this returns, keeps the full read timeout between reads: a large file may take
    long, and the download's own stall check bounds it."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy,
        *,
        seconds: float,
        keep_body_reads: bool = False,
    ) -> None:
        self._inner, self._policy, self._seconds = inner, policy, seconds
        self._keep_body_reads = keep_body_reads

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = dict(request.extensions.get("timeout") or {})
        with deadline(time.monotonic() + self._seconds):
            ends: float = deadline_state.at
            try:
                return self._send(request, timeouts, ends)
            except httpx.ConnectError as exc:
                # whether the grace ran out first or the retries did: nothing listens there
                if isinstance(exc, NothingListening) or not refused_locally(request, exc):
                    raise
                raise nothing_listens(request) from exc

    def _send(
        self, request: httpx.Request, timeouts: dict[str, float | None], ends: float
    ) -> httpx.Response:
        policy: RetryPolicy = request.extensions.get("retry") or self._policy
        if request.method.upper() not in policy.methods:
            return self._attempt(request, timeouts, ends)
        retry: Retry | None = None  # made by the first attempt that fails
        while True:
            last: httpx.Response | Exception
            try:
                response = self._attempt(request, timeouts, ends)
            except Exception as exc:
                retry = retry or policy.start()
                if retry.is_exhausted() or not retry.is_retryable_exception(exc):
                    raise
                last = exc
            else:
                if retry is not None and retry.is_exhausted():
                    return response
                if response.status_code in policy.statuses:
                    last = response
                elif policy.validate_response is None:
                    return response
                else:
                    response.request = request
                    try:
                        policy.validate_response(response)
                    except Exception as exc:
                        retry = retry or policy.start()
                        if not retry.is_retryable_exception(exc):
                            raise
                        response.close()
                        last = exc
                    else:
                        return response
            retry = (retry or policy.start()).increment()
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
    if isinstance(last, httpx.Response) and retry.respect_retry_after_header:
        wait = min(retry_after(last) or 0.0, retry.max_backoff_wait)
    if wait <= 0 and retry.attempts_made > 0:
        wait = retry.backoff_strategy()
    if retry.total_timeout is not None:
        wait = min(wait, max(0.0, retry.total_timeout - retry.elapsed_sleep))
    return float(wait)


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


def refused_locally(request: httpx.Request, exc: httpx.ConnectError) -> bool:
    host = request.url.host or ""
    return host.startswith(_LOOPBACK) and "refused" in str(exc).lower()


def refused_for_long(request: httpx.Request) -> bool:
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
    with _RETRY_MADE:  # a batch's workers may all fail at once: one class, made once
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
_RETRY_MADE = threading.Lock()
