"""The emulator's object store: moto in server mode on loopback, with IAM authentication on, so a
wrong secret or a missing session token fails as it would on the real store; temporary
credentials come from moto's own STS. A small proxy in front of moto can expire tokens after a
number of requests and inject the emulator's fault rules into S3 requests.

What it is sent stays on disk, not in memory, so a long-running emulator does not grow with the
files it holds: moto spools every body above SPOOL_ABOVE bytes to a temporary file (unlinked at
once, in the system's temporary directory, TMPDIR: the space comes back however the process ends),
multipart uploads are completed on disk (`moto_disk`), moto's server runs without Flask's debug
mode (which kept every request's body alive until the cyclic collector ran), and the memory a
large upload freed is handed back to the system when it completes (`_give_back_memory`).
`benchmarks/emulator_memory.py` measures it.

moto is an optional dependency (`pip install siray-cli[emulator]`); it is imported only when the
first upload token is asked for.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from siray_cli.emulator.faults import Faults

BUCKET = "siray-uploads"
REGION = "us-east-1"
UPLOAD_PATH = "/user/123/"
SPOOL_ABOVE = 64 * 1024  # bytes of an object kept in memory; the rest goes to a temporary file
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}
_moto_lock = threading.Lock()
_moto: dict[str, Any] = {}


class StorageUnavailable(RuntimeError):
    pass


def _start_moto() -> dict[str, Any]:
    """One moto server per process (its backends are process-wide), set up once: a bucket, a role
    that may write to it, and a user allowed to assume that role; then authentication is on."""
    with _moto_lock:
        if _moto:
            return _moto
        try:
            import boto3
            from moto import settings
        except ImportError as exc:
            raise StorageUnavailable(
                "uploads need moto: pip install 'siray-cli[emulator]'"
            ) from exc
        import logging
        import os

        from siray_cli.emulator import moto_disk

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
        # bodies on disk, not in memory: moto spools every object (and part) to an unlinked
        # temporary file above this size (its default: about 5 MiB), and completes multipart
        # uploads on disk with the hook (see moto_disk)
        os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(SPOOL_ABOVE))
        moto_disk.install()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        # clients of its own, blind to the user's AWS setup, as siray's are
        from siray_cli.providers.siray.upload import isolated_botocore_session

        aws = boto3.session.Session(botocore_session=isolated_botocore_session())
        server = _serve_moto()
        host, port = server.server_address[:2]
        url = f"http://{host}:{port}"
        admin = {
            "endpoint_url": url,
            "region_name": REGION,
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = aws.client("iam", **admin)
        allow_all = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}
                ],
            }
        )
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                ],
            }
        )
        role = iam.create_role(RoleName="siray-uploads", AssumeRolePolicyDocument=trust)
        iam.put_role_policy(
            RoleName="siray-uploads", PolicyName="uploads", PolicyDocument=allow_all
        )
        iam.create_user(UserName="siray-gateway")
        iam.put_user_policy(
            UserName="siray-gateway", PolicyName="gateway", PolicyDocument=allow_all
        )
        key = iam.create_access_key(UserName="siray-gateway")["AccessKey"]
        aws.client("s3", **admin).create_bucket(Bucket=BUCKET)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from here on, every request is checked
        gateway = {
            "endpoint_url": url,
            "region_name": REGION,
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        _moto.update(
            server=server,
            url=url,
            role=role["Role"]["Arn"],
            gateway=gateway,
            sts=aws.client("sts", **gateway),
            s3=aws.client("s3", **gateway),
        )
        return _moto


def _serve_moto() -> Any:
    """moto's server (as its ThreadedMotoServer starts it) on a free loopback port, on a thread,
    with Flask's debug mode off. moto turns it on, and in debug mode Flask gives every request's
    `files` a class of its own whose closure refers back to the request: a reference cycle that
    keeps each request's body (a whole part of a multipart upload) in memory until the cyclic
    garbage collector runs, hundreds of MB after a large upload."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    def backend_app(service: Any) -> Any:
        app = create_backend_app(service)
        app.debug = False
        return app

    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    threading.Thread(target=server.serve_forever, name="siray-emulator-s3", daemon=True).start()
    return server


