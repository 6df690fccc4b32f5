"""The HTTP client siray builds: the retry layer over pacing, a --debug trace, bounded bodies
and the proxy rules, with certificate checks always on."""

from __future__ import annotations

import os
import ssl
import threading
import time

import httpx

from siray_cli.transport.bounds import (
    DEFAULT_TIMEOUT,
    JSON_BODY_LIMIT,
    REQUEST_BUDGET,
    USER_AGENT,
    BoundedTransport,
    Trace,
    timeout_of,
    timeouts,
)
from siray_cli.transport.pacing import CEILING, AdaptiveRate, PacingTransport
from siray_cli.transport.retries import (
    BoundedRetries,
    nothing_listens,
    read_retry,
    refused_for_long,
    refused_locally,
)


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
            if refused_locally(request, exc) and refused_for_long(request):
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
    pace: AdaptiveRate | None = None,
) -> httpx.Client:
    """An HTTP client with siray's stack: retries (`backoff`, default DEFAULT_BACKOFF), pacing,
    bounded JSON answers and the proxy rules. `pace` is the client's request rate (pacing.py; by
    default its own, at the default ceiling). `timeout` defaults to DEFAULT_TIMEOUT, or to
    `timeouts(read_timeout)` when a read timeout is given."""
    if timeout is None:
        timeout = DEFAULT_TIMEOUT if read_timeout is None else timeouts(read_timeout)

    budget = REQUEST_BUDGET * timeout_of(timeout)
    inner: httpx.BaseTransport = ProxyRouter()
    if expect_json:  # downloads bound their own bodies (by size and Content-Length)
        inner = BoundedTransport(inner, seconds=budget, limit=JSON_BODY_LIMIT)
    if trace is not None:
        inner = TraceTransport(inner, trace)
    inner = PacingTransport(inner, pace or AdaptiveRate(CEILING))
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
