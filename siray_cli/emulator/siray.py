"""The Siray API as API.md describes it, on the emulator's router: create, query and cancel for
image and video tasks (Bearer auth), the gateway's model catalogue and upload tokens (`API-KEY`
auth), and the output files it serves itself behind a redirect, plus uploaded objects at
`/uploads/KEY`.

An image input that is a malformed data URL, or an emulator URL that does not exist, makes the
task fail in preprocessing, as the real service does for an unreadable input.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from siray_cli.emulator import catalogue, media
from siray_cli.emulator.http import (
    Request,
    Response,
    Router,
    check_auth,
    error_response,
    json_response,
)
from siray_cli.emulator.state import EmulatorState
from siray_cli.emulator.storage import BUCKET, UPLOAD_PATH, StorageUnavailable
from siray_cli.emulator.tasks import Task

IMAGE_CREATE = "/v1/images/generations/async"
VIDEO_CREATE = "/v1/video/generations"
_KINDS = "(?P<prefix>/v1/images/generations/async|/v1/video/generations)"
_STATUS = re.compile(rf"^{_KINDS}/(?P<id>[^/]+)(?P<cancel>/cancel)?$")
_REDIRECT = re.compile(r"^/redirect/(?P<id>[^/]+)/(?P<n>\d+)$")
_FILE = re.compile(r"^/files/(?P<id>[^/]+)/(?P<n>\d+)\.(?P<ext>png|mp4)$")


def register(router: Router, state: EmulatorState) -> None:
    SirayApi(state).register(router)


def _kind(request: Request) -> str:
    return "image" if "images" in request.params["prefix"] else "video"


def _task_seed(body: dict[str, Any]) -> int:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def warm() -> None:
    """Import the schema checker now, not on the first create: that import (about 0.1 s) would
    hold every create that arrives with it, as a real server's would not."""
    import jsonschema  # noqa: F401


def _schema_problem(validator: Any, body: dict[str, Any]) -> str | None:
    """The first way the body breaks the model's schema (its compiled `validator`), in the
    server's words, or None."""
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.path) or "body"
    return f"invalid {where}: {error.message}"


