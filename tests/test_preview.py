"""`run`'s inline previews (the Kitty graphics protocol, Sixel) on terminals that draw images, and
`--open` / `siray open`, which hand saved outputs to the system's viewer (a fake xdg-open here:
the one thing that cannot run on this machine)."""

from __future__ import annotations

import os
import pty
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from helpers import (
    CREATE,
    GEMINI_IMAGE,
    STATUS,
    emulator_stats,
    read_terminal,
    run_in_terminal,
    siray_command,
    spawn,
    subprocess_env,
    wait_for,
)
from hostile import HostileServer, status_document, task_created

KITTY = "\x1b_G"  # a Kitty graphics protocol message
SIXEL = "\x1bP"  # a Sixel image (a DCS string)
LINK = "\x1b]8;"  # an OSC 8 hyperlink
VIDEO = "google/veo-3.1-t2v"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def file_gets(emu) -> int:
    return sum(n for route, n in emulator_stats(emu)["requests"].items() if "/files/" in route)


def on_terminal(emu, *args: str, **env: str) -> tuple[int, str]:
    return run_in_terminal(siray_command(*args), subprocess_env(emu, **env))


@pytest.mark.parametrize(
    ("env", "drawn"),
    [({"TERM": "xterm-kitty"}, KITTY), ({"TERM_PROGRAM": "iTerm.app"}, SIXEL)],
    ids=["kitty", "iterm2"],
)
def test_a_terminal_that_draws_images_gets_a_preview_under_the_path(emu, out, env, drawn):
    code, screen = on_terminal(emu, "run", GEMINI_IMAGE, "a fox", "-o", str(out), **env)
    assert code == 0, screen
    (saved,) = out.iterdir()
    assert drawn in screen
    assert screen.index(saved.name) < screen.index(drawn)  # under its path
    assert f"{LINK}id=" in screen and saved.resolve().as_uri() in screen  # the path, a link


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ((), {"TERM": "xterm-256color"}),  # a terminal not known to draw images
        ((), {"CI": "true"}),
        (("--json",), {}),
        (("-q",), {}),
        (("--no-preview",), {}),
        ((), {"SIRAY_PREVIEW": "never"}),
        ((), {"TMUX": "/tmp/tmux-0/default,1,0"}),
    ],
    ids=["unknown-terminal", "ci", "json", "quiet", "no-preview", "never", "tmux"],
)
def test_no_preview_where_none_is_wanted(emu, out, args, env):
    env = {"TERM": "xterm-kitty", **env}
    global_args = [a for a in args if a in ("--json", "-q")]
    run_args = [a for a in args if a not in global_args]
    code, screen = on_terminal(
        emu, *global_args, "run", GEMINI_IMAGE, "a fox", "-o", str(out), *run_args, **env
    )
    assert code == 0, screen
    assert len(list(out.iterdir())) == 1
    assert KITTY not in screen and SIXEL not in screen


def test_no_preview_on_a_pipe(siray, out):
    result = siray("run", GEMINI_IMAGE, "a fox", "-o", str(out), env={"TERM": "xterm-kitty"})
    assert result.exit_code == 0, result
    assert result.lines == [str(next(out.iterdir()))]
    assert "\x1b" not in result.stdout + result.stderr


def test_stdout_keeps_only_the_path_while_the_terminal_gets_the_image(emu, out):
    """`siray run ... -o out/ | xargs ...` on kitty: the image is drawn on stderr's terminal."""
    controller, terminal = pty.openpty()
    env = subprocess_env(emu, TERM="xterm-kitty", COLUMNS="100", LINES="30")
    process = spawn(
        siray_command("run", GEMINI_IMAGE, "a fox", "-o", str(out)), env,
        stdin=terminal, stdout=subprocess.PIPE, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    screen = read_terminal(controller, process)  # first: the image is larger than its buffer
    stdout = process.stdout.read()  # type: ignore[union-attr]
    assert process.wait(timeout=30) == 0, screen
    (saved,) = out.iterdir()
    assert stdout.decode() == f"{saved}\n"
    assert KITTY in screen


def test_without_o_the_image_is_fetched_for_the_preview_only(emu, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    before = file_gets(emu)
    code, screen = on_terminal(
        emu, "run", GEMINI_IMAGE, "a fox", TERM="xterm-kitty", TMPDIR=str(temporary)
    )
    assert code == 0, screen
    assert KITTY in screen and "/redirect/" in screen  # the URL, then its image
    assert file_gets(emu) == before + 1
    assert list(temporary.iterdir()) == []  # the temporary file is gone
    # no preview to show: nothing is downloaded
    code, screen = on_terminal(emu, "run", GEMINI_IMAGE, "a fox", TERM="xterm-256color")
    assert code == 0, screen
    assert file_gets(emu) == before + 1


def test_a_video_is_a_link_and_is_not_fetched(emu):
    before = file_gets(emu)
    code, screen = on_terminal(emu, "run", VIDEO, "waves", TERM="xterm-kitty")
    assert code == 0, screen
    assert LINK in screen and "/redirect/" in screen
    assert KITTY not in screen
    assert file_gets(emu) == before


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG whose header declares `width` x `height` pixels: a few bytes of image
    data, which a decoder that believed the header would inflate to 4 x width x height bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (png_declaring(100_000, 100_000), "too many pixels to preview"),
        (b"<html>not an image at all</html>", "not an image siray previews"),
    ],
    ids=["decompression-bomb", "not-a-png"],
)
def test_a_hostile_image_is_skipped_with_a_line(out, isolated_environment, body, reason):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_hostile"))
    server.on(
        "GET",
        STATUS.format("image_hostile"),
        status_document("image_hostile", "SUCCESS", outputs=[server.url + "/out.png"]),
    )

    def serve(handler) -> None:  # type: ignore[no-untyped-def]
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server.on("GET", "/out.png", serve)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_") or k.endswith("_DIR")}
    env.update(server.env(), TERM="xterm-kitty", SIRAY_POLL_INTERVAL="0.1")
    with server.running():
        started = time.monotonic()
        code, screen = run_in_terminal(
            siray_command("run", GEMINI_IMAGE, "x", "--no-validate", "-o", str(out)), env
        )
    assert code == 0, screen
    assert time.monotonic() - started < 20
    (saved,) = out.iterdir()
    notes = [line for line in screen.splitlines() if line.startswith("no preview of ")]
    assert len(notes) == 1 and reason in notes[0], screen
    assert saved.name in notes[0]
    assert KITTY not in screen and "Traceback" not in screen


