"""Uploads to Siray storage over S3, with the temporary credentials the gateway hands out.

The only module that imports boto3. The S3 client is built from those credentials alone (no
profile, no config file of the user's), SigV4, path-style by default, standard retries, and
checksums only when required (several S3-compatible stores reject the newer headers). Files go
through boto3's transfer manager: multipart above the part size, parts in parallel, read from disk
part by part. A failed or interrupted transfer is aborted, so no parts are left behind; an
expired token is replaced and the file sent again.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

from siray_cli.domain import Source, Uploaded, UploadToken
from siray_cli.errors import UploadError
from siray_cli.names import safe_name

EXPIRED = {"ExpiredToken", "RequestExpired", "TokenRefreshRequired", "ExpiredTokenException"}
ROUNDS = 3
MAX_PARALLEL = 8  # parts (and files) in flight at once


_SESSION_LOCK = threading.Lock()
_SESSION: Any = None


def isolated_botocore_session() -> Any:
    """A botocore session blind to the user's AWS setup: no config or credentials file, and no
    profile (AWS_PROFILE naming one those files lack would fail). Its clients get explicit
    credentials and settings."""
    import botocore.session

    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session


def _botocore_session() -> Any:
    """One isolated session per process: it parses S3's service model once, so a client built
    again for a renewed token (or by the next command in the same process) costs milliseconds,
    not a few hundred. It holds no credentials; each client gets its own."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = isolated_botocore_session()
        return _SESSION


def s3_client(token: UploadToken, *, virtual_host: bool = False) -> Any:
    """A client built from the temporary credentials only: no AWS profile, file or variable."""
    from botocore.config import Config

    session = _botocore_session()
    config = Config(
        region_name=token.region,
        signature_version="s3v4",
        # No SHA-256 pass over every part for the signature: with checksums only when required
        # (see above) botocore would hash each part, halving throughput; boto3's own default
        # streams parts unsigned too. TLS protects the bytes on the way.
        s3={
            "addressing_style": "virtual" if virtual_host else "path",
            "payload_signing_enabled": False,
        },
        retries={"mode": "standard", "max_attempts": 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=MAX_PARALLEL * 2,
        user_agent_extra="siray-cli",
    )
    return session.create_client(
        "s3",
        endpoint_url=token.upload_endpoint,
        # certificates are always checked; SSL_CERT_FILE may name the authorities to trust
        # (as for every other request siray makes), never an AWS setting of the user's
        verify=os.environ.get("SSL_CERT_FILE") or True,
        aws_access_key_id=token.access_key_id,
        aws_secret_access_key=token.secret_access_key,
        aws_session_token=token.session_token or None,
        config=config,
    )


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip().rstrip(":")
    return f"{type(exc).__name__}: {exc}"


class Uploader:
    def __init__(
        self,
        fetch_token: Callable[[], UploadToken],
        *,
        part_size: int,
        virtual_host: bool = False,
        on_token: Callable[[UploadToken], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._fetch = fetch_token
        self._part_size = part_size
        self._virtual_host = virtual_host
        self._on_token = on_token
        self._clock = clock or time.time
        self._token: UploadToken | None = None
        self.tokens_used = 0

    def token(self, *, fresh: bool = False) -> UploadToken:
        """The current token; a new one when asked, or when it expires within two minutes."""
        token = self._token
        soon = (
            token is not None
            and token.expires_at is not None
            and (token.expires_at - self._clock() < 120)
        )
        if token is None or fresh or soon:
            token = self._token = self._fetch()
            self.tokens_used += 1
            if self._on_token is not None:
                self._on_token(token)
        return token

    def upload(
        self, sources: list[Source], progress: Callable[[Source], Callable[[int], None]]
    ) -> list[Uploaded]:
        """Upload every source (in parallel); results in the order given."""
        keys = {id(s): f"{secrets.token_hex(6)}-{safe_name(s.name)}" for s in sources}
        done: dict[int, Uploaded] = {}
        pending = list(sources)
        for round_number in range(ROUNDS):
            token = self.token(fresh=round_number > 0)
            failures = self._round(token, pending, keys, done, progress)
            retry = [s for s, exc in failures if _error_code(exc) in EXPIRED and s.path]
            if len(retry) < len(failures):  # a failure that a fresh token cannot mend
                retried = {id(s) for s in retry}
                source, exc = next((s, e) for s, e in failures if id(s) not in retried)
                raise UploadError(
                    f"uploading {source.label} failed: {_message(exc)}", hint=self._hint(exc)
                )
            if not retry:
                return [done[id(s)] for s in sources]
            pending = retry  # the token ran out mid-way: a fresh one, and send them again
        raise UploadError("uploading failed: the storage kept rejecting fresh credentials")

    @staticmethod
    def _hint(exc: BaseException) -> str | None:
        code = _error_code(exc)
        if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "AccessDenied"):
            return "the storage refused the temporary credentials the gateway gave"
        return None

    def _round(
        self,
        token: UploadToken,
        sources: list[Source],
        keys: dict[int, str],
        done: dict[int, Uploaded],
        progress: Callable[[Source], Callable[[int], None]],
    ) -> list[tuple[Source, BaseException]]:
        from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig
        from s3transfer.manager import TransferManager

        client = s3_client(token, virtual_host=self._virtual_host)
        config = TransferConfig(
            multipart_threshold=self._part_size,
            multipart_chunksize=self._part_size,
            max_concurrency=MAX_PARALLEL,
            use_threads=True,
        )
        manager = TransferManager(client, config)
        futures = []
        try:
            for source in sources:
                key = token.key_for(keys[id(source)])
                body: Any = str(source.path) if source.path else source.stream
                future = manager.upload(
                    body,
                    token.bucket,
                    key,
                    extra_args={"ContentType": source.content_type},
                    subscribers=[ProgressCallbackInvoker(progress(source))],
                )
                futures.append((source, key, future))
            failures: list[tuple[Source, BaseException]] = []
            for source, key, future in futures:
                try:
                    future.result()
                except Exception as exc:
                    failures.append((source, exc))
                    self._abort_leftovers(client, token, key)
                    continue
                size = source.size
                if size is None:  # standard input: what was read of it
                    size = getattr(source.stream, "consumed", None) or future.meta.size or 0
                done[id(source)] = Uploaded(
                    source.label, token.public_url(key), int(size), source.content_type
                )
            manager.shutdown()
            return failures
        except BaseException:  # Ctrl-C: cancel every transfer; the manager aborts their parts
            manager.shutdown(cancel=True, cancel_msg="interrupted")
            for _, key, _ in futures:
                self._abort_leftovers(client, token, key)
            raise

    @staticmethod
    def _abort_leftovers(client: Any, token: UploadToken, key: str) -> None:
        """Abort any multipart upload still open for this key (never leave orphaned parts)."""
        try:
            listed = client.list_multipart_uploads(Bucket=token.bucket, Prefix=key)
            for upload in listed.get("Uploads", []):
                if upload.get("Key") == key:
                    client.abort_multipart_upload(
                        Bucket=token.bucket, Key=key, UploadId=upload["UploadId"]
                    )
        except Exception:
            pass