class ObjectStore:
    """The proxy in front of moto, for one emulator."""

    def __init__(
        self,
        faults: Faults,
        token_requests: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.faults = faults
        self.token_requests = token_requests
        self.log = log
        self.tokens_issued = 0
        self.issued: list[dict[str, str]] = []  # every credential handed out (tests look)
        self._uses: dict[str, int] = {}
        self._lock = threading.Lock()
        self._proxy: ThreadingHTTPServer | None = None
        self._moto: dict[str, Any] = {}
        self.tls_context: ssl.SSLContext | None = None

    @property
    def started(self) -> bool:
        return self._proxy is not None

    def start(self) -> None:
        with self._lock:
            if self._proxy is not None:
                return
            self._moto = _start_moto()
            handler = type("BoundProxy", (_Proxy,), {"store": self})
            proxy = _QuietServer(("127.0.0.1", 0), handler)
            proxy.daemon_threads = True
            if self.tls_context is not None:
                proxy.socket = self.tls_context.wrap_socket(
                    proxy.socket, server_side=True, do_handshake_on_connect=False
                )
            threading.Thread(
                target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
            self._proxy = proxy

    @property
    def endpoint(self) -> str:
        assert self._proxy is not None
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._proxy.server_address[1]}"

    @property
    def moto_url(self) -> str:
        return str(self._moto["url"])

    def issue_token(self) -> dict[str, str]:
        self.start()
        with self._lock:
            self.tokens_issued += 1
            number = self.tokens_issued
        credentials = self._moto["sts"].assume_role(
            RoleArn=self._moto["role"], RoleSessionName=f"siray-{number}", DurationSeconds=900
        )["Credentials"]
        issued = {
            "access_key_id": credentials["AccessKeyId"],
            "access_key_secret": credentials["SecretAccessKey"],
            "security_token": credentials["SessionToken"],
            "region": REGION,
        }
        with self._lock:
            self._uses[credentials["AccessKeyId"]] = 0
            self.issued.append(dict(issued))
        return issued

    def expired(self, access_key: str) -> bool:
        """Counts one use of the key; True once it is past `token_requests` uses."""
        if self.token_requests is None:
            return False
        with self._lock:
            used = self._uses.get(access_key)
            if used is None:
                return False
            self._uses[access_key] = used + 1
            return used >= self.token_requests

    def get_object(self, key: str) -> tuple[bytes, str] | None:
        if not self.started:
            return None
        try:
            found = self._moto["s3"].get_object(Bucket=BUCKET, Key=key)
        except Exception:
            return None
        return found["Body"].read(), found.get("ContentType", "application/octet-stream")

    def multipart_uploads(self) -> list[dict[str, str]]:
        if not self.started:
            return []
        listed = self._moto["s3"].list_multipart_uploads(Bucket=BUCKET)
        return [{"key": u["Key"], "upload_id": u["UploadId"]} for u in listed.get("Uploads", [])]

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None


def _give_back_memory() -> None:
    """Hand the memory freed by a large upload back to the system. Each part passes through a few
    buffers of its size (this proxy's, Werkzeug's, moto's) on the thread that serves it; glibc
    keeps what a thread frees in that thread's arena, and the emulator's resident size crept up
    by about 10 MB per 256 MiB uploaded. `malloc_trim` (glibc's, public) returns the free pages
    of every arena, in about 15 ms; elsewhere it does not exist and nothing is done."""
    if not _trim:
        import ctypes
        import sys

        function = (
            getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None
        )
        _trim.append(function)
    if _trim[0] is not None:
        _trim[0](0)


_trim: list[Any] = []


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (an upload aborted for an expired token) is no
    error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as the API's handler: no 40 ms per kept-alive request
    store: ObjectStore

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _reply(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:  # HTTP/1.1 chunked transfer coding, as boto3 sends streaming uploads
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        body = self._read_body()
        match = _CREDENTIAL.search(self.headers.get("Authorization", "") + self.path)
        if match is not None and self.store.expired(match.group(1)):
            self._reply(
                400,
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken"
                b"</Code><Message>The provided token has expired.</Message></Error>",
            )
            return
        fault = self.store.faults.take(self.command, "/s3" + self.path)
        if fault is not None and fault.action == "status":
            self._reply(
                fault.status,
                b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>",
            )
            return
        if fault is not None and fault.action == "drop":
            self.close_connection = True
            return
        target = urlsplit(self.store.moto_url)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1", target.port, timeout=60
        )
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
        }
        headers["Content-Length"] = str(len(body))
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if self.command == "POST" and "uploadId=" in self.path:
            _give_back_memory()  # a multipart upload completed (or failed to)
        if self.store.log is not None:
            self.store.log(f"S3 {self.command} {self.path.split('?')[0]} -> {answer.status}")
