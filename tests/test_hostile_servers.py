"""A hostile or broken server can neither hang siray, flood its memory, write outside its
directory, forge its output, nor make it print a secret; each test drives the real entry point
against a small fake server (tests/hostile.py) or the emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import CREATE, STATUS, rows, run_in_terminal, siray_command
from helpers import GEMINI_IMAGE as MODEL
from hostile import (
    HostileServer,
    gzip_bomb,
    send_json,
    status_document,
    task_created,
    trickle,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
HOSTILE = (
    "\x1b[2J\x1b]0;pwned\x07[bold]red[/] \r\nerror: forged line [/]"
    "\u202egnp.exe\u2066hidden\u2069\u200bzero-width"  # reordered and hidden text
)


def png(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(PNG)))
    handler.end_headers()
    handler.wfile.write(PNG)


def test_server_text_reaches_a_pipe_sanitized_and_json_exact(siray):
    server = HostileServer()
    server.on(
        "GET",
        STATUS.format("image_evil"),
        status_document("image_evil", "FAILURE", fail_reason=HOSTILE, progress=100),
    )
    with server.running():
        result = siray("status", "image_evil", env=server.env())
        as_json = siray("status", "image_evil", "--json", env=server.env())
    assert result.exit_code == 0, result
    everything = result.stdout + result.stderr
    assert "\x1b" not in everything and "\r" not in everything and "\x07" not in everything
    assert not any(c in everything for c in "\u202e\u2066\u2069\u200b")
    assert "\\u202egnp.exe" in result.stdout  # shown as an escape
    assert len(result.stdout.splitlines()) == 1  # no forged line
    assert not any(line.startswith("error: forged") for line in everything.splitlines())
    assert json.loads(as_json.stdout)["fail_reason"] == HOSTILE  # exact in JSON


def test_server_markup_on_a_terminal_is_shown_not_interpreted(isolated_environment):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_markup"))
    server.on("GET", STATUS.format("image_markup"), status_document("image_markup", "[/bold]"))
    with server.running():
        env = {**os.environ, **server.env()}
        code, screen = run_in_terminal(
            siray_command(
                "run", MODEL, "x", "--no-validate", "--timeout", "0.6", "--poll-interval", "0.1"
            ),
            env,
        )
    assert code == 4, screen  # it waited, drew the odd status, and gave up as asked
    assert "Traceback" not in screen and "MarkupError" not in screen
    assert "[/bold]" in screen


def test_an_unusable_task_id_from_a_create_is_uncertain_not_a_file(siray, isolated_environment):
    server = HostileServer()
    server.on("POST", CREATE, task_created("../../etc/passwd"))
    with server.running():
        result = siray("run", MODEL, "x", "--no-validate", "-o", "out", env=server.env())
    assert result.exit_code == 5, result
    assert "unusable task id" in result.stderr and "may have been created" in result.stderr
    (record,) = rows(isolated_environment)
    assert record["task_id"] is None and record["status"] == "UNCERTAIN"
    assert not Path("out").exists() or list(Path("out").iterdir()) == []


def test_the_id_asked_for_is_kept_whatever_the_answer_says(siray, isolated_environment):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_asked"))
    server.on(
        "GET",
        STATUS.format("image_asked"),
        status_document("../image_other", "SUCCESS", outputs=[server.url + "/file.png"]),
    )
    server.on("GET", "/file.png", png)
    with server.running():
        result = siray("run", MODEL, "x", "--no-validate", "-o", "out", "--json", env=server.env())
    assert result.exit_code == 0, result
    assert result.json()["task_id"] == "image_asked"
    assert result.json()["files"] == [str(Path("out") / "image_asked_1.png")]
    (record,) = rows(isolated_environment)
    assert record["task_id"] == "image_asked" and record["status"] == "SUCCESS"


def test_a_trickled_answer_cannot_outlast_the_timeout(siray):
    server = HostileServer()
    server.on("GET", STATUS.format("image_slow"), trickle(status_document("image_slow", "QUEUED")))
    with server.running():
        started = time.monotonic()
        # the wait ends at --timeout plus a last look of at most the read timeout
        waited = siray(
            "status", "image_slow", "--wait", "--timeout", "0.5", "--poll-interval", "0.1",
            env={**server.env(), "SIRAY_READ_TIMEOUT": "0.4"},
        )  # fmt: skip
        waited_for = time.monotonic() - started
        started = time.monotonic()
        # a single answer ends at twice the read timeout, however slowly its bytes keep coming
        once = siray("status", "image_slow", env={**server.env(), "SIRAY_READ_TIMEOUT": "0.3"})
        once_for = time.monotonic() - started
    assert waited.exit_code == 4, waited
    assert waited_for < 1.6, waited_for
    assert once.exit_code == 5, once
    assert "no complete answer in time" in once.stderr
    assert once_for < 1.6, once_for


def test_a_gzip_bomb_is_refused_without_filling_memory(siray):
    server = HostileServer()
    server.on("GET", STATUS.format("image_bomb"), gzip_bomb(200 * 1024 * 1024))
    with server.running():
        result = siray("status", "image_bomb", env=server.env())
    assert result.exit_code == 5, result
    assert "an answer over" in result.stderr


def test_a_key_echoed_past_the_cut_is_still_scrubbed(siray):
    key = "sk-hostile-test-key-0123456789"
    server = HostileServer()
    echo = {"error": {"message": "x" * 190 + f" your key is {key}; its start {key[:12]}"}}
    server.on("GET", STATUS.format("image_echo"), lambda h: send_json(h, echo, 400))
    with server.running():
        result = siray("status", "image_echo", "--json", env=server.env())
    everything = result.stdout + result.stderr
    assert result.exit_code == 2, result
    for start in range(len(key) - 8 + 1):
        assert key[start : start + 8] not in everything.replace("***", "")


def test_a_job_that_fails_in_an_unexpected_way_fails_alone(siray, tmp_path):
    """An output URL that cannot even be parsed raises no API error: that job fails, with its
    task id, the others still run, and the batch exits 1."""
    server = HostileServer()
    ids = iter(["image_bad", "image_good"])
    server.on("POST", CREATE, lambda handler: task_created(next(ids))(handler))  # noqa: PLW0108
    server.on(
        "GET",
        STATUS.format("image_bad"),
        status_document("image_bad", "SUCCESS", outputs=["http://[::1"]),
    )
    server.on(
        "GET",
        STATUS.format("image_good"),
        status_document("image_good", "SUCCESS", outputs=[server.url + "/file.png"]),
    )
    server.on("GET", "/file.png", png)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "bad", "name": "bad"}\n{"prompt": "good", "name": "good"}\n')
    with server.running():
        result = siray(
            "run", "--batch", str(jobs), "-m", MODEL, "--no-validate", "--concurrency", "1",
            "-o", str(tmp_path / "out"), "--poll-interval", "0.1", env=server.env(),
        )  # fmt: skip
    assert result.exit_code == 1, result
    results = {r["name"]: r for r in map(json.loads, result.lines)}
    assert results["bad"]["status"] == "ERROR" and results["bad"]["task_id"] == "image_bad"
    assert results["good"]["status"] == "SUCCESS"
    assert (tmp_path / "out" / "good.png").read_bytes() == PNG


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_names_the_file_the_task_and_how_to_fetch_later(siray, emu, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(tiny)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (tiny / "filler").write_bytes(b"\0" * 4096)
        result = siray("run", MODEL, "fills the disk", "-o", str(tiny), "--poll-interval", "0.1")
        leftovers = sorted(p.name for p in tiny.iterdir())
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
    assert result.exit_code == 5, result
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    match = re.search(r"cannot write the output of (image_\w+) to ", result.stderr)
    assert match, result.stderr
    assert f"siray status {match.group(1)}" in result.stderr
    assert leftovers == ["filler"]  # no partial file


def test_a_download_without_a_size_is_capped(siray, tmp_path):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_big"))
    server.on(
        "GET",
        STATUS.format("image_big"),
        status_document("image_big", "SUCCESS", outputs=[server.url + "/big.png"]),
    )

    def endless(handler) -> None:  # no Content-Length: the body ends when the server says
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.end_headers()
        for _ in range(64):
            handler.wfile.write(b"\0" * 65536)

    server.on("GET", "/big.png", endless)
    env = {**server.env(), "SIRAY_DOWNLOAD_MAX_SIZE": "1000000"}
    with server.running():
        result = siray("run", MODEL, "x", "--no-validate", "-o", str(tmp_path / "out"), env=env)
    assert result.exit_code == 5, result
    assert "more than 1000000 bytes (the download_max_size setting)" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def trickled_file(handler) -> None:  # type: ignore[no-untyped-def]
    """A file announced as 10 MB that comes one byte every 0.05 s: no single read times out."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(10_000_000))
    handler.end_headers()
    try:
        for _ in range(400):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:  # siray hung up
        pass


def test_a_trickled_download_is_given_up_on(siray, isolated_environment):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_trickled"))
    server.on(
        "GET",
        STATUS.format("image_trickled"),
        status_document("image_trickled", "SUCCESS", outputs=[server.url + "/slow.png"]),
    )
    server.on("GET", "/slow.png", trickled_file)
    with server.running():
        started = time.monotonic()
        result = siray(
            "run", MODEL, "x", "--no-validate", "-o", "out",
            env={**server.env(), "SIRAY_READ_TIMEOUT": "0.5"},
        )  # fmt: skip
        took = time.monotonic() - started
    assert result.exit_code == 5, result
    assert "stalled" in result.stderr and "siray download image_trickled" in result.stderr
    assert took < 5  # about one read timeout, not the 10 MB at 20 bytes a second
    assert not Path("out").exists() or list(Path("out").iterdir()) == []
