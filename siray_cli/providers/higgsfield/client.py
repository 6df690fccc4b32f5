"""The Higgsfield generation API behind the provider seam: submit with an Idempotency-Key (so a
submit whose answer was lost is resent safely, with the same key), status, cancel, presigned
uploads streamed from disk, price estimates, and the built-in catalogue of known applications.

Unlike the official client, siray never sends a submit again without its idempotency key, follows
status and cancel URLs only on the host it was pointed at, and never sends the credential to the
upload URL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siray_cli import errors
from siray_cli.domain import ModelInfo, SubmittedTask, Task, TaskKind, TaskState
from siray_cli.providers.base import Capabilities, ProgressFor, Provider, SubmitRequest
from siray_cli.providers.common import LazyClient, json_body, network_error
from siray_cli.providers.higgsfield.parse import (
    APPLICATIONS,
    REQUEST_ID,
    catalogue,
    error_detail,
    parse_estimate,
    parse_status,
    parse_submit,
    parse_upload_slot,
)
from siray_cli.providers.higgsfield.spec import DEFAULT_BASE_URL

if TYPE_CHECKING:
    import httpx

    from siray_cli.domain import Source, Uploaded
    from siray_cli.transport import Trace

# httpx and the transport (which subclasses httpx's) are imported by the methods that send a
# request: a run that sends none (`models list`: the application ids are built in) does not
# load them

UPLOAD_TYPES = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/png",
        "image/webp",
        "image/gif",
        "audio/wav",
        "audio/x-wav",
        "video/mp4",
    }
)
CHUNK = 1024 * 1024


def check_request_id(task_id: str) -> str:
    task_id = task_id.strip()
    if not REQUEST_ID.match(task_id):
        raise errors.UsageError(
            f"{task_id!r} is not a Higgsfield request id",
            hint="request ids are UUIDs; use the id that `siray generate` printed",
        )
    return task_id


def _message(response: httpx.Response) -> str:
    try:
        words = error_detail(json.loads(response.content))
    except ValueError:
        words = None
    if words is None:
        text = " ".join(response.text.split())
        words = text if text and not text.startswith("<") else response.reason_phrase
    return words or "error"


def _names_a_field(response: httpx.Response) -> bool:
    """Whether a 422 is a body validation (a FastAPI detail list naming fields), as opposed to
    an Idempotency-Key reused with other parameters (the contract gives both the same status)."""
    try:
        detail = json.loads(response.content).get("detail")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, list) and any(
        isinstance(item, dict) and item.get("loc") for item in detail
    )


def raise_for_status(response: httpx.Response, *, task_id: str | None = None) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"{_message(response)} (HTTP {status})"
    if status == 400 and "concurrent" in message.lower():
        raise errors.ConcurrencyLimitError(
            message,
            status_code=400,
            task_id=task_id,
            hint="the account's concurrency limit: nothing was submitted; wait for a "
            "request to end, then submit again",
        )
    hints = {
        401: "check the credential (HF_KEY, as key_id:key_secret)",
        403: "the account has not enough credits: top it up, then try again",
        423: "the model is temporarily blocked: try again later",
        422: "fix the inputs named above",
    }
    cls = errors.error_for_status(status)
    if status == 422:
        message = f"invalid inputs: {message}"
    raise cls(message, status_code=status, task_id=task_id, hint=hints.get(status))


def submit_retry(backoff: float | None) -> Any:
    """With an Idempotency-Key a submit may be sent again, with the same key: after a 5xx, a
    429, a timeout or a cut connection the server answers with the original request."""
    from siray_cli.transport import read_retry

    # (500 too: the contract's table lists it with 502-504 as safe to repeat with the key)
    return read_retry(
        backoff=backoff, methods=("POST",), total=4, statuses=(429, 500, 502, 503, 504)
    )


class HiggsfieldProvider(Provider):
    name = "higgsfield"
    probe_id = "00000000-0000-0000-0000-000000000000"
    capabilities = Capabilities(
        supports_cancel=True,
        supports_progress=False,
        supports_upload=True,
        supports_catalogue=True,
        supports_estimate=True,
        supports_idempotency=True,
        supports_webhook=True,
        open_catalogue=True,
    )
    image_field = "image_url"

    def __init__(
        self,
        *,
        credential: str,
        base_url: str,
        trace: Trace | None = None,
        backoff: float | None = None,
        read_timeout: float | None = None,
        set_by: str | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.set_by = set_by
        self._backoff = backoff
        self._trace = trace
        self._read_timeout = read_timeout
        self._client = LazyClient(
            self.base_url,
            f"Key {credential}",
            trace=trace,
            backoff=backoff,
            read_timeout=read_timeout,
            max_rate=max_rate,
        )
        self._kinds: dict[str, TaskKind] = {}

    @property
    def _http(self) -> httpx.Client:
        return self._client.get()

    @property
    def catalogue_url(self) -> str:
        return f"{self.base_url}#higgsfield"

    def close(self) -> None:
        self._client.close()

    def check_task_id(self, task_id: str) -> str:
        return check_request_id(task_id)

    def list_models(self) -> list[ModelInfo]:
        return catalogue()

    def _network_error(self, exc: Exception, what: str) -> errors.NetworkError:
        return network_error(exc, what, self.base_url, "--base-url / SIRAY_HIGGSFIELD_BASE_URL")

    def build_submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmitRequest:
        """`POST /{application}` with the flat body (the model is the path), the key as an
        Idempotency-Key header and the webhook as `hf_webhook`."""
        application, flat = _split(body)
        return SubmitRequest(
            "POST",
            self.base_url,
            f"/{application}",
            flat,
            params={"hf_webhook": webhook} if webhook else {},
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else {},
        )

    def submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmittedTask:
        """Without an idempotency key the request is never sent twice; with one, it is sent
        again (same key) after an unanswered attempt."""
        import httpx

        from siray_cli.transport import BadBody, describe

        request = self.build_submit(kind, body, idempotency_key=idempotency_key, webhook=webhook)
        application = str(body.get("model", ""))
        retry = submit_retry(self._backoff) if idempotency_key else None
        try:
            response = self._http.request(
                request.method,
                request.path,
                json=request.body,
                headers=request.headers,
                params=request.params or None,
                extensions={"retry": retry} if retry is not None else {},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise errors.NetworkError(
                f"could not connect to {self.base_url}; nothing was submitted ({describe(exc)})",
                hint="check your network and --base-url / SIRAY_HIGGSFIELD_BASE_URL",
            ) from exc
        except (httpx.HTTPError, BadBody) as exc:
            raise self._uncertain(f"the connection failed ({describe(exc)})") from exc
        if response.status_code >= 500:
            raise self._uncertain(
                f"the server failed: {_message(response)} (HTTP {response.status_code})"
            )
        if response.status_code in (404, 405):
            self._placed(response)
        if response.status_code == 422 and idempotency_key and not _names_a_field(response):
            raise errors.IdempotencyConflictError(
                f"the Idempotency-Key was used before for a request with other parameters: "
                f"{_message(response)} (HTTP 422)",
                status_code=422,
            )
        raise_for_status(response)
        try:
            payload = json_body(response)
            submitted = parse_submit(payload, self.base_url)
        except errors.ProtocolError as exc:
            raise self._uncertain(exc.message) from exc
        self._kinds[submitted.request_id] = kind
        try:  # a request made earlier under the key is answered as it is now
            answer: Task | None = parse_status(payload, kind, submitted.request_id)
        except errors.ProtocolError:
            answer = None
        return SubmittedTask(submitted.request_id, kind, application, answer=answer)

    def _uncertain(self, what: str) -> errors.AmbiguousSubmitError:
        return errors.AmbiguousSubmitError(
            f"{what}; the request may have been created",
            hint="sent again with the same Idempotency-Key, it cannot create a second paid request",
        )

    def _request(self, method: str, path: str, task_id: str) -> httpx.Response:
        import httpx

        from siray_cli.transport import BadBody, read_retry

        extensions = {}
        if method == "POST":  # a cancel: its 202 has no body to check as JSON
            retry = read_retry(backoff=self._backoff, methods=("POST",), expect_json=False)
            extensions = {"retry": retry}
        try:
            return self._http.request(method, path, extensions=extensions)
        except BadBody as exc:
            raise errors.ProtocolError(str(exc), task_id=task_id) from exc
        except httpx.HTTPError as exc:
            raise self._network_error(exc, f"asking about {task_id}") from exc

    def get(self, task_id: str, kind: TaskKind | None = None) -> Task:
        task_id = check_request_id(task_id)
        response = self._request("GET", f"/requests/{task_id}/status", task_id)
        if response.status_code == 404:
            raise self._not_found(task_id, response)
        raise_for_status(response, task_id=task_id)
        guess = kind or self._kinds.get(task_id) or TaskKind.IMAGE
        task = parse_status(json_body(response), guess, task_id)
        if kind is None and any(item.media is TaskKind.VIDEO for item in task.outputs):
            from dataclasses import replace

            task = replace(task, kind=TaskKind.VIDEO)
        return task

    def _not_found(self, task_id: str, response: httpx.Response) -> errors.NotFoundError:
        place = self._client.place_hint(self.set_by, DEFAULT_BASE_URL)
        known = "`siray status` only knows requests of this credential"
        return errors.NotFoundError(
            f"no request {task_id} on {self.base_url} ({_message(response)})",
            status_code=404,
            task_id=task_id,
            hint=f"{place}; or check the id: {known}" if place else f"check the id; {known}",
        )

    def _placed(self, response: httpx.Response) -> None:
        """A submit answered 404 or 405: from a wrong base URL, said so (the base URL's path
        would otherwise read as part of the application id)."""
        place = self._client.place_hint(self.set_by, DEFAULT_BASE_URL)
        if place is not None:
            status = response.status_code
            raise errors.error_for_status(status)(
                f"{_message(response)} (HTTP {status}); nothing was submitted",
                status_code=status,
                hint=place,
            )

    def cancel(self, task_id: str, kind: TaskKind | None = None) -> Task:
        """The server's answer to the cancel decides; the status look after it only adds to it
        (what the request is now), and its failure changes nothing."""
        task_id = check_request_id(task_id)
        response = self._request("POST", f"/requests/{task_id}/cancel", task_id)
        if response.status_code == 404:
            raise self._not_found(task_id, response)
        if response.status_code == 400:
            return self._cancel_refused(task_id, kind, _message(response))
        raise_for_status(response, task_id=task_id)
        # the 202: canceled (and refunded), whatever a look says next (it may lag behind)
        now = self._look_after_cancel(task_id, kind)
        if now is not None and now.cancelled:
            return now
        return Task(
            task_id=task_id,
            kind=kind or self._kinds.get(task_id) or TaskKind.IMAGE,
            status="CANCELLED",
            state=TaskState.CANCELLED,
        )

    def _cancel_refused(self, task_id: str, kind: TaskKind | None, said: str) -> Task:
        # only a queued request can be cancelled: what is it now? (one cancelled already is
        # what was asked for, as Siray answers too)
        now = self._look_after_cancel(task_id, kind)
        if now is not None and now.cancelled:
            return now
        if now is None:
            what, hint = "cannot be cancelled", f"see it with `siray status {task_id}`"
        elif now.is_terminal:
            what = f"has already ended ({now.status}), and cannot be cancelled"
            hint = f"see it with `siray status {task_id}`"
        else:
            what = f"has already started ({now.status}), and cannot be cancelled"
            hint = f"follow it with `siray status {task_id} --wait`"
        raise errors.CancelRefusedError(
            f"request {task_id} {what}: {said} (HTTP 400)",
            status_code=400,
            task_id=task_id,
            hint=hint,
        )

    def _look_after_cancel(self, task_id: str, kind: TaskKind | None) -> Task | None:
        try:
            return self.get(task_id, kind)
        except errors.SirayError as exc:
            if self._trace is not None:
                self._trace(f"the status look after cancelling {task_id} failed: {exc.message}")
            return None

    def estimate(self, body: dict[str, Any]) -> dict[str, str]:
        import httpx

        from siray_cli.transport import BadBody, read_retry

        application, flat = _split(body)
        try:
            response = self._http.post(
                f"/estimate/{application}",
                json=flat,
                extensions={"retry": read_retry(backoff=self._backoff, methods=("POST",))},
            )
        except (httpx.HTTPError, BadBody) as exc:
            raise self._network_error(exc, "asking for a price") from exc
        raise_for_status(response)
        return parse_estimate(json_body(response))

    def upload(
        self,
        sources: Sequence[Source],
        progress: ProgressFor,
        *,
        part_size: int,
        virtual_host: bool,
        on_secret: Callable[[str], None],
    ) -> list[Uploaded]:
        """Each file through a presigned URL: its content type checked first, streamed from disk
        (bounded memory), PUT without the credential."""
        from siray_cli.domain import Uploaded
        from siray_cli.transport import build_http_client

        for source in sources:
            if source.content_type not in UPLOAD_TYPES:
                raise errors.UsageError(
                    f"{source.label}: Higgsfield does not accept {source.content_type} files",
                    hint=f"accepted: {', '.join(sorted(UPLOAD_TYPES))}",
                )
        results = []
        with build_http_client(
            trace=self._trace, expect_json=False, read_timeout=self._read_timeout
        ) as put:
            for source in sources:
                response = self._request_slot(source.content_type)
                upload_url, public_url, headers = parse_upload_slot(json_body(response))
                headers.setdefault("Content-Type", source.content_type)
                advance = progress(source)
                sent = [0]
                with _sized(source) as (path, size):
                    # a presigned PUT wants its length up front (no chunked encoding)
                    headers["Content-Length"] = str(size)
                    stored = put.put(
                        upload_url, content=_chunks(path, advance, sent), headers=headers
                    )
                if not stored.is_success:
                    raise errors.UploadError(
                        f"uploading {source.label} failed (HTTP {stored.status_code})"
                    )
                results.append(Uploaded(source.label, public_url, sent[0], source.content_type))
        return results

    def _request_slot(self, content_type: str) -> httpx.Response:
        import httpx

        from siray_cli.transport import BadBody, read_retry

        try:
            response = self._http.post(
                "/files/generate-upload-url",
                json={"content_type": content_type},
                extensions={"retry": read_retry(backoff=self._backoff, methods=("POST",))},
            )
        except (httpx.HTTPError, BadBody) as exc:
            raise self._network_error(exc, "asking for an upload URL") from exc
        raise_for_status(response)
        return response


def _split(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The application id (siray's `model`, the path of the request) and the flat body."""
    return str(body.get("model", "")), {k: v for k, v in body.items() if k != "model"}


@contextmanager
def _sized(source: Source) -> Iterator[tuple[Path, int]]:
    """The source as a file of known size: standard input is spooled to a temporary file first,
    so memory stays bounded whatever its size."""
    if source.path:
        yield Path(source.path), Path(source.path).stat().st_size
        return
    assert source.stream is not None
    with tempfile.NamedTemporaryFile(prefix="siray-stdin-") as spool:
        shutil.copyfileobj(source.stream, spool, CHUNK)
        spool.flush()
        yield Path(spool.name), spool.tell()


def _chunks(path: Path, advance: Callable[[int], None], sent: list[int]) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            sent[0] += len(chunk)
            advance(len(chunk))
            yield chunk


__all__ = ["APPLICATIONS", "HiggsfieldProvider"]