class SirayApi:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._validators: dict[str, Any] = {}  # model -> its schema, compiled on first use

    def _validator(self, model: str, schema: dict[str, Any]) -> Any:
        """The model's schema compiled, once (an emulator's catalogue never changes)."""
        validator = self._validators.get(model)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = self._validators[model] = Draft202012Validator(schema)
        return validator

    def register(self, router: Router) -> None:
        config = self.state.config
        router.guard("/v1/", lambda request: check_auth(request, "Bearer", config.api_key))
        router.guard(
            "/api/model-verse/", lambda request: check_auth(request, "API-KEY", config.api_key)
        )
        router.add("POST", IMAGE_CREATE, lambda request: self.create("image", request))
        router.add("POST", VIDEO_CREATE, lambda request: self.create("video", request))
        router.add("GET", rf"{_KINDS}/(?P<id>[^/]+)", self.status)
        router.add("POST", rf"{_KINDS}/(?P<id>[^/]+)/cancel", self.cancel)
        router.add(("GET", "DELETE"), rf"{_KINDS}/(?P<id>[^/]+)/cancel", _method_not_allowed)
        router.add("GET", "/api/model-verse/models", self.models)
        router.add("POST", "/api/model-verse/sts-token", self.sts_token)
        router.add("GET", _REDIRECT.pattern, self.redirect)
        router.add("GET", _FILE.pattern, self.file)
        router.add("GET", "/uploads/(?P<key>(?s:.*))", self.upload)
        router.add("GET", "/", self.root)
        router.template(_STATUS.pattern, lambda m: m["prefix"] + "/{task_id}" + (m["cancel"] or ""))
        router.template(r"^/(redirect|files)/[^/]+/.*$", r"/\1/{task_id}/{n}")

    # the API host ------------------------------------------------------------------------
    def create(self, kind: str, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null")
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
                f"{model} is {'an' if wanted[:1] in 'aeiou' else 'a'} {wanted} model; "
                f"send it to the {wanted} endpoint",
                "invalid_model_kind",
            )
        for name in schema.get("required", []):
            default = schema["properties"].get(name, {}).get("default")
            if name not in body and default is not None:
                body[name] = default
        problem = _schema_problem(self._validator(model, schema), body)
        if problem is not None:
            return error_response(400, problem, "invalid_parameter")
        task = self.state.new_task(kind, model, body, self._input_problem(request, body))
        shape = self.state.config.create_shape
        if shape == "flat":
            return json_response(200, {"code": "success", "message": "", "task_id": task.task_id})
        if shape == "id":
            return json_response(200, {"id": task.task_id})
        return json_response(
            200, {"code": "success", "message": "", "data": {"task_id": task.task_id}}
        )

    def _input_problem(self, request: Request, body: dict[str, Any]) -> str:
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
            elif _own_url(request, value) and not self._own_file_exists(value):
                return f"could not read input {key}: {value} does not exist"
        return ""

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

    def status(self, request: Request) -> Response:
        task_id = unquote(request.params["id"])
        task = self._find(_kind(request), task_id)
        if task is None:
            return error_response(404, f"task {task_id} not found", "task_not_found")
        with self.state.lock:
            task.status_requests += 1
        return json_response(
            200, {"code": "success", "message": "", "data": self._task_data(request, task)}
        )

    def cancel(self, request: Request) -> Response:
        if not self.state.config.cancel_supported:
            return error_response(404, f"no route for POST {request.target}", "not_found")
        task_id = unquote(request.params["id"])
        task = self._find(_kind(request), task_id)
        if task is None:
            return error_response(404, f"task {task_id} not found", "task_not_found")
        with self.state.lock:
            now = self.state.clock.monotonic()
            event, _, _ = task.current(now)
            if event.status in ("NOT_START", "SUBMITTED", "QUEUED"):
                task.cancelled_at = now
            elif event.status != "CANCELLED":
                return error_response(
                    400,
                    f"task {task_id} is {event.status} and can no longer be cancelled",
                    "task_not_cancellable",
                )
        return json_response(
            200, {"code": "success", "message": "", "data": self._task_data(request, task)}
        )

    def _task_data(self, request: Request, task: Task) -> dict[str, Any]:
        event, start, finish = task.current(self.state.clock.monotonic())
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
            data["outputs"] = [f"{self.state.public_base(request)}/redirect/{task.task_id}/1"]
        if event.status == "FAILURE":
            data["fail_reason"] = task.fail_reason
        return data

    # the gateway -------------------------------------------------------------------------
    def models(self, request: Request) -> Response:
        return json_response(200, catalogue.catalogue_document(self.state.models))

    def sts_token(self, request: Request) -> Response:
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
            "access_endpoint": f"{self.state.public_base(request)}/uploads",
        }
        return json_response(200, {"data": data})

    # files -------------------------------------------------------------------------------
    def _finished(self, task_id: str, index: int) -> Task | None:
        task = self.state.tasks.get(task_id)
        if task is None or index != 1:
            return None
        status = task.current(self.state.clock.monotonic())[0].status
        return task if status == "SUCCESS" else None

    def redirect(self, request: Request) -> Response:
        task_id, index = request.params["id"], int(request.params["n"])
        task = self._finished(task_id, index)
        if task is None:
            return _not_found()
        extension = "png" if task.kind == "image" else "mp4"
        return Response(
            302, b"", "text/plain", {"Location": f"/files/{task_id}/{index}.{extension}"}
        )

    def file(self, request: Request) -> Response:
        task = self._finished(request.params["id"], int(request.params["n"]))
        if task is None:
            return _not_found()
        extension = request.params["ext"]
        if task.kind == "video" and extension == "mp4":
            return Response(200, media.sample_video(), "video/mp4")
        if task.kind == "image" and extension == "png":
            width, height = media.image_size(task.body)
            png = media.render_png(
                str(task.body.get("prompt", "")), _task_seed(task.body), width, height
            )
            return Response(200, png, "image/png")
        return _not_found()

    def upload(self, request: Request) -> Response:
        found = self.state.store.get_object(unquote(request.params["key"]))
        if found is None:
            return _not_found()
        return Response(200, found[0], found[1])

    def root(self, request: Request) -> Response:
        return json_response(200, {"service": "siray-emulator", "contract": "API.md"})


def _not_found() -> Response:
    return Response(404, b"not found\n", "text/plain")


def _method_not_allowed(request: Request) -> Response:
    return error_response(405, "method not allowed", "method_not_allowed")


def _own_url(request: Request, url: str) -> bool:
    host = request.headers.get("Host", "")
    return bool(host) and urlsplit(url).netloc == host
