"""A fork server for the tests' `python -m siray_cli ...` processes (see helpers.spawn).

Started once per test worker, it imports siray's modules (but its previews, see NOT_PRELOADED) and
what a siray process that sends a request imports anyway (Typer and Click, httpx and with it rich,
httpcore, httpx-retries, jsonschema, fastjsonschema, rich's progress bars; the emulator's server
for `siray emulator`), then, for each request, forks a child that becomes `python -m siray_cli
ARGS`: a real process with a pid of its own, the stdio descriptors the test passed, the environment
and directory it asked for, the signal dispositions of a fresh interpreter, and
`siray_cli/__main__.py` run as `__main__` by runpy, as `python -m` runs it. It exits as any
interpreter does (SystemExit, atexit, stdio flushed, a signal's death), and this server tells the
test its wait status.

What the child skips is the ~0.5 s of CPU the imports cost, and with them what only a fresh
interpreter shows: an import that fails, or a module used without being imported, is not seen
here (nor by the in-process tests). tests/test_startup.py, the README's examples and `emulator
start`'s background server still start siray from nothing; the real shells' completions reach
this server through tests/fork_client.py (helpers.siray_on_path).

    python tests/zygote.py SOCKET_PATH

Protocol, over a SOCK_SEQPACKET Unix socket, one connection per process: the test sends one
JSON message {"argv": [...], "env": {...}, "cwd": "..."} with three descriptors (stdin, stdout,
stderr); the server answers {"pid": N}, then {"status": S} (the raw wait status) when the child
has ended. The server ends when its standard input reaches end of file (its test worker ended).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

PRELOAD = (
    "httpx",
    "httpcore",  # which httpx imports only as a client is built: in every child, ~35 ms of CPU
    "httpx_retries",
    "jsonschema",
    "fastjsonschema",
    "rich.progress",  # what a run on a terminal draws with
    "rich.table",
    "siray_cli.emulator.server",
)
# every module of siray's but these: previews (textual-image looks at the terminal as it is
# imported), the generators of man pages and completions, and the emulator's own (the server
# imports those it serves with)
NOT_PRELOADED = ("siray_cli.preview", "siray_cli.docs", "siray_cli.__main__", "siray_cli.emulator")
MAX_MESSAGE = 1 << 20


class Job:
    """What a forked child is to become."""

    def __init__(self, request: dict[str, Any], fds: list[int]) -> None:
        self.argv: list[str] = request["argv"]
        self.env: dict[str, str] = request["env"]
        self.cwd: str = request["cwd"]
        self.fds = fds


class Server:
    """The listening socket, the children not yet reaped and the connection each is told on."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.selector.register(self.wake_read, selectors.EVENT_READ, self.reap)
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, self.end)
        self.waiting: dict[int, socket.socket] = {}

    def serve(self) -> Job | None:
        """Answer requests until stdin ends (None); in a forked child, return its job."""
        print("ready", flush=True)
        while True:
            for key, _ in self.selector.select():
                done, job = key.data()
                if done:
                    return job

    def end(self) -> tuple[bool, Job | None]:
        if os.read(sys.stdin.fileno(), 4096):
            return False, None
        self.close()
        return True, None

    def reap(self) -> tuple[bool, Job | None]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_read, 4096):
                pass
        while self.waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            connection = self.waiting.pop(pid, None)
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.send(json.dumps({"status": status}).encode())
                connection.close()
        return False, None

    def accept(self) -> tuple[bool, Job | None]:
        connection, _ = self.listener.accept()
        data, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 3)
        job = Job(json.loads(data), fds)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            connection.close()
            self.close()
            return True, job
        for fd in fds:
            os.close(fd)
        self.waiting[pid] = connection
        connection.send(json.dumps({"pid": pid}).encode())
        os.write(self.wake_write, b"\0")  # it may have ended already: look
        return False, None

    def close(self) -> None:
        self.selector.close()
        self.listener.close()
        for connection in self.waiting.values():
            connection.close()
        os.close(self.wake_read)
        os.close(self.wake_write)


def preload() -> None:
    import importlib
    import pkgutil

    import siray_cli

    for module in pkgutil.walk_packages(siray_cli.__path__, "siray_cli."):
        if not module.name.startswith(NOT_PRELOADED):
            importlib.import_module(module.name)
    for name in PRELOAD:
        importlib.import_module(name)


def _stream(fd: int, like: io.TextIOWrapper, write: bool) -> io.TextIOWrapper:
    """A standard stream on `fd` as the interpreter makes one at start-up (its encoding, errors
    and buffering as the server's own, which started under the same PYTHON* variables and
    locale); line buffered on a terminal, and always for stderr."""
    unbuffered = like.write_through
    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    buffer: Any = (
        raw
        if (write and unbuffered)
        else (io.BufferedWriter(raw) if write else io.BufferedReader(raw))
    )
    line_buffering = not unbuffered and (raw.isatty() or fd == 2)
    stream = io.TextIOWrapper(
        buffer,
        encoding=like.encoding,
        errors=like.errors,
        newline="\n",
        line_buffering=line_buffering,
        write_through=unbuffered,
    )
    stream.mode = "w" if write else "r"  # type: ignore[misc]
    return stream


def become(job: Job) -> None:
    """Turn this forked child into `python -m siray_cli ARGS` and run it."""
    import runpy

    for target, fd in enumerate(job.fds):
        os.dup2(fd, target)
    for fd in set(job.fds):
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(job.env)
    os.chdir(job.cwd)
    sys.stdin = sys.__stdin__ = _stream(0, sys.__stdin__, write=False)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = _stream(1, sys.__stdout__, write=True)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = _stream(2, sys.__stderr__, write=True)  # type: ignore[misc]
    sys.path[0] = job.cwd  # as `python -m` has it (here it was this file's directory)
    sys.argv = ["-m", *job.argv]
    runpy.run_module("siray_cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    preload()
    gc.collect()
    gc.freeze()  # the children share these pages instead of copying them on a collection
    found = Server(sys.argv[1]).serve()
    if found is not None:
        become(found)
