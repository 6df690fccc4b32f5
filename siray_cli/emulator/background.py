"""An emulator for a shell session: `siray emulator start` launches one in a process of its own
(a session of its own, no terminal, stdin from /dev/null, stdout and stderr to a log), `stop`
ends it and `status` finds it. They share a private directory, $SIRAY_STATE_DIR/emulator (0700,
its files 0600): the options asked for, the log, the throwaway history the emulator's commands
record their tasks in, and the state file the emulator writes once it listens (its PID, port,
URL and the environment that points siray at it).

A PID is signalled only once it is proved to be ours: the emulator on the recorded port answers
`/_emulator/info` with that PID, or, if it no longer answers, /proc says that process runs
`siray emulator daemon` for this directory. A PID since recycled by another process is never
signalled: its state is stale, and forgotten.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from siray_cli.errors import EmulatorStartError, UsageError
from siray_cli.storage.private import FILE_MODE, private_dir, state_dir

STATE = "emulator.json"  # written by the emulator once it listens
OPTIONS = "options.json"  # what `start` asked for, read by the emulator it launches
LOG = "emulator.log"
HISTORY = "history"  # the SIRAY_DATA_DIR it exports: its tasks never enter the user's history
START_TIMEOUT = 30.0  # seconds `start` waits for the emulator to answer
DAEMON = ("emulator", "daemon")  # the hidden command the launched process runs


@dataclass(frozen=True)
class Running:
    """What the emulator recorded of itself."""

    pid: int
    url: str
    port: int
    started_at: float
    environment: dict[str, str]
    options: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def home(env: Mapping[str, str] | None = None) -> Path:
    return state_dir(env) / "emulator"


def log_path(directory: Path) -> Path:
    return directory / LOG


def history_dir(directory: Path) -> Path:
    return directory / HISTORY


def _write_private(path: Path, text: str) -> None:
    """Atomically, 0600 from the start: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), FILE_MODE)  # the mode given to open passes through the umask
        file.write(text)
    os.replace(temporary, path)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One `start` or `stop` at a time: two starts at once would launch two emulators."""
    import fcntl

    private_dir(directory.parent)
    private_dir(directory)
    descriptor = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(descriptor)


def record(directory: Path, running: Running) -> None:
    """The emulator's own note of where it is (the launched process calls it once it listens)."""
    _write_private(directory / STATE, json.dumps(running.to_json()))


def read_options(directory: Path) -> dict[str, Any]:
    options: dict[str, Any] = json.loads((directory / OPTIONS).read_text(encoding="utf-8"))
    return options


