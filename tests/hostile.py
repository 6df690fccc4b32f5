"""A small fake of the Siray API that misbehaves on purpose, for what the emulator will not do:
answers that trickle, gzip bombs, hostile ids and text, output URLs that cannot be parsed."""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[BaseHTTPRequestHandler], None]


def send_json(handler: BaseHTTPRequestHandler, document: Any, status: int = 200) -> None:
    body = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def trickle(document: Any, pause: float = 0.2) -> Answer:
    """The document one byte at a time, `pause` seconds apart (each read well inside any read
    timeout, the whole far past any deadline)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(document).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(pause)

    return answer


def encoded(
    body: bytes, content_type: str, encoding: str, asked: list[str] | None = None
) -> Answer:
    """`body` as it is (already compressed), sent with `Content-Encoding: encoding` whatever was
    asked for; the Accept-Encoding of each request is noted in `asked` when given."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        if asked is not None:
            asked.append(handler.headers.get("Accept-Encoding", ""))
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def gzip_bomb(size: int) -> Answer:
    """`size` bytes of spaces (a whole number of MiB), gzipped: about 1 KB on the wire a MiB.

    Made without compressing `size` bytes (1.3 s of CPU for 200 MiB): each MiB, compressed
    after a full flush that empties the window, compresses to the same bytes, so the stream is
    one such piece repeated, the empty last block, and the trailer's CRC and length."""
    mib = 1 << 20
    if size % mib:
        raise ValueError("a gzip bomb is a whole number of MiB")
    spaces = b" " * mib
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate: no header
    piece = deflate.compress(spaces) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // mib):
        crc = zlib.crc32(spaces, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip, deflate, no name, no mtime
    body = header + piece * (size // mib) + deflate.flush() + struct.pack("<II", crc, size % 2**32)
    return encoded(body, "application/json", "gzip")


def task_created(task_id: str) -> Answer:
    """The answer to a create: the task `task_id` was created."""
    return lambda handler: send_json(handler, {"code": "success", "data": {"task_id": task_id}})


def status_document(task_id: str, status: str = "SUCCESS", **fields: Any) -> dict[str, Any]:
    return {"code": "success", "data": {"task_id": task_id, "status": status, **fields}}


class HostileServer:
    """Routes: `answers[(method, path)]` (path without query), else 404."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Answer] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((self.command, path))
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                answer = server.answers.get((self.command, path))
                if answer is None:
                    send_json(self, {"error": {"message": "not found"}}, 404)
                    return
                with suppress(BrokenPipeError, ConnectionResetError):
                    answer(self)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def on(self, method: str, path: str, answer: Answer | Any) -> None:
        if callable(answer):
            self.answers[(method, path)] = answer
        else:
            self.answers[(method, path)] = lambda handler: send_json(handler, answer)

    @contextmanager
    def running(self) -> Iterator[HostileServer]:
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def env(self) -> dict[str, str]:
        return {
            "SIRAY_BASE_URL": self.url,
            "SIRAY_GATEWAY_URL": self.url,
            "SIRAY_API_KEY": "sk-hostile-test-key-0123456789",
        }
