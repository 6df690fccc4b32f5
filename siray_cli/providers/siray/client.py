"""The Siray API behind the provider seam: create, query and cancel tasks, the model
catalogue, and uploads through the gateway's temporary S3 credentials.

The create POST is retried only when it certainly never reached the server (the connection was
never made) or on 429; anything else could start a second paid task.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from siray_cli import errors
from siray_cli.domain import ModelInfo, SubmittedTask, Task, TaskKind
from siray_cli.providers.base import Capabilities, ProgressFor, Provider, SubmitRequest
from siray_cli.providers.common import LazyClient, json_body, network_error
from siray_cli.providers.siray.parse import (
    CREATE_PATHS,
    STATUS_PATHS,
    TASK_ID,
    kind_from_task_id,
    parse_catalogue,
    parse_status,
    parse_submit,
    parse_upload_token,
)
from siray_cli.providers.siray.spec import DEFAULT_BASE_URL

if TYPE_CHECKING:
    import httpx

    from siray_cli.domain import Source, Uploaded, UploadToken
    from siray_cli.transport import Trace

# httpx and the transport (which subclasses httpx's) are imported by the methods that send a
# request: a run that sends none (the catalogue from a fresh cache) does not load them


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _one_line(text: str) -> str:
    """The server's words on one line, whole: the output sink scrubs secrets first and only then
    cuts a long message, so no piece of an echoed key survives a cut."""
    return " ".join(text.split())


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's words from an error body (JSON, plain text or HTML), and its code."""
    try:
        body = response.text
    except Exception:
        body = ""
    code: str | None = None
    message = ""
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        err = payload.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            code = str(err["code"]) if err.get("code") else None
        elif isinstance(err, str):
            message = err
        if not message:
            for key in ("message", "detail", "msg"):
                if isinstance(payload.get(key), str) and payload[key]:
                    message = payload[key]
                    break
        if code is None and isinstance(payload.get("code"), str):
            code = payload["code"]
    elif body.strip():
        stripped = body.strip()
        if stripped.startswith("<") or "<html" in stripped[:500].lower():
            match = _TITLE.search(stripped) or _H1.search(stripped)
            text = match.group(1) if match else _TAG.sub(" ", stripped)
            message = html.unescape(_TAG.sub(" ", text))
        else:
            message = stripped
    message = _one_line(message) if message else (response.reason_phrase or "error")
    return message, code


def raise_for_status(response: httpx.Response, *, task_id: str | None = None) -> None:
    if response.status_code < 400:
        return
    message, code = error_message(response)
    cls = errors.error_for_status(response.status_code)
    hint = None
    if response.status_code == 401:
        hint = (
            "check the API key: `siray auth status` says which is in effect and where it comes from"
        )
    elif response.status_code == 429:
        hint = "the API is rate limiting this key; wait a little and try again"
    elif response.status_code == 402:
        hint = "top up the account's balance, then try again"
    raise cls(
        f"{message} (HTTP {response.status_code})",
        status_code=response.status_code,
        task_id=task_id,
        code=code,
        hint=hint,
    )


def check_task_id(task_id: str) -> str:
    task_id = task_id.strip()
    if not TASK_ID.match(task_id):
        raise errors.UsageError(
            f"{task_id!r} is not a task id",
            hint="task ids look like image_a8813a4b4c9 or video_...; "
            "use the id that `siray generate` printed",
        )
    return task_id


