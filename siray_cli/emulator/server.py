"""An HTTP server that follows API.md: create, query and cancel image and video tasks, a model
catalogue, and output files it serves itself. Standard library only (http.server), so faults such
as dropped connections and truncated bodies can be produced byte for byte.

Progress model: a task of nominal length T (`task_seconds`, varied ±15% per task) passes
NOT_START -> SUBMITTED -> QUEUED (after 6-12% of T) -> IN_PROGRESS (after 15-30% of T), then
reports progress in 3 to 8 uneven, coarse steps (multiples of 5, never 100 before the end) at
random moments, so neither the pace nor the finish can be read off a linear clock; SUCCESS (or
FAILURE) comes at T.

Emulator-only conventions, documented in the README:
- a prompt containing `[fail]` ends in FAILURE with a fail_reason;
- a prompt containing `[hold]` stays QUEUED until cancelled (for cancel and timeout tests);
- an image input that is a malformed data URL, or an emulator URL that does not exist, makes the
  task fail in preprocessing, as the real service does for an unreadable input.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from siray_cli.emulator import catalogue, media
from siray_cli.emulator.faults import Fault, Faults
from siray_cli.emulator.storage import BUCKET, UPLOAD_PATH, ObjectStore, StorageUnavailable

EMULATOR_API_KEY = "siray-emulator-key"
DEFAULT_PORT = 8787
DUPLICATE_WINDOW = 600.0  # the same request twice within this many seconds counts as a duplicate
FAIL_MARKER = "[fail]"
HOLD_MARKER = "[hold]"

IMAGE_CREATE = "/v1/images/generations/async"
VIDEO_CREATE = "/v1/video/generations"
_STATUS = re.compile(
    r"^(?P<prefix>/v1/images/generations/async|/v1/video/generations)/(?P<id>[^/]+)(?P<cancel>/cancel)?$"
)
_REDIRECT = re.compile(r"^/redirect/(?P<id>[^/]+)/(?P<n>\d+)$")
_FILE = re.compile(r"^/files/(?P<id>[^/]+)/(?P<n>\d+)\.(?P<ext>png|mp4)$")


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = EMULATOR_API_KEY
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


@dataclass
class Event:
    offset: float
    status: str
    progress: int | None


@dataclass
class Task:
    task_id: str
    kind: str
    model: str
    body: dict[str, Any]
    created: float  # monotonic
    created_wall: float
    timeline: list[Event]
    fail_reason: str = ""
    cancelled_at: float | None = None
    status_requests: int = 0

    def current(self, now: float) -> tuple[Event, float | None, float | None]:
        """The event in force now, and the start and finish offsets reached so far."""
        elapsed = now - self.created
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return (
                Event(self.cancelled_at - self.created, "CANCELLED", None),
                None,
                (self.cancelled_at - self.created),
            )
        event = self.timeline[0]
        start = finish = None
        for candidate in self.timeline:
            if candidate.offset > elapsed:
                break
            event = candidate
            if candidate.status == "IN_PROGRESS" and start is None:
                start = candidate.offset
            if candidate.status in ("SUCCESS", "FAILURE"):
                finish = candidate.offset
        return event, start, finish

    @property
    def finish_offset(self) -> float | None:
        last = self.timeline[-1]
        return last.offset if last.status in ("SUCCESS", "FAILURE") else None


def build_timeline(
    rng: random.Random, seconds: float, *, hold: bool, fail_early: bool, jitter: float = 0.15
) -> list[Event]:
    total = max(seconds, 0.05) * rng.uniform(1 - jitter, 1 + jitter)
    queued = total * rng.uniform(0.06, 0.12)
    start = total * rng.uniform(0.15, 0.30)
    events = [
        Event(0.0, "NOT_START", None),
        Event(total * 0.03, "SUBMITTED", None),
        Event(queued, "QUEUED", 0),
    ]
    if hold:
        return events
    if fail_early:
        return [*events, Event(start, "FAILURE", 0)]
    events.append(Event(start, "IN_PROGRESS", 0))
    steps = rng.randint(3, 8)
    moments = sorted(rng.uniform(start, total) for _ in range(steps))
    weights = [rng.uniform(0.2, 2.0) for _ in range(steps)]
    done = 0.0
    last = 0
    for moment, weight in zip(moments, weights, strict=True):
        done += weight
        progress = min(95, int(done / sum(weights) * 95 / 5) * 5)
        if progress > last:
            events.append(Event(moment, "IN_PROGRESS", progress))
            last = progress
    events.append(Event(total, "SUCCESS", 100))
    return events


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
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

    def count(self, method: str, path: str, user_agent: str) -> None:
        template = _STATUS.sub(lambda m: m["prefix"] + "/{task_id}" + (m["cancel"] or ""), path)
        template = re.sub(r"^/(redirect|files)/[^/]+/.*$", r"/\1/{task_id}/{n}", template)
        with self.lock:
            self.requests[f"{method} {template}"] += 1
            self.user_agents[user_agent] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            tasks = list(self.tasks.values())
            requests = dict(self.requests)
            user_agents = dict(self.user_agents)
        now = time.monotonic()
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

    def new_task(self, kind: str, model: str, body: dict[str, Any], fail_reason: str) -> Task:
        with self.lock:
            task_id = f"{kind}_{secrets.token_hex(6)[:11]}"
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
            task_id, kind, model, body, time.monotonic(), time.time(), timeline, fail_reason
        )
        with self.lock:
            self.tasks[task_id] = task
        return task


def _task_seed(body: dict[str, Any]) -> int:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "siray-emulator"
    state: EmulatorState  # set on the subclass the server builds

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # dispatch ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

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
            self.state.count(method, path, self.headers.get("User-Agent", ""))
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
            try:
                response = self._route("GET" if method == "HEAD" else method, path, body)
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

    # routes --------------------------------------------------------------------------------
    def _route(self, method: str, path: str, body: bytes) -> Response:
        if path.startswith("/_emulator/"):
            return self._control(method, path, body)
        if path.startswith("/v1/"):
            denied = self._check_auth("Bearer")
            if denied is not None:
                return denied
            if method == "POST" and path in (IMAGE_CREATE, VIDEO_CREATE):
                return self._create("image" if path == IMAGE_CREATE else "video", body)
            match = _STATUS.match(path)
            if match is not None:
                kind = "image" if "images" in match["prefix"] else "video"
                task_id = unquote(match["id"])
                if match["cancel"]:
                    if method != "POST":
                        return error_response(405, "method not allowed", "method_not_allowed")
                    return self._cancel(kind, task_id)
                if method == "GET":
                    return self._status(kind, task_id)
            return error_response(404, f"no route for {method} {path}", "not_found")
        if path.startswith("/api/model-verse/"):
            denied = self._check_auth("API-KEY")
            if denied is not None:
                return denied
            if method == "GET" and path == "/api/model-verse/models":
                return json_response(200, catalogue.catalogue_document(self.state.models))
            if method == "POST" and path == "/api/model-verse/sts-token":
                return self._sts_token()
            return error_response(404, f"no route for {method} {path}", "not_found")
        if method == "GET":
            redirect = _REDIRECT.match(path)
            if redirect is not None:
                return self._redirect(redirect["id"], int(redirect["n"]))
            file = _FILE.match(path)
            if file is not None:
                return self._file(file["id"], int(file["n"]), file["ext"])
            if path.startswith("/uploads/"):
                found = self.state.store.get_object(unquote(path.removeprefix("/uploads/")))
                if found is None:
                    return Response(404, b"not found\n", "text/plain")
                return Response(200, found[0], found[1])
            if path == "/":
                return json_response(200, {"service": "siray-emulator", "contract": "API.md"})
        return error_response(404, f"no route for {method} {path}", "not_found")

    def _check_auth(self, scheme: str) -> Response | None:
        header = self.headers.get("Authorization", "")
        given_scheme, _, key = header.partition(" ")
        if not header:
            return error_response(401, "Missing API key", "invalid_api_key")
        if given_scheme != scheme or not secrets.compare_digest(
            key.strip(), self.state.config.api_key
        ):
            return error_response(401, "Invalid API key", "invalid_api_key")
        return None

    def _create(self, kind: str, raw: bytes) -> Response:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return error_response(400, "the request body is not valid JSON", "invalid_json")
        if not isinstance(body, dict):
            return error_response(400, "the request body must be a JSON object", "invalid_json")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error_response(400, "model is required", "invalid_parameter")
        if model not in self.state.models:
            return error_response(400, f"model {model} does not exist", "model_not_found")
        tag, schema = self.state.models[model]
        wanted = "video" if tag in catalogue.VIDEO_TAGS else "image"
        if wanted != kind:
            return error_response(
                400,
                f"{model} is a {wanted} model; send it to the {wanted} endpoint",
                "invalid_model_kind",
            )
        for name in schema.get("required", []):
            default = schema["properties"].get(name, {}).get("default")
            if name not in body and default is not None:
                body[name] = default
        problem = _schema_problem(schema, body)
        if problem is not None:
            return error_response(400, problem, "invalid_parameter")
        task = self.state.new_task(kind, model, body, self._input_problem(body))
        shape = self.state.config.create_shape
        if shape == "flat":
            return json_response(200, {"code": "success", "message": "", "task_id": task.task_id})
        if shape == "id":
            return json_response(200, {"id": task.task_id})
        return json_response(
            200, {"code": "success", "message": "", "data": {"task_id": task.task_id}}
        )

    def _input_problem(self, body: dict[str, Any]) -> str:
        values: list[tuple[str, Any]] = []
        for key, value in body.items():
            if any(word in key for word in catalogue.IMAGE_FIELDS):
                values.extend((key, v) for v in (value if isinstance(value, list) else [value]))
        for key, value in values:
            if not isinstance(value, str):
                return f"could not read input {key}: not a string"
            if value.startswith("data:"):
                header, sep, payload = value.partition(",")
                try:
                    decoded = (
                        base64.b64decode(payload, validate=True)
                        if sep and ";base64" in header
                        else b""
                    )
                except (binascii.Error, ValueError):
                    decoded = b""
                if not decoded:
                    return f"could not read input {key}: malformed data URL"
            elif self._own_url(value) and not self._own_file_exists(value):
                return f"could not read input {key}: {value} does not exist"
        return ""

    def _own_url(self, url: str) -> bool:
        host = self.headers.get("Host", "")
        return bool(host) and urlsplit(url).netloc == host

    def _own_file_exists(self, url: str) -> bool:
        path = urlsplit(url).path
        if path.startswith("/uploads/"):
            key = unquote(path.removeprefix("/uploads/"))
            return self.state.store.get_object(key) is not None
        match = _FILE.match(path) or _REDIRECT.match(path)
        return match is not None and match["id"] in self.state.tasks

    def _find(self, kind: str, task_id: str) -> Task | None:
        task = self.state.tasks.get(task_id)
        return task if task is not None and task.kind == kind else None

    def _status(self, kind: str, task_id: str) -> Response:
        task = self._find(kind, task_id)
        if task is None:
            return error_response(404, f"task {task_id} not found", "task_not_found")
        with self.state.lock:
            task.status_requests += 1
        return json_response(200, {"code": "success", "message": "", "data": self._task_data(task)})

    def _task_data(self, task: Task) -> dict[str, Any]:
        event, start, finish = task.current(time.monotonic())
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "action": "imageGenerate" if task.kind == "image" else "videoGenerate",
            "status": event.status,
            "outputs": [],
            "submit_time": int(task.created_wall),
            "start_time": int(task.created_wall + start) if start is not None else 0,
            "finish_time": int(task.created_wall + finish) if finish is not None else 0,
            "fail_reason": "",
        }
        if event.progress is not None:
            data["progress"] = f"{event.progress}%"
        if event.status == "SUCCESS":
            data["outputs"] = [f"{self._public_base()}/redirect/{task.task_id}/1"]
        if event.status == "FAILURE":
            data["fail_reason"] = task.fail_reason
        return data

    def _public_base(self) -> str:
        host = self.headers.get("Host") or f"{self.state.config.host}:{self.state.config.port}"
        return f"{'https' if self.state.config.tls else 'http'}://{host}"

    def _sts_token(self) -> Response:
        try:
            credentials = self.state.store.issue_token()
        except StorageUnavailable as exc:
            return error_response(501, str(exc), "uploads_unavailable", "server_error")
        mode = self.state.config.sts_mode
        if mode == "bad-secret":
            credentials["access_key_secret"] = "wrong" + credentials["access_key_secret"][5:]
        elif mode == "no-token":
            credentials["security_token"] = ""
        data = {
            "credentials": credentials,
            "bucket_name": BUCKET,
            "upload_path": UPLOAD_PATH,
            "upload_endpoint": self.state.store.endpoint,
            "access_endpoint": f"{self._public_base()}/uploads",
        }
        return json_response(200, {"data": data})

    def _cancel(self, kind: str, task_id: str) -> Response:
        if not self.state.config.cancel_supported:
            return error_response(404, f"no route for POST {self.path}", "not_found")
        task = self._find(kind, task_id)
        if task is None:
            return error_response(404, f"task {task_id} not found", "task_not_found")
        with self.state.lock:
            event, _, _ = task.current(time.monotonic())
            if event.status in ("NOT_START", "SUBMITTED", "QUEUED"):
                task.cancelled_at = time.monotonic()
            elif event.status != "CANCELLED":
                return error_response(
                    400,
                    f"task {task_id} is {event.status} and can no longer be cancelled",
                    "task_not_cancellable",
                )
        return json_response(200, {"code": "success", "message": "", "data": self._task_data(task)})

    def _redirect(self, task_id: str, index: int) -> Response:
        task = self.state.tasks.get(task_id)
        if task is None or index != 1 or task.current(time.monotonic())[0].status != "SUCCESS":
            return Response(404, b"not found\n", "text/plain")
        extension = "png" if task.kind == "image" else "mp4"
        return Response(
            302, b"", "text/plain", {"Location": f"/files/{task_id}/{index}.{extension}"}
        )

    def _file(self, task_id: str, index: int, extension: str) -> Response:
        task = self.state.tasks.get(task_id)
        if task is None or index != 1 or task.current(time.monotonic())[0].status != "SUCCESS":
            return Response(404, b"not found\n", "text/plain")
        if task.kind == "video" and extension == "mp4":
            return Response(200, media.sample_video(), "video/mp4")
        if task.kind == "image" and extension == "png":
            width, height = media.image_size(task.body)
            png = media.render_png(
                str(task.body.get("prompt", "")), _task_seed(task.body), width, height
            )
            return Response(200, png, "image/png")
        return Response(404, b"not found\n", "text/plain")

    def _control(self, method: str, path: str, raw: bytes) -> Response:
        if path == "/_emulator/stats" and method == "GET":
            return json_response(200, self.state.stats())
        if path == "/_emulator/faults" and method == "POST":
            try:
                spec = json.loads(raw)
                fault = Fault(**spec) if isinstance(spec, dict) else Fault.parse(str(spec))
            except (ValueError, TypeError) as exc:
                return error_response(400, str(exc), "invalid_fault")
            self.state.faults.add(fault)
            return json_response(200, {"ok": True})
        if path == "/_emulator/uploads" and method == "GET":
            store = self.state.store
            return json_response(
                200,
                {
                    "multipart_uploads": store.multipart_uploads(),
                    "tokens_issued": store.tokens_issued,
                },
            )
        if path == "/_emulator/faults" and method == "DELETE":
            self.state.faults.clear()
            return json_response(200, {"ok": True})
        return error_response(404, f"no route for {method} {path}", "not_found")


def _schema_problem(schema: dict[str, Any], body: dict[str, Any]) -> str | None:
    """The first way the body breaks the model's schema, in the server's words, or None."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.path) or "body"
    return f"invalid {where}: {error.message}"


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
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self._server = _Server((self.config.host, self.config.port), handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None
        self.ca_file: str | None = None
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
        self._server.shutdown()
        self._server.server_close()
        self.state.wait_answered(timeout=2)  # the log line of a request just answered is kept
        self.state.store.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
