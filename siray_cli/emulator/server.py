"""The emulator's HTTP server: a small router (method + path pattern -> handler) and what every
emulated API shares: fault injection, authentication helpers, logging, request counts, the task
store read against an advanceable clock, the object store, and the control endpoints under
`/_emulator/`. Each emulated API is a module that registers its routes on the router
(`siray.register`); they share one origin. Standard library only (http.server), so faults such as
dropped connections and truncated bodies can be produced byte for byte.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from siray_cli.emulator import catalogue
from siray_cli.emulator.clock import Clock
from siray_cli.emulator.faults import Fault, Faults
from siray_cli.emulator.storage import ObjectStore
from siray_cli.emulator.tasks import (
    DUPLICATE_WINDOW,
    FAIL_MARKER,
    HOLD_MARKER,
    Event,
    Task,
    build_timeline,
)

EMULATOR_API_KEY = "siray-emulator-key"
HIGGSFIELD_KEY = "hfkey-2f9c:s3cr3t-hf-emulator-5d1e"  # id:secret, sharing nothing
DEFAULT_PORT = 8787


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = EMULATOR_API_KEY
    higgsfield_key: str = HIGGSFIELD_KEY  # id:secret
    higgsfield_concurrency: int | None = None  # Higgsfield requests queued or running at once
    task_seconds: float = 3.0
    task_jitter: float = 0.15  # each task's length varies by up to this share
    create_shape: str = "nested"  # nested: data.task_id (API.md); flat: top-level task_id; id
    cancel_supported: bool = True
    seed: int | None = None
    log: Callable[[str], None] | None = None
    extra_models: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    sts_token_requests: int | None = None  # each upload token expires after this many S3 requests
    sts_mode: str = "ok"  # ok, bad-secret or no-token: credentials the store will refuse
    tls: bool = False  # serve https (the API and the S3 store) with a throwaway certificate
    clock: Clock = field(default_factory=Clock)  # what every task timeline is read against


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(document).encode(), headers=headers or {})


def error_response(
    status: int, message: str, code: str, kind: str = "invalid_request_error"
) -> Response:
    return json_response(status, {"error": {"message": message, "type": kind, "code": code}})


# routing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str  # as routed: HEAD is answered as GET
    path: str  # without the query string
    target: str  # the request line's target, query string included
    body: bytes
    headers: Message
    params: dict[str, str] = field(default_factory=dict)  # the route pattern's named groups


RouteHandler = Callable[[Request], Response]
Guard = Callable[[Request], Response | None]


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: RouteHandler


def not_found(request: Request) -> Response:
    return error_response(404, f"no route for {request.method} {request.path}", "not_found")


class Router:
    """Routes in registration order; the first whose method and full path match answers.

    A guard covers every path under a prefix, routed or not (an unknown path under `/v1/` without
    a key is a 401, as on the real service), and answers instead of the route when it objects.
    Path templates turn concrete paths into the names the request counts use."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._guards: list[tuple[str, Guard]] = []
        self._templates: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = []

    def add(self, methods: str | tuple[str, ...], pattern: str, handler: RouteHandler) -> None:
        methods = (methods,) if isinstance(methods, str) else methods
        self._routes.append(Route(methods, re.compile(pattern), handler))

    def guard(self, prefix: str, check: Guard) -> None:
        self._guards.append((prefix, check))

    def template(self, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> None:
        self._templates.append((re.compile(pattern), replacement))

    def path_template(self, path: str) -> str:
        for pattern, replacement in self._templates:
            path = pattern.sub(replacement, path)
        return path

    def dispatch(self, request: Request) -> Response:
        for prefix, check in self._guards:
            if request.path.startswith(prefix):
                denied = check(request)
                if denied is not None:
                    return denied
                break
        for route in self._routes:
            if request.method not in route.methods:
                continue
            match = route.pattern.fullmatch(request.path)
            if match is not None:
                return route.handler(replace(request, params=match.groupdict()))
        return not_found(request)


def check_auth(request: Request, scheme: str, api_key: str) -> Response | None:
    """None when the request carries `Authorization: <scheme> <api_key>`, else the 401."""
    header = request.headers.get("Authorization", "")
    given_scheme, _, key = header.partition(" ")
    if not header:
        return error_response(401, "Missing API key", "invalid_api_key")
    if given_scheme != scheme or not secrets.compare_digest(key.strip(), api_key):
        return error_response(401, "Invalid API key", "invalid_api_key")
    return None


# shared state --------------------------------------------------------------------------------
class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.tasks: dict[str, Task] = {}
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.faults = Faults(config.seed)
        self.models = {**catalogue.MODELS, **config.extra_models}
        self.store = ObjectStore(self.faults, config.sts_token_requests, config.log)
        self._random = random.Random(config.seed)
        self._answering = 0
        self._answered = threading.Condition()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Counts the requests being answered, so a stop can wait for their log lines."""
        with self._answered:
            self._answering += 1
        try:
            yield
        finally:
            with self._answered:
                self._answering -= 1
                self._answered.notify_all()

    def wait_answered(self, timeout: float) -> None:
        with self._answered:
            self._answered.wait_for(lambda: self._answering == 0, timeout=timeout)

    def count(self, method: str, template: str, user_agent: str) -> None:
        with self.lock:
            self.requests[f"{method} {template}"] += 1
            self.user_agents[user_agent] += 1

    def public_base(self, request: Request) -> str:
        """The origin the client reached, for URLs handed back to it."""
        host = request.headers.get("Host") or f"{self.config.host}:{self.config.port}"
        return f"{'https' if self.config.tls else 'http'}://{host}"

    def stats(self) -> dict[str, Any]:
        with self.lock:
            tasks = list(self.tasks.values())
            requests = dict(self.requests)
            user_agents = dict(self.user_agents)
        now = self.clock.monotonic()
        seen: dict[str, float] = {}
        duplicates = 0
        for task in sorted(tasks, key=lambda t: t.created):
            body = json.dumps([task.kind, task.body], sort_keys=True)
            if body in seen and task.created - seen[body] < DUPLICATE_WINDOW:
                duplicates += 1
            seen[body] = task.created
        return {
            "tasks_created": len(tasks),
            "duplicates": duplicates,
            "requests": requests,
            "user_agents": user_agents,
            "tasks": [
                {
                    "task_id": task.task_id,
                    "model": task.model,
                    "kind": task.kind,
                    "status": task.current(now)[0].status,
                    "created_at": task.created_wall,
                    "status_requests": task.status_requests,
                    "finishes_at": None
                    if task.finish_offset is None or task.cancelled_at
                    else task.created_wall + task.finish_offset,
                }
                for task in tasks
            ],
        }

    def new_task(
        self,
        kind: str,
        model: str,
        body: dict[str, Any],
        fail_reason: str,
        task_id: str | None = None,
    ) -> Task:
        with self.lock:
            task_id = task_id or f"{kind}_{secrets.token_hex(6)[:11]}"
            seed = self._random.random()
        prompt = str(body.get("prompt", ""))
        rng = random.Random(f"{task_id}{seed}")
        failed = FAIL_MARKER in prompt
        if failed and not fail_reason:
            fail_reason = "emulator: the prompt asked for a failure ([fail])"
        timeline = build_timeline(
            rng,
            self.config.task_seconds,
            hold=HOLD_MARKER in prompt,
            jitter=self.config.task_jitter,
            fail_early=bool(fail_reason) and not failed,
        )
        if failed:
            timeline[-1] = Event(timeline[-1].offset, "FAILURE", timeline[-2].progress)
        task = Task(
            task_id,
            kind,
            model,
            body,
            self.clock.monotonic(),
            self.clock.time(),
            timeline,
            fail_reason,
        )
        with self.lock:
            self.tasks[task_id] = task
        return task


# control endpoints ---------------------------------------------------------------------------
def register_control(router: Router, state: EmulatorState) -> None:
    """`/_emulator/...`: counts, faults, the object store and the clock, for tests and users."""

    def stats(request: Request) -> Response:
        return json_response(200, state.stats())

    def add_fault(request: Request) -> Response:
        try:
            spec = json.loads(request.body)
            fault = Fault(**spec) if isinstance(spec, dict) else Fault.parse(str(spec))
        except (ValueError, TypeError) as exc:
            return error_response(400, str(exc), "invalid_fault")
        state.faults.add(fault)
        return json_response(200, {"ok": True})

    def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return json_response(200, {"ok": True})

    def uploads(request: Request) -> Response:
        store = state.store
        return json_response(
            200,
            {"multipart_uploads": store.multipart_uploads(), "tokens_issued": store.tokens_issued},
        )

    def advance_clock(request: Request) -> Response:
        try:
            spec = json.loads(request.body or b"null")
            seconds = spec.get("advance") if isinstance(spec, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise ValueError('send {"advance": SECONDS}')
            offset = state.clock.advance(float(seconds))
        except ValueError as exc:
            return error_response(400, str(exc), "invalid_clock")
        return json_response(200, {"offset": offset})

    router.add("GET", "/_emulator/stats", stats)
    router.add("POST", "/_emulator/faults", add_fault)
    router.add("GET", "/_emulator/uploads", uploads)
    router.add("DELETE", "/_emulator/faults", clear_faults)
    router.add("POST", "/_emulator/clock", advance_clock)


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
            time.sleep(fault.delay)
        if fault is not None and fault.action == "status":
            response = self._fault_response(fault)
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
                time.sleep(fault.delay)
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
        from siray_cli.emulator import higgsfield, siray

        router = Router()
        register_control(router, self.state)
        siray.register(router, self.state)
        higgsfield.register(router, self.state)  # on the same origin, after Siray's routes
        handler = type("BoundHandler", (Handler,), {"state": self.state, "router": router})
        self._server = _Server((self.config.host, self.config.port), handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None
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

    def start(self) -> Emulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="siray-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        try:
            self._server.shutdown()
            self._server.server_close()
            self.state.wait_answered(timeout=2)  # the log line of a request just answered is kept
            self.state.store.stop()
            if self._thread is not None:
                self._thread.join(timeout=5)
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