# --- --open and siray open ----------------------------------------------------------------------


@pytest.fixture
def viewer(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A fake xdg-open first on PATH, that appends each argument it is given to a file."""
    bin_dir, log = tmp_path / "bin", tmp_path / "opened.log"
    bin_dir.mkdir()
    script = bin_dir / "xdg-open"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def opened(log: Path, count: int) -> list[str]:
    """The arguments the viewer got, once `count` of them have come (a moment more: none else)."""
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= count, "the viewer")
    time.sleep(0.3)
    return log.read_text().splitlines()


def test_open_launches_the_viewer_once_per_file(emu, tmp_path, viewer):
    env, log = viewer
    out = tmp_path / "out"
    code, screen = on_terminal(emu, "run", GEMINI_IMAGE, "a fox", "-o", str(out), "--open", **env)
    assert code == 0, screen
    (saved,) = out.iterdir()
    assert opened(log, 1) == [str(saved.resolve())]
    task_id = saved.name.split("_1.")[0]

    log.unlink()
    again_dir = tmp_path / "again"
    code, screen = on_terminal(emu, "status", task_id, "-o", str(again_dir), "--open", **env)
    assert code == 0, screen
    (again,) = again_dir.iterdir()
    assert opened(log, 1) == [str(again.resolve())]

    log.unlink()
    third = tmp_path / "third"
    code, screen = on_terminal(emu, "download", task_id, task_id, "-o", str(third), "--open", **env)
    assert code == 0, screen
    assert opened(log, 1) == [str(next(third.iterdir()).resolve())]

    log.unlink()
    code, screen = on_terminal(emu, "open", task_id, **env)
    assert code == 0, screen
    assert opened(log, 1) == [str(next(third.iterdir()).resolve())]  # the latest saved


def test_open_is_refused_off_a_terminal(siray, emu, out, viewer):
    env, log = viewer
    before = emulator_stats(emu)["tasks_created"]
    result = siray("run", GEMINI_IMAGE, "a fox", "-o", str(out), "--open", env=env)
    assert result.exit_code == 2, result
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--open starts a viewer" in result.stderr and "SIRAY_OPEN=always" in result.stderr
    assert emulator_stats(emu)["tasks_created"] == before  # refused before anything was paid
    created = siray("generate", GEMINI_IMAGE, "a fox").stdout.strip()
    assert siray("open", created, env=env).exit_code == 2
    time.sleep(0.3)
    assert not log.exists()

    forced = {**env, "SIRAY_OPEN": "always"}
    result = siray("run", GEMINI_IMAGE, "a fox", "-o", str(out), "--open", env=forced)
    assert result.exit_code == 0, result
    assert result.lines == [str(next(out.iterdir()))]  # the viewer's chatter is not data
    assert opened(log, 1) == [str(next(out.iterdir()).resolve())]


def test_open_without_saved_files_opens_the_urls(siray, emu, viewer):
    env, log = viewer
    forced = {**env, "SIRAY_OPEN": "always"}
    result = siray("--no-history", "run", GEMINI_IMAGE, "a fox", "--open", env=forced)
    assert result.exit_code == 0, result
    (url,) = result.lines
    assert opened(log, 1) == [url]
    log.unlink()
    task_id = siray("generate", GEMINI_IMAGE, "an owl").stdout.strip()
    assert siray("status", task_id, "--wait").exit_code == 0
    result = siray("open", task_id, env=forced)
    assert result.exit_code == 0, result
    assert opened(log, 1) == result.lines and result.lines[0].startswith("http")
