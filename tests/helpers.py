"""What the tests share, defined once: import it as `from helpers import ...` (tests/ is on the
path, as for conftest). Fixtures stay in conftest.py; a fake server that misbehaves on purpose
is in hostile.py. Where a module's tests all use one model, the module imports it under its own
short name (`from helpers import Z_IMAGE as MODEL`)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from siray_cli.emulator.server import Emulator
from siray_cli.main import run
from siray_cli.storage.history import DB_NAME

# -- the emulator's pace -------------------------------------------------------------------------

TASK_SECONDS = 0.02  # how long an emulated task runs (the shared emulator's task_seconds)
POLL_INTERVAL = "0.1"

# -- models and routes ---------------------------------------------------------------------------

Z_IMAGE = "alibaba/z-image-turbo-t2i"  # an image model that requires a size (-i size=1024x768)
GEMINI_IMAGE = "google/gemini-2.5-flash-image-t2i"  # an image model that requires no input
HF_IMAGE = "bytedance/seedream/v4/text-to-image"  # an image model of the Higgsfield routes
HF = {"SIRAY_PROVIDER": "higgsfield"}  # the env that points siray at the Higgsfield routes
CREATE = "/v1/images/generations/async"  # the paid request of an image task
STATUS = CREATE + "/{}"  # .format(task_id): the look at an image task


# -- running siray -------------------------------------------------------------------------------


@dataclass
class Result:
    """What the `siray` fixture returns for one run."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(exit={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def emulator_env(server: Emulator, **extra: str) -> dict[str, str]:
    env = server.environment()
    env["SIRAY_RETRY_BACKOFF"] = "0.01"
    # a fixed 0.1 s beat instead of the adaptive schedule's first look after 1 s: a test that is
    # about the schedule (or reads where poll_interval came from) unsets it
    env["SIRAY_POLL_INTERVAL"] = POLL_INTERVAL
    env.update(extra)
    return env


def subprocess_env(server: Emulator, **extra: str) -> dict[str, str]:
    # the isolated config, data and cache directories stay; any other SIRAY_* does not
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_") or k.endswith("_DIR")}
    env.update(emulator_env(server))
    env.update(extra)
    return env


class _Entry:
    """Lets click's CliRunner call siray's real main(), exception table included."""

    name = "siray"

    def main(self, args: list[str], prog_name: str, **_: Any) -> None:
        raise SystemExit(run(list(args)))


def siray_in_process(
    *args: str, env: Mapping[str, str | None] | None = None, input: str | None = None
) -> Result:
    """`siray ARGS` in this process on pipes (not a terminal), with `env` over this process's
    environment (a None removes a variable): what the `siray` fixture runs, without its
    emulator."""
    result = CliRunner().invoke(
        _Entry(),
        list(args),
        input=input,
        env=dict(env or {}),  # type: ignore[arg-type]
        catch_exceptions=False,
    )
    return Result(result.exit_code, result.stdout, result.stderr)


def siray_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "siray_cli", *args]


def start(emu: Emulator, *args: str, env: dict[str, str] | None = None) -> Process:
    """`siray ARGS` in a process of its own against `emu`, stdout and stderr piped as text: for
    a test that signals, kills or races it."""
    return spawn(
        siray_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(emu, **(env or {})),
    )


# -- a process of its own, forked from a server that has imported siray --------------------------

# The variables a Python interpreter reads as it starts: a child of the fork server (which has
# started already) is given only an environment that agrees with the server's on these.
_INTERPRETER_VARIABLES = ("PYTHON", "LC_", "LANG")
FRESH_PROCESSES = bool(os.environ.get("TESTS_FRESH_PROCESSES"))  # 1: no fork server


def _interpreter_variables(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_INTERPRETER_VARIABLES)}


class _ForkServer:
    """tests/zygote.py, started once per test process on the first spawn (see spawn)."""

    def __init__(self) -> None:
        import atexit
        import tempfile

        self.directory = tempfile.mkdtemp(prefix="siray-zygote-")
        self.path = os.path.join(self.directory, "socket")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
        self.variables = _interpreter_variables(env)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py")), self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            raise RuntimeError("the fork server did not start")
        atexit.register(self.close)

    def close(self) -> None:
        import shutil

        if self.process.stdin is not None:
            self.process.stdin.close()  # the server ends at end of file
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


_fork_server: list[_ForkServer | None] = []


