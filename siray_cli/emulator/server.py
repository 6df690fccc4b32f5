"""The emulator's HTTP server: it builds the router, lets each emulated API register its routes
on it (the control endpoints, Siray, then Higgsfield, all on one origin), and answers every
request through it, injecting the faults asked for. Standard library only (http.server), so
faults such as dropped connections and truncated bodies can be produced byte for byte.

The pieces live below it (`http`: request, response, router; `state`: configuration and the
shared state) and no emulator module imports this one: there is no import circle to keep in
order (tests/test_architecture.py holds that).
"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from siray_cli.emulator import control, higgsfield, siray
from siray_cli.emulator.faults import Fault
from siray_cli.emulator.http import Request, Response, Router, error_response, json_response
from siray_cli.emulator.limits import key_of
from siray_cli.emulator.state import (
    EMULATOR_API_KEY,
    HIGGSFIELD_KEY,
    EmulatorConfig,
    EmulatorState,
)
from siray_cli.emulator.tasks import build_timeline

# the names the CLI, the tests and the benchmarks have always imported from here
__all__ = [
    "EMULATOR_API_KEY",
    "HIGGSFIELD_KEY",
    "Emulator",
    "EmulatorConfig",
    "build_timeline",
]


# the HTTP plumbing ---------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "siray-emulator"
    # headers and body are two writes: with Nagle on, the body waits for the client's delayed
    # ACK, 40 ms on every request of a kept-alive connection (real front ends set TCP_NODELAY)
    disable_nagle_algorithm = True
    state: EmulatorState  # set on the subclass the server builds
    router: Router  # likewise

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        with self.state.answering():
            self._answer(method)

    def _answer(self, method: str) -> None:
        started = time.perf_counter()
        path = urlsplit(self.path).path
        body = self._read_body()
        if not path.startswith("/_emulator"):
            self.state.count(
                method, self.router.path_template(path), self.headers.get("User-Agent", "")
            )
        fault = None if path.startswith("/_emulator") else self.state.faults.take(method, path)
        if fault is not None and fault.action == "drop":
            self._log(method, path, "dropped", started)
            self.close_connection = True
            return
        if fault is not None and fault.action == "delay":
            self.state.faults.hold(fault.delay)
        limited = self._limited(path) if fault is None else None
        if fault is not None and fault.action == "status":
            response = self._fault_response(fault)
        elif limited is not None:
            response = limited
        else:
            request = Request(
                "GET" if method == "HEAD" else method, path, self.path, body, self.headers
            )
            try:
                response = self.router.dispatch(request)
            except Exception as exc:  # the emulator must answer, whatever happened
                response = error_response(
                    500, f"emulator error: {type(exc).__name__}", "internal_error", "server_error"
                )
        if fault is not None and fault.action == "drop-after":
            self._log(method, path, f"{response.status}, dropped before sending", started)
            self.close_connection = True
            return
        self._send(response, fault)
        self._log(method, path, str(response.status), started)

    def _limited(self, path: str) -> Response | None:
        """The 429 of a request over the rate limit (limits.py), else None."""
        limit = self.state.rate_limit
        if limit is None or path.startswith("/_emulator"):
            return None
        authorization = self.headers.get("Authorization", "")
        key = key_of(authorization)
        wait = None if key is None else limit.take(key)
        if wait is None:
            return None
        message = f"rate limit exceeded: {limit.allowed} requests a second"
        if authorization.lower().startswith("key "):  # Higgsfield's errors are {"detail": ...}
            response = json_response(429, {"detail": message})
        else:
            response = error_response(429, message, "rate_limit_exceeded", "rate_limit_error")
        response.headers["Retry-After"] = str(wait)
        return response

    def _log(self, method: str, path: str, outcome: str, started: float) -> None:
        if self.state.config.log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            self.state.config.log(f"{method} {path} -> {outcome} ({elapsed:.0f} ms)")

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            return self.rfile.read(int(length))
        return b""

    def _send(self, response: Response, fault: Fault | None) -> None:
        body = response.body
        if fault is not None and fault.action == "malformed":
            response = Response(
                200, b'{"code": "success", "data": {"task_id": ', headers=response.headers
            )
            body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        action = fault.action if fault is not None else None
        if action == "truncate-eof":
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if action in ("truncate", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if action == "stall" and fault is not None:
                self.state.faults.hold(fault.delay)
            self.close_connection = True
            return
        self.wfile.write(body)

    def _fault_response(self, fault: Fault) -> Response:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        reason = (
            HTTPStatus(fault.status).phrase
            if fault.status in HTTPStatus._value2member_map_
            else "Error"
        )
        if fault.body == "json":
            response = error_response(
                fault.status, f"injected fault: {reason}", "injected_fault", "server_error"
            )
            response.headers.update(headers)
            return response
        if fault.body == "echo":  # a careless proxy that echoes the request's headers
            echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            return Response(
                fault.status, f"bad gateway, request was {echoed}\n".encode(), "text/plain", headers
            )
        if fault.body == "text":
            return Response(
                fault.status, f"{fault.status} {reason}\n".encode(), "text/plain", headers
            )
        page = (
            f"<html><head><title>{fault.status} {reason}</title></head><body><center><h1>"
            f"{fault.status} {reason}</h1></center><hr><center>nginx</center></body></html>"
        )
        return Response(fault.status, page.encode(), "text/html", headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # batch runs open many connections at once
    state: EmulatorState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-answer is normal (retries, Ctrl-C); never print a traceback
        import sys

        error = sys.exc_info()[1]
        if self.state.config.log is not None and not isinstance(error, ConnectionError):
            self.state.config.log(f"emulator error: {type(error).__name__}: {error}")


class Emulator:
    """The emulator on a background thread: `with Emulator(config) as emu: ... emu.url ...`."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        router = Router()
        control.register(router, self.state)
        siray.register(router, self.state)
        higgsfield.register(router, self.state)  # on the same origin, after Siray's routes
        handler = type("BoundHandler", (Handler,), {"state": self.state, "router": router})
        self._server = _Server((self.config.host, self.config.port), handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None
        self._warming: threading.Thread | None = None  # imports the schema checker (siray.warm)
        self.ca_file: str | None = None
        self._tls_dir: Any = None  # a TemporaryDirectory: the certificate and its private key
        if self.config.tls:
            import tempfile

            from siray_cli.emulator.tls import make_certificate, server_context

            self._tls_dir = tempfile.TemporaryDirectory(prefix="siray-emulator-")
            cert, key = make_certificate(Path(self._tls_dir.name))
            context = server_context(cert, key)
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.state.store.tls_context = context
            self.ca_file = str(cert)
        self.state.environment = self.environment()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://{self.config.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        environment = {
            "SIRAY_BASE_URL": self.url,
            "SIRAY_GATEWAY_URL": self.url,
            "SIRAY_API_KEY": self.config.api_key,
            "SIRAY_HIGGSFIELD_BASE_URL": self.url,
            "HF_KEY": self.config.higgsfield_key,
        }
        if self.ca_file is not None:
            environment["SSL_CERT_FILE"] = self.ca_file
        return environment

    def _warm(self) -> None:
        self._warming = threading.Thread(target=siray.warm, name="siray-emulator-warm", daemon=True)
        self._warming.start()

    def wait_warm(self, timeout: float | None = None) -> None:
        """Wait until what a first create needs is imported (a benchmark then starts its clock
        on a server as ready as a real one: the import would compete with the client for the
        CPU, and hold the emulator's first answers)."""
        if self._warming is not None:
            self._warming.join(timeout)

    def start(self) -> Emulator:
        self._warm()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="siray-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._warm()
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving and free everything. After serve_forever(), its caller stops it once it
        has returned (a signal's exception); only a loop on start()'s thread is asked to end:
        one that never began (the signal came first) would never answer."""
        try:
            if self._thread is not None:
                self._server.shutdown()
            self._server.server_close()
            self.state.wait_answered(timeout=2)  # the log line of a request just answered is kept
            self.state.store.stop()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._warming is not None:  # not left inside an import as the interpreter ends
                self._warming.join(timeout=10)
        finally:
            # now, not at interpreter exit: a process ended by a signal runs no finalizer, and
            # the private key would stay in /tmp
            if self._tls_dir is not None:
                self._tls_dir.cleanup()
                self._tls_dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
