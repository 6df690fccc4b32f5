"""Fixtures: every test drives the real `siray` entry point against the real emulator over
loopback HTTP, with config, data and cache directories in a temporary place and no SIRAY_*
variables leaking in from the machine."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from siray_cli.emulator.server import EMULATOR_API_KEY, Emulator, EmulatorConfig
from siray_cli.main import run as main

TASK_SECONDS = 0.1
POLL_INTERVAL = "0.1"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile siray_cli's bytecode once, as a wheel install has it: with PYTHONDONTWRITEBYTECODE
    set (as on CI machines), every `siray` subprocess would otherwise compile ~70 modules again
    (about 0.1 s of CPU each time, a few hundred times per run)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller did it before starting the workers
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parent.parent / "siray_cli", quiet=2)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SIRAY_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    for name, sub in (
        ("SIRAY_CONFIG_DIR", "config"),
        ("SIRAY_DATA_DIR", "data"),
        ("SIRAY_CACHE_DIR", "cache"),
    ):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # retries keep their count and order, but back off in milliseconds instead of seconds
    monkeypatch.setenv("SIRAY_RETRY_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(port=0, task_seconds=TASK_SECONDS, seed=7)) as server:
        yield server


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, with no faults left over from another test."""
    emulator.state.faults.clear()
    yield emulator
    emulator.state.faults.clear()


@pytest.fixture
def make_emulator() -> Iterator[Any]:
    started: list[Emulator] = []

    def make(**settings: Any) -> Emulator:
        settings.setdefault("task_seconds", TASK_SECONDS)
        server = Emulator(EmulatorConfig(port=0, **settings)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@dataclass
class Result:
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


class _Entry:
    """Lets click's CliRunner call siray's real main(), exception table included."""

    name = "siray"

    def main(self, args: list[str], prog_name: str, **_: Any) -> None:
        raise SystemExit(main(list(args)))


def emulator_env(server: Emulator, **extra: str) -> dict[str, str]:
    env = server.environment()
    env["SIRAY_RETRY_BACKOFF"] = "0.01"
    # a fixed 0.1 s beat instead of the adaptive schedule's first look after 1 s: a test that is
    # about the schedule (or reads where poll_interval came from) unsets it
    env["SIRAY_POLL_INTERVAL"] = POLL_INTERVAL
    env.update(extra)
    return env


@pytest.fixture
def siray(emu: Emulator) -> Any:
    """Run `siray ARGS` in-process on pipes (not a terminal) against the shared emulator."""

    def invoke(
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        server: Emulator | None = None,
    ) -> Result:
        full_env: dict[str, str | None] = dict(emulator_env(server or emu))
        full_env.update(env or {})
        runner = CliRunner()
        result = runner.invoke(
            _Entry(),
            list(args),
            input=input,
            env=full_env,  # type: ignore[arg-type]
            catch_exceptions=False,
        )
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


def subprocess_env(server: Emulator, **extra: str) -> dict[str, str]:
    # the isolated config, data and cache directories stay; any other SIRAY_* does not
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_") or k.endswith("_DIR")}
    env.update(emulator_env(server))
    env.update(extra)
    return env


def siray_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "siray_cli", *args]


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
    process = subprocess.Popen(
        args, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True
    )
    os.close(terminal)
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
    code = process.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace")


def emulator_stats(server: Emulator) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_emulator/stats")
    response.raise_for_status()
    return dict(response.json())


__all__ = [
    "EMULATOR_API_KEY",
    "Result",
    "emulator_stats",
    "run_in_terminal",
    "siray_command",
    "subprocess_env",
]