def _server_for(env: Mapping[str, str]) -> _ForkServer | None:
    if FRESH_PROCESSES:
        return None
    if not _fork_server:
        try:
            _fork_server.append(_ForkServer())
        except (OSError, RuntimeError):
            _fork_server.append(None)  # every process then starts from nothing, as it would
    server = _fork_server[0]
    if server is None or _interpreter_variables(env) != server.variables:
        return None
    return server


class Forked:
    """A `python -m siray_cli ARGS` process forked by tests/zygote.py: a real process (its own
    pid, the descriptors given, signals delivered to it), with what the tests use of a Popen."""

    def __init__(
        self,
        server: _ForkServer,
        args: list[str],
        env: Mapping[str, str],
        stdin: Any,
        stdout: Any,
        stderr: Any,
        text: bool,
        cwd: str | Path | None = None,
    ) -> None:
        import socket

        self.args = args
        self.returncode: int | None = None
        ends: list[int] = []  # the child's descriptors this process opened, closed once sent
        self.stdin: Any = None
        self.stdout: Any = None
        self.stderr: Any = None

        def child_end(given: Any, fd: int, write: bool) -> int:
            if given is None:
                return fd
            if isinstance(given, int) and given >= 0:
                return given
            if given == subprocess.DEVNULL:
                ends.append(os.open(os.devnull, os.O_RDWR))
                return ends[-1]
            if given == subprocess.PIPE:
                read, written = os.pipe()
                ours, theirs = (read, written) if write else (written, read)
                ends.append(theirs)
                stream: Any = open(ours, "rb" if write else "wb", buffering=-1)  # noqa: SIM115
                if text:
                    stream = io.TextIOWrapper(stream, write_through=not write)
                if fd == 0:
                    self.stdin = stream
                elif fd == 1:
                    self.stdout = stream
                else:
                    self.stderr = stream
                return theirs
            return int(given.fileno())

        fds = [child_end(stdin, 0, False), child_end(stdout, 1, True)]
        fds.append(fds[1] if stderr == subprocess.STDOUT else child_end(stderr, 2, True))
        request = {"argv": list(args[3:]), "env": dict(env), "cwd": str(cwd or os.getcwd())}
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._connection.connect(server.path)
            socket.send_fds(self._connection, [json.dumps(request).encode()], fds)
            self.pid = int(json.loads(self._connection.recv(4096))["pid"])
        finally:
            for fd in ends:
                os.close(fd)
        self._lock = threading.Lock()

    def _status(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is None:
                self._connection.settimeout(timeout)
                try:
                    answer = self._connection.recv(4096)
                except (BlockingIOError, TimeoutError):
                    return None
                if not answer:
                    raise RuntimeError(f"the fork server went away before {self.pid} ended")
                status = int(json.loads(answer)["status"])
                self.returncode = os.waitstatus_to_exitcode(status)
                self._connection.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        """As Popen's: called again after a timeout, it goes on reading where it was."""
        if not hasattr(self, "_read"):
            self._read: dict[str, Any] = {}
            self._readers = [
                threading.Thread(
                    target=lambda n=name, s=stream: self._read.update({n: s.read()}), daemon=True
                )
                for name, stream in (("out", self.stdout), ("err", self.stderr))
                if stream is not None
            ]
            for reader in self._readers:
                reader.start()
            if self.stdin is not None:
                if input:
                    self.stdin.write(input)
                self.stdin.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in self._readers:
            reader.join(None if deadline is None else max(0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait(None if deadline is None else max(0, deadline - time.monotonic()))
        return self._read.get("out"), self._read.get("err")

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


Process = subprocess.Popen | Forked


def siray_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a real shell whose `siray` is forked by the fork server (tests/fork_client.py):
    its PATH starts with a directory holding that command. Unchanged (the installed `siray`,
    started from nothing) with TESTS_FRESH_PROCESSES=1 or when no fork server can serve `env`."""
    server = _server_for(env)
    if server is None:
        return dict(env)
    command = Path(server.directory) / "bin" / "siray"
    if not command.exists():
        command.parent.mkdir()
        client = Path(__file__).with_name("fork_client.py").read_text(encoding="utf-8")
        command.write_text(f"#!{sys.executable} -IS\n{client}", encoding="utf-8")
        command.chmod(0o755)
    path = env.get("PATH", os.defpath)
    return {**env, "PATH": f"{command.parent}{os.pathsep}{path}", "TESTS_FORK_SERVER": server.path}


def spawn(
    args: list[str],
    env: Mapping[str, str],
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    text: bool = False,
    cwd: str | Path | None = None,
) -> Process:
    """`args` in a process of its own, as subprocess.Popen starts it; a `python -m siray_cli`
    (siray_command) is forked from the fork server instead, which has imported siray already
    (tests/zygote.py says what the child is and is not). TESTS_FRESH_PROCESSES=1 starts every
    one from nothing."""
    if args[:3] == siray_command():
        server = _server_for(env)
        if server is not None:
            return Forked(server, args, env, stdin, stdout, stderr, text, cwd)
    return subprocess.Popen(
        args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, text=text, cwd=cwd
    )


def run_process(
    args: list[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    check: bool = False,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """As subprocess.run(args, capture_output=True, text=True), spawned by `spawn` (with this
    process's environment unless `env`)."""
    process = spawn(
        args, os.environ if env is None else env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=cwd,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    completed = subprocess.CompletedProcess(args, process.wait(), out, err)
    if check:
        completed.check_returncode()
    return completed


def run_in_terminal(
    args: list[str],
    env: Mapping[str, str],
    timeout: float = 30,
    answer: tuple[str, str] | None = None,
) -> tuple[int, str]:
    """Run a command with stdin, stdout and stderr on a pseudo-terminal; return (exit, screen).

    `answer` = (prompt, text): type `text` once `prompt` has appeared on the screen.
    """
    controller, terminal = pty.openpty()
    env = {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30", **env}
    process = spawn(args, env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    screen = read_terminal(controller, process, timeout, answer)
    return process.wait(timeout=10), screen


def read_terminal(
    controller: int,
    process: Process,
    timeout: float = 30,
    answer: tuple[str, str] | None = None,
) -> str:
    """What `process` wrote on the pseudo-terminal `controller` until it closed it or ended
    (the controller is closed then); `answer` as run_in_terminal's."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
            if answer is not None and answer[0].encode() in b"".join(chunks):
                os.write(controller, answer[1].encode())
                answer = None
        elif process.poll() is not None:
            break
    os.close(controller)
    return b"".join(chunks).decode("utf-8", "replace")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def write_jobs(path: Path, *jobs: dict) -> Path:
    """A `run --batch` file: one JSON job a line."""
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    return path


# -- files siray saved ----------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), from IHDR to IEND, every CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def png_as_sent(data: bytes) -> bytes:
    """A PNG siray saved, with the record it added (its `siray` iTXt chunk) cut out: the bytes
    the server sent."""
    at = 8
    kept = [data[:8]]
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        whole = data[at : at + 12 + length]
        if not (whole[4:8] == b"iTXt" and whole[8:14] == b"siray\0"):
            kept.append(whole)
        at += 12 + length
    return b"".join(kept)


def png_pixels(data: bytes) -> bytes:
    """A PNG's image data, decompressed (its filtered scanlines): the pixels as drawn."""
    return zlib.decompress(b"".join(body for kind, body in png_chunks(data) if kind == b"IDAT"))


# -- what the emulator saw -----------------------------------------------------------------------


# The emulators' plain HTTP needs no certificate bundle: httpx would load its whole bundle for
# every request made through httpx.get (~50 ms of CPU each, several hundred times per run)
NO_CERTIFICATES = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def emulator_stats(server: Emulator) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_emulator/stats", verify=NO_CERTIFICATES)
    response.raise_for_status()
    return dict(response.json())


def release_held(emu: Emulator) -> None:
    """Clear the emulator's faults, and wait for the requests a delay or a stall held to be
    answered: a killed siray's held create lands now, and a task counted after this call
    counts it (not only some of the time)."""
    emu.state.faults.clear()
    emu.state.wait_answered(timeout=10)


def created(emu: Emulator, prompt: str | None = None) -> int:
    """Tasks the emulator created (with this prompt): other tests share the emulator."""
    if prompt is None:
        return int(emulator_stats(emu)["tasks_created"])
    return sum(1 for task in emu.state.tasks.values() if task.body.get("prompt") == prompt)


def last_body(emu: Emulator) -> dict:
    """The request body of the task the emulator created last."""
    return max(emu.state.tasks.values(), key=lambda t: t.created).body


# -- what the history holds ----------------------------------------------------------------------


def database(home: Path) -> Path:
    """The history database under the isolated home (the `isolated_environment` fixture)."""
    return home / "data" / DB_NAME


def rows(home: Path) -> list[dict]:
    """Every history row, oldest first; none while there is no history yet."""
    if not database(home).exists():
        return []
    with sqlite3.connect(database(home)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM tasks ORDER BY id")]


def recorded_ids(home: Path) -> list[str]:
    """The task ids in the history, read while another process may be creating it."""
    try:
        return [r["task_id"] for r in rows(home) if r["task_id"]]
    except sqlite3.OperationalError:  # not made yet ("no such table")
        return []