def _read(directory: Path) -> Running | None:
    try:
        found = json.loads((directory / STATE).read_text(encoding="utf-8"))
        return Running(
            pid=int(found["pid"]),
            url=str(found["url"]),
            port=int(found["port"]),
            started_at=float(found["started_at"]),
            environment={str(k): str(v) for k, v in found["environment"].items()},
            options=dict(found["options"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def forget(directory: Path, pid: int | None = None) -> None:
    """Remove the state and the throwaway history (the log stays, for a post-mortem); with `pid`,
    only if the state is that process's."""
    if pid is not None:
        running = _read(directory)
        if running is None or running.pid != pid:
            return
    for name in (STATE, OPTIONS):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    shutil.rmtree(history_dir(directory), ignore_errors=True)


# -- asking the emulator and the system --------------------------------------------------------


def ask(running: Running, path: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """GET `path` of the emulator; None when nothing (or something else) answers."""
    parts = urlsplit(running.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or running.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        cafile = running.environment.get("SSL_CERT_FILE")
        try:
            context = ssl.create_default_context(cafile=cafile)
        except OSError:  # its certificate is gone: it is not serving any more
            return None
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read(1 << 20)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    if response.status != 200:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # a child of this very process: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return _proc_state(pid) != "Z"  # a zombie has ended; its parent has not looked yet


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _runs_our_daemon(pid: int, directory: Path) -> bool:
    """Whether /proc says `pid` runs `siray emulator daemon DIRECTORY` (False where no /proc)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [word.decode("utf-8", "replace") for word in arguments]
    at = [i for i in range(len(words) - 1) if tuple(words[i : i + 2]) == DAEMON]
    return bool(at) and str(directory) in words[at[0] + 2 :]


def _ours(running: Running, directory: Path) -> bool:
    info = ask(running, "/_emulator/info")
    if info is not None:
        return info.get("pid") == running.pid
    return _runs_our_daemon(running.pid, directory)  # alive, but not answering (stopped, busy)


def find(directory: Path) -> tuple[Running | None, Running | None]:
    """(the emulator running, None), or (None, the stale state just forgotten, if any)."""
    running = _read(directory)
    if running is None:
        if (directory / STATE).exists():
            forget(directory)
        return None, None
    if _alive(running.pid) and _ours(running, directory):
        return running, None
    forget(directory)
    return None, running


# -- start and stop -----------------------------------------------------------------------------


def launch(
    directory: Path,
    options: dict[str, Any],
    command: list[str],
    environ: Mapping[str, str],
    timeout: float = START_TIMEOUT,
) -> Running:
    """Start `command DIRECTORY` detached, and return once the emulator it runs answers."""
    forget(directory)
    private_dir(history_dir(directory))
    _write_private(directory / OPTIONS, json.dumps(options))
    log = log_path(directory)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    try:
        # its own session: no terminal, no signal meant for the shell's job; none of the
        # caller's descriptors: `eval "$(siray emulator start)"` returns as soon as we exit
        process = subprocess.Popen(
            [*command, str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=descriptor,
            stderr=descriptor,
            start_new_session=True,
            close_fds=True,
            cwd=directory,
            env={**environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(descriptor)
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            forget(directory)
            raise _failed(code, log)
        running = _read(directory)
        if running is not None and running.pid == process.pid:
            info = ask(running, "/_emulator/info")
            if info is not None and info.get("pid") == process.pid:
                return running
        if time.monotonic() > deadline:
            _signal(process.pid, signal.SIGKILL)
            process.wait()
            forget(directory)
            raise EmulatorStartError(
                f"the emulator did not answer within {timeout:g} s",
                hint=f"its log: {log}",
            )
        time.sleep(0.02)


def _failed(code: int, log: Path) -> Exception:
    """The launched emulator's own error (the last `error:` line of its log), as one line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [line for line in lines if line][-20:]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    hints = [line.removeprefix("hint: ") for line in lines if line.startswith("hint: ")]
    said = errors[-1] if errors else (lines[-1] if lines else f"it exited with status {code}")
    hint = f"{hints[-1]}; its log: {log}" if hints else f"its log: {log}"
    if code == 2:  # a usage error of its own: the port is taken, say
        return UsageError(f"the emulator did not start: {said}", hint=hint)
    return EmulatorStartError(f"the emulator did not start: {said}", hint=hint)


def _signal(pid: int, signum: int) -> None:
    """`signum` to the emulator's process group (it leads one: anything it started goes too)."""
    with contextlib.suppress(ProcessLookupError):
        try:
            leads = os.getpgid(pid) == pid
        except ProcessLookupError:
            return
        if leads:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stop(directory: Path, timeout: float) -> tuple[Running | None, Running | None]:
    """(the emulator stopped, None), or (None, the stale state forgotten, if any).

    SIGTERM first (it closes its servers and removes its certificate), SIGKILL after `timeout`."""
    with locked(directory):
        running, stale = find(directory)
        if running is None:
            return None, stale
        _signal(running.pid, signal.SIGTERM)
        if not _gone(running.pid, timeout):
            _signal(running.pid, signal.SIGKILL)
            _gone(running.pid, 5.0)
        forget(directory)
    return running, None
