"""The Higgsfield generation API, as its contract's "What the emulator must do" describes, on the
emulator's router and origin: submit `POST /{application}` (flat body, `Key id:secret`, 422
detail lists, Idempotency-Key), `GET /requests/{id}/status` with the six states and absolute
URLs, cancel (202 while queued, 400 after), presigned uploads (`POST /files/generate-upload-url`
then a credential-free `PUT`), `POST /estimate/{application}`, real PNG and MP4 outputs, and
webhook deliveries (loopback `http://` URLs included).

Failure modes on demand, as Siray's: a prompt containing `[fail]` ends `failed`, `[nsfw]` ends
`nsfw`, `[hold]` stays `queued` until canceled; `[busy]` is refused with the concurrency `400`,
`[credits]` with `403`, `[blocked]` with `423`. The shared `--fault` rules apply too.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from siray_cli.emulator import media
from siray_cli.emulator.http import Request, Response, Router, json_response
from siray_cli.emulator.state import EmulatorState
from siray_cli.emulator.tasks import Task

# The application ids the contract names: kind, required arguments, and their JSON types.
APPLICATIONS: dict[str, tuple[str, list[str]]] = {
    "bytedance/seedream/v4/text-to-image": ("image", ["prompt"]),
    "bytedance/seedream/v4/edit": ("image", ["prompt"]),
    "higgsfield-ai/soul/standard": ("image", ["prompt"]),
    "higgsfield-ai/soul/v2/standard": ("image", ["prompt"]),
    "reve/text-to-image": ("image", []),
    "flux-pro/kontext/max/text-to-image": ("image", ["prompt"]),
    "kling-video/v2.1/pro/image-to-video": ("video", ["prompt", "image_url"]),
    "kling-video/v2.5-turbo/pro/image-to-video": ("video", ["prompt", "image_url"]),
    "kling-video/v3.0-turbo/image-to-video": ("video", ["prompt", "image_url"]),
    "bytedance/seedance/v1/pro/image-to-video": ("video", []),
    "higgsfield-ai/dop/standard": ("video", []),
    "higgsfield-ai/dop/preview": ("video", []),
}
TYPES = {
    "prompt": str,
    "image_url": str,
    "aspect_ratio": str,
    "resolution": str,
    "camera_fixed": bool,
    "seed": int,
    "duration": int,
    "image_urls": list,
}
UPLOAD_TYPES = {
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/webp",
    "image/gif",
    "audio/wav",
    "audio/x-wav",
    "video/mp4",
}
WORDS = {  # the task model's events in Higgsfield's words
    "NOT_START": "queued",
    "SUBMITTED": "queued",
    "QUEUED": "queued",
    "IN_PROGRESS": "in_progress",
    "SUCCESS": "completed",
    "FAILURE": "failed",
    "CANCELLED": "canceled",
}
NSFW_MARKER = "[nsfw]"
EXPIRES_AFTER = (3600, 7 * 24 * 3600)  # seconds: an hour up to the account's retention, 7 days
REFUSALS = {
    "[busy]": (400, "Maximum number of concurrent requests (4) has been reached"),
    "[credits]": (403, "Not enough credits"),
    "[blocked]": (423, "The model is temporarily blocked"),
}
_APP = r"(?P<app>[a-z0-9][\w.\-]*(?:/[\w.\-]+)+)"
_ID = r"(?P<id>[0-9a-fA-F-]{36})"


def register(router: Router, state: EmulatorState) -> None:
    HiggsfieldApi(state).register(router)


def detail(status: int, text: str | list[dict[str, Any]]) -> Response:
    return json_response(status, {"detail": text}, {"X-Correlation-ID": uuid.uuid4().hex})


class HiggsfieldApi:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.idempotent: dict[str, tuple[str, str]] = {}  # key -> (fingerprint, request id)
        self.uploads: dict[str, tuple[str, bytes | None]] = {}  # token -> (content type, bytes)
        self.webhooks: dict[str, str] = {}  # request id -> URL, until delivered
        self._lock = threading.Lock()
        self._deliverer: threading.Thread | None = None

    def register(self, router: Router) -> None:
        router.add("POST", "/files/generate-upload-url", self.authed(self.upload_slot))
        router.add("PUT", r"/hf-uploads/(?P<token>\w+)", self.upload_put)
        router.add("GET", r"/hf-files/(?P<token>\w+)", self.upload_get)
        router.add("GET", rf"/requests/{_ID}/status", self.authed(self.status))
        router.add("POST", rf"/requests/{_ID}/cancel", self.authed(self.cancel))
        router.add("GET", rf"/hf-outputs/{_ID}\.(?P<ext>png|mp4)", self.output)
        router.add("POST", rf"/estimate/{_APP}", self.authed(self.estimate))
        router.add("POST", f"/{_APP}", self.authed(self.submit))
        router.template(rf"^/requests/{_ID}/", "/requests/{request_id}/")
        router.template(rf"^/hf-outputs/{_ID}", "/hf-outputs/{request_id}")

    # auth ------------------------------------------------------------------------------------
    def authed(self, handler: Any) -> Any:
        def check(request: Request) -> Response:
            header = request.headers.get("Authorization", "")
            scheme, _, credential = header.partition(" ")
            expected = self.state.config.higgsfield_key
            if scheme != "Key" or not secrets.compare_digest(credential.strip(), expected):
                return detail(401, "Invalid credentials")
            return handler(request)  # type: ignore[no-any-return]

        return check

    # submit ------------------------------------------------------------------------------------
    def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            return detail(422, [_problem("body", "JSON decode error", "json_invalid")])
        if not isinstance(body, dict):
            return detail(422, [_problem("body", "Input should be an object", "dict_type")])
        app = request.params["app"]
        if app not in APPLICATIONS:
            return detail(404, f"Model {app} not found")
        problems = [
            _problem(name, "Field required", "missing")
            for name in APPLICATIONS[app][1]
            if name not in body
        ]
        for name, value in body.items():
            wanted = TYPES.get(name)
            if wanted is not None and not _is(value, wanted):
                problems.append(
                    _problem(name, f"Input should be a valid {wanted.__name__}", "type")
                )
        if problems:
            return detail(422, problems)
        return body

    def submit(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        prompt = str(body.get("prompt", ""))
        for marker, (status, text) in REFUSALS.items():
            if marker in prompt:
                return detail(status, text)
        app = request.params["app"]
        webhook = parse_qs(urlsplit(request.target).query).get("hf_webhook", [None])[0]
        key = request.headers.get("Idempotency-Key")
        expires = request.headers.get("Hf-Expires-After")
        if expires is not None and not (
            expires.isdigit() and EXPIRES_AFTER[0] <= int(expires) <= EXPIRES_AFTER[1]
        ):
            return detail(422, [_problem("Hf-Expires-After", "Out of range", "value_error")])
        # what a key stands for: the endpoint, the body (field order aside), the webhook and
        # the retention asked for
        fingerprint = json.dumps([app, body, webhook, expires], sort_keys=True)
        with self._lock:
            if key is not None:
                if not 1 <= len(key) <= 255 or not all("!" <= c <= "~" for c in key):
                    return detail(422, [_problem("Idempotency-Key", "Invalid key", "value_error")])
                known = self.idempotent.get(key)
                if known is not None:
                    if known[0] != fingerprint:
                        return detail(422, "Idempotency-Key reused with other parameters")
                    task = self.state.tasks[known[1]]
                    return json_response(200, self._document(request, task))
            limit = self.state.config.higgsfield_concurrency
            if limit is not None and self._active() >= limit:
                return detail(
                    400, f"Maximum number of concurrent requests ({limit}) has been reached"
                )
            kind = APPLICATIONS[app][0]
            nsfw = NSFW_MARKER in prompt
            task = self.state.new_task(
                kind,
                app,
                body,
                "emulator: rejected by moderation ([nsfw])" if nsfw else "",
                task_id=str(uuid.uuid4()),
            )
            if key is not None:
                self.idempotent[key] = (fingerprint, task.task_id)
            if webhook:
                self.webhooks[task.task_id] = webhook
                self._start_deliveries(request)
        return json_response(200, self._document(request, task))

    def _active(self) -> int:
        tasks = [t for t in self.state.tasks.values() if t.model in APPLICATIONS]
        return sum(1 for t in tasks if self._word(t) in ("queued", "in_progress"))

    def estimate(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        kind = APPLICATIONS[request.params["app"]][0]
        credits = 1.5 if kind == "image" else 12.0
        return json_response(200, {"credits": f"{credits:.3f}", "usd": f"{credits * 0.0625:.3f}"})

    # status, cancel ------------------------------------------------------------------------------
    def _find(self, request: Request) -> Task | None:
        task = self.state.tasks.get(request.params["id"])
        return task if task is not None and task.model in APPLICATIONS else None

    def _word(self, task: Task) -> str:
        event = task.current(self.state.clock.monotonic())[0]
        word = WORDS.get(event.status, "queued")
        if word == "failed" and NSFW_MARKER in str(task.body.get("prompt", "")):
            return "nsfw"
        return word

    def _document(self, request: Request, task: Task) -> dict[str, Any]:
        base = self.state.public_base(request)
        word = self._word(task)
        document: dict[str, Any] = {
            "status": word,
            "request_id": task.task_id,
            "status_url": f"{base}/requests/{task.task_id}/status",
            "cancel_url": f"{base}/requests/{task.task_id}/cancel",
        }
        if word == "completed":
            if task.kind == "image":
                document["images"] = [{"url": f"{base}/hf-outputs/{task.task_id}.png"}]
            else:
                document["video"] = {"url": f"{base}/hf-outputs/{task.task_id}.mp4"}
        if word == "failed":
            document["error"] = task.fail_reason or "Generation failed"
        return document

    def status(self, request: Request) -> Response:
        task = self._find(request)
        if task is None:
            return detail(404, "Request not found")
        with self.state.lock:
            task.status_requests += 1
        return json_response(200, self._document(request, task))

    def cancel(self, request: Request) -> Response:
        task = self._find(request)
        if task is None:
            return detail(404, "Request not found")
        with self.state.lock:
            if self._word(task) != "queued":
                return detail(400, "Request has already started and cannot be canceled")
            task.cancelled_at = self.state.clock.monotonic()
        return Response(202, b"", "application/json")

    def output(self, request: Request) -> Response:
        task = self._find(request)
        if task is None or self._word(task) != "completed":
            return Response(404, b"not found\n", "text/plain")
        if task.kind == "video" and request.params["ext"] == "mp4":
            return Response(200, media.sample_video(), "video/mp4")
        if task.kind == "image" and request.params["ext"] == "png":
            width, height = 1024, 768
            return Response(
                200,
                media.render_png(str(task.body.get("prompt", "")), 0, width, height),
                "image/png",
            )
        return Response(404, b"not found\n", "text/plain")

    # uploads -------------------------------------------------------------------------------------
    def upload_slot(self, request: Request) -> Response:
        try:
            content_type = json.loads(request.body or b"{}").get("content_type")
        except (ValueError, AttributeError):
            content_type = None
        if content_type not in UPLOAD_TYPES:
            return detail(422, [_problem("content_type", "Unsupported content type", "enum")])
        token = secrets.token_hex(12)
        with self._lock:
            self.uploads[token] = (content_type, None)
        base = self.state.public_base(request)
        return json_response(
            200,
            {
                "public_url": f"{base}/hf-files/{token}",
                "upload_url": f"{base}/hf-uploads/{token}?X-Signature={secrets.token_hex(8)}",
                "content_type": content_type,
                "upload_headers": {"Content-Type": content_type},
            },
        )

    def upload_put(self, request: Request) -> Response:
        token = request.params["token"]
        with self._lock:
            slot = self.uploads.get(token)
            if slot is None:
                return Response(403, b"<Error>SignatureDoesNotMatch</Error>", "application/xml")
            if request.headers.get("Authorization"):  # a presigned URL takes no credentials
                return Response(400, b"<Error>InvalidArgument</Error>", "application/xml")
            if request.headers.get("Content-Type") != slot[0]:
                return Response(403, b"<Error>SignatureDoesNotMatch</Error>", "application/xml")
            self.uploads[token] = (slot[0], request.body)
        return Response(200, b"", "application/xml")

    def upload_get(self, request: Request) -> Response:
        slot = self.uploads.get(request.params["token"])
        if slot is None or slot[1] is None:
            return Response(404, b"not found\n", "text/plain")
        return Response(200, slot[1], slot[0])

    # webhooks ------------------------------------------------------------------------------------
    def _start_deliveries(self, request: Request) -> None:
        if self._deliverer is None:
            base = self.state.public_base(request)
            self._deliverer = threading.Thread(target=self._deliver, args=(base,), daemon=True)
            self._deliverer.start()

    def _deliver(self, base: str) -> None:
        """POST each request's final object to its webhook once it ends (completed, failed,
        nsfw; canceled too), retried a few times until a 2xx."""
        import httpx

        tls = httpx.create_ssl_context()  # loaded once, not for every delivery (~25 ms each)
        attempts: dict[str, int] = {}
        while True:
            time.sleep(0.05)
            with self._lock:
                waiting = dict(self.webhooks)
            for request_id, url in waiting.items():
                task = self.state.tasks[request_id]
                if self._word(task) in ("queued", "in_progress"):
                    continue
                fake = Request("GET", "/", "/", b"", _host(base))
                try:
                    answer = httpx.post(url, json=self._document(fake, task), timeout=5, verify=tls)
                    delivered = answer.is_success
                except httpx.HTTPError:
                    delivered = False
                attempts[request_id] = attempts.get(request_id, 0) + 1
                if delivered or attempts[request_id] >= 5:
                    with self._lock:
                        self.webhooks.pop(request_id, None)


def _host(base: str) -> Any:
    from email.message import Message

    headers = Message()
    headers["Host"] = urlsplit(base).netloc
    return headers


def _problem(field: str, message: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", field], "msg": message}


def _is(value: object, wanted: type) -> bool:
    if wanted is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, wanted)