class SirayProvider(Provider):
    """The Siray API: create, query and cancel tasks, the catalogue, uploads."""

    name = "siray"
    probe_id = "image_siray-auth-check"
    capabilities = Capabilities(
        supports_cancel=True,
        supports_progress=True,
        supports_upload=True,
        supports_catalogue=True,
        supports_estimate=False,
        supports_idempotency=False,
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        gateway_url: str | None = None,
        trace: Trace | None = None,
        backoff: float | None = None,
        read_timeout: float | None = None,
        set_by: str | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.set_by = set_by
        self.gateway_url = (gateway_url or base_url).rstrip("/")
        self._backoff = backoff
        self._trace = trace
        self._api = LazyClient(
            self.base_url,
            f"Bearer {api_key}",
            trace=trace,
            backoff=backoff,
            read_timeout=read_timeout,
            max_rate=max_rate,
        )
        self._gateway = LazyClient(  # which takes the key as `API-KEY <key>` (the contract)
            self.gateway_url,
            f"API-KEY {api_key}",
            trace=trace,
            backoff=backoff,
            read_timeout=read_timeout,
            max_rate=max_rate,
        )

    def close(self) -> None:
        self._api.close()
        self._gateway.close()

    @property
    def _http(self) -> httpx.Client:
        return self._api.get()

    @property
    def gateway(self) -> httpx.Client:
        return self._gateway.get()

    def _gateway_json(self, method: str, path: str, what: str) -> object:
        """A gateway request, retried like a read (asking twice costs nothing), as JSON."""
        import httpx

        from siray_cli.transport import BadBody, read_retry

        try:
            response = self.gateway.request(
                method,
                path,
                extensions={"retry": read_retry(backoff=self._backoff, methods=(method,))},
            )
        except BadBody as exc:
            raise errors.ProtocolError(f"{what}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise self._network_error(exc, what, gateway=True) from exc
        raise_for_status(response)
        return json_body(response)

    def upload_token(self) -> UploadToken:
        """Temporary S3 credentials (`POST {gateway}/api/model-verse/sts-token`)."""
        return parse_upload_token(
            self._gateway_json("POST", "/api/model-verse/sts-token", "asking for an upload token")
        )

    def list_models(self) -> list[ModelInfo]:
        """The model catalogue (`GET {gateway}/api/model-verse/models`)."""
        return parse_catalogue(
            self._gateway_json("GET", "/api/model-verse/models", "fetching the model catalogue")
        )

    def _network_error(
        self, exc: Exception, what: str, *, gateway: bool = False
    ) -> errors.NetworkError:
        if gateway:
            return network_error(exc, what, self.gateway_url, "--gateway-url / SIRAY_GATEWAY_URL")
        return network_error(exc, what, self.base_url, "--base-url / SIRAY_BASE_URL")

    @property
    def catalogue_url(self) -> str:
        return self.gateway_url

    def check_task_id(self, task_id: str) -> str:
        return check_task_id(task_id)

    def upload(
        self,
        sources: Sequence[Source],
        progress: ProgressFor,
        *,
        part_size: int,
        virtual_host: bool,
        on_secret: Callable[[str], None],
    ) -> list[Uploaded]:
        """Upload over S3 with the gateway's temporary credentials, which join the secrets."""
        from siray_cli.providers.siray.upload import Uploader

        def remember(token: UploadToken) -> None:
            for secret in token.secrets():
                on_secret(secret)
            if self._trace is not None:
                self._trace("upload token received (secrets hidden)")

        uploader = Uploader(
            self.upload_token, part_size=part_size, virtual_host=virtual_host, on_token=remember
        )
        return uploader.upload(list(sources), progress)

    def build_submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmitRequest:
        """`POST /v1/{images|video}/generations/async` with the body as it is (Siray documents
        no idempotency key and no webhook: neither is sent)."""
        return SubmitRequest("POST", self.base_url, CREATE_PATHS[kind], body)

    def submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmittedTask:
        """Create a task. Never repeats a request that may have reached the server."""
        import httpx

        from siray_cli.transport import create_retry, describe

        model = str(body.get("model", ""))
        request = self.build_submit(kind, body)
        try:
            response = self._http.request(
                request.method,
                request.path,
                json=request.body,
                extensions={"retry": create_retry(backoff=self._backoff)},
            )
            response.read()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise errors.NetworkError(
                f"could not connect to {self.base_url}; nothing was submitted ({describe(exc)})",
                hint="check your network and --base-url / SIRAY_BASE_URL",
            ) from exc
        except httpx.HTTPError as exc:
            raise errors.AmbiguousSubmitError(
                f"the connection failed after the request was sent ({describe(exc)}); "
                "the task may have been created",
                hint="siray did not resend it, so you are not charged twice; check your Siray "
                "dashboard before submitting again",
            ) from exc
        if response.status_code >= 500:
            message, _code = error_message(response)
            raise errors.AmbiguousSubmitError(
                f"the server failed while creating the task: {message} "
                f"(HTTP {response.status_code}); the task may have been created",
                status_code=response.status_code,
                hint="siray did not resend it, so you are not charged twice; check your Siray "
                "dashboard before submitting again",
            )
        if response.status_code == 429:  # still rate limited after the retries: refused, not run
            message, code = error_message(response)
            raise errors.RateLimitError(
                f"{message} (HTTP 429); nothing was submitted",
                status_code=429,
                code=code,
                hint="the API is rate limiting this key; wait a little and try again",
            )
        if response.status_code in (401, 404, 405):
            self._placed(response, "; nothing was submitted")
        raise_for_status(response)
        try:
            payload = json.loads(response.content)
        except ValueError as exc:
            raise errors.AmbiguousSubmitError(
                f"the server accepted the request (HTTP {response.status_code}) but its answer "
                "is not JSON; the task may have been created",
                status_code=response.status_code,
                hint="check your Siray dashboard before submitting again",
            ) from exc
        try:
            return parse_submit(payload, kind, model)
        except errors.ProtocolError as exc:
            raise errors.AmbiguousSubmitError(
                f"{exc.message}; the task may have been created",
                status_code=response.status_code,
                hint="check your Siray dashboard before submitting again",
            ) from exc

    def _placed(
        self, response: httpx.Response, after: str = "", task_id: str | None = None
    ) -> None:
        """A 404 or 405 (or a 401 from a base URL with a path of its own: another service's
        door, not this key's fault) that a wrong base URL explains: said so."""
        from urllib.parse import urlsplit

        status = response.status_code
        if status == 401 and not urlsplit(self.base_url).path:
            return
        place = self._api.place_hint(self.set_by, DEFAULT_BASE_URL, "/v1")
        if place is None:
            return
        message, code = error_message(response)
        raise errors.error_for_status(status)(
            f"{message} (HTTP {status}){after}",
            task_id=task_id,
            status_code=status,
            code=code,
            hint=place,
        )

    def _get(self, path: str, task_id: str) -> httpx.Response:
        import httpx

        from siray_cli.transport import BadBody

        try:
            return self._http.get(path)
        except BadBody as exc:
            raise errors.ProtocolError(str(exc), task_id=task_id) from exc
        except httpx.HTTPError as exc:
            raise self._network_error(exc, f"querying {task_id}") from exc

    def get(self, task_id: str, kind: TaskKind | None = None) -> Task:
        """The task's state. Without a kind the id prefix decides, else both endpoints are tried."""
        task_id = check_task_id(task_id)
        kind = kind or kind_from_task_id(task_id)
        kinds = [kind] if kind else [TaskKind.IMAGE, TaskKind.VIDEO]
        for index, candidate in enumerate(kinds):
            response = self._get(STATUS_PATHS[candidate].format(task_id=quote(task_id)), task_id)
            if response.status_code == 404 and index + 1 < len(kinds):
                continue
            if response.status_code == 404:
                message, code = error_message(response)
                place = self._api.place_hint(self.set_by, DEFAULT_BASE_URL, "/v1")
                known = "`siray status` only knows tasks of this API key"
                raise errors.NotFoundError(
                    f"no task {task_id} on {self.base_url} ({message})",
                    status_code=404,
                    task_id=task_id,
                    code=code,
                    hint=f"{place}; or check the id: {known}"
                    if place
                    else f"check the id; {known}",
                )
            if response.status_code == 401:
                self._placed(response, task_id=task_id)
            raise_for_status(response, task_id=task_id)
            try:
                return parse_status(json_body(response), candidate, task_id)
            except errors.ProtocolError as exc:
                exc.task_id = task_id
                raise
        raise AssertionError("unreachable")

    def cancel(self, task_id: str, kind: TaskKind | None = None) -> Task:
        """Ask the server to cancel a task that has not started (the contract assumes the
        endpoint)."""
        import httpx

        from siray_cli.transport import BadBody, read_retry

        task_id = check_task_id(task_id)
        kind = kind or kind_from_task_id(task_id)
        if kind is None:
            kind = self.get(task_id).kind
        path = STATUS_PATHS[kind].format(task_id=quote(task_id)) + "/cancel"
        try:
            response = self._http.post(
                path, extensions={"retry": read_retry(backoff=self._backoff, methods=("POST",))}
            )
        except BadBody as exc:
            raise errors.ProtocolError(str(exc), task_id=task_id) from exc
        except httpx.HTTPError as exc:
            raise self._network_error(exc, f"cancelling {task_id}") from exc
        if response.status_code in (404, 405):
            # Either the task is unknown or the server has no cancel endpoint: ask which.
            current = self.get(task_id, kind)
            if current.is_terminal:
                return current
            raise errors.CancelUnsupportedError(
                f"this server does not support cancelling tasks (HTTP {response.status_code}); "
                f"task {task_id} keeps running",
                status_code=response.status_code,
                task_id=task_id,
                hint=f"follow it with `siray status {task_id} --wait`",
            )
        if response.status_code == 400:  # the contract: already running or finished
            message, code = error_message(response)
            # the server's words say why (started, or ended); said once, not twice over
            reason = message or "it has already started"
            raise errors.CancelRefusedError(
                reason if task_id in reason else f"task {task_id} was not cancelled: {reason}",
                status_code=400,
                task_id=task_id,
                code=code,
                hint=f"`siray status {task_id}` shows where it is",
            )
        raise_for_status(response, task_id=task_id)
        try:
            return parse_status(json_body(response), kind, task_id)
        except errors.ProtocolError:
            return self.get(task_id, kind)
