"""Fixes from a review: a request's retries share one deadline, downloads are not inflated
without bound, the config file is read with a size cap, a key no header can carry is refused
wherever it is read, a Higgsfield cancel is told as the server answered it, and a refused
loopback connection always ends as "nothing listens". Each test drives the real entry point
against the emulator or a small fake server (tests/hostile.py)."""

from __future__ import annotations

import gzip
import os
import resource
import socket
import subprocess
import time
from http.server import BaseHTTPRequestHandler

import pytest
from helpers import CREATE, HF, HF_IMAGE, STATUS, siray_command, subprocess_env
from helpers import GEMINI_IMAGE as MODEL
from hostile import HostileServer, encoded, status_document, task_created

from siray_cli.emulator.faults import Fault

CATALOGUE = "/api/model-verse/models"
PNG = b"\x89PNG\r\n\x1a\n"


def refusing(status: int, retry_after: str | None = None, after: float = 0.0):
    """An error answer, `after` seconds late, with a Retry-After when given."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(after)
        body = b'{"error": {"message": "busy"}}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


LOOK = ("GET", STATUS.format("image_busy"), 503, ["status", "image_busy"])
REQUESTS = [
    LOOK,
    ("GET", CATALOGUE, 503, ["models", "list", "--refresh"]),
    ("POST", CREATE, 429, ["generate", MODEL, "x", "--no-validate"]),
]


@pytest.mark.parametrize(
    ("method", "path", "status", "args"), REQUESTS, ids=["status", "catalogue", "create"]
)
def test_a_retry_after_beyond_the_request_deadline_is_not_waited_for(
    siray, method, path, status, args
):
    # a read timeout of 0.5 s gives each request 1 s in all: a 1 s Retry-After would end past
    # it, so the first answer stands (it used to be five pauses of a second, one per retry)
    server = HostileServer()
    server.on(method, path, refusing(status, retry_after="1"))
    with server.running():
        started = time.monotonic()
        result = siray(*args, env={**server.env(), "SIRAY_READ_TIMEOUT": "0.5"})
        took = time.monotonic() - started
    assert result.exit_code == 5, result
    assert f"HTTP {status}" in result.stderr and "Traceback" not in result.stderr
    assert server.requests.count((method, path)) == 1, server.requests
    assert took < 2.5, took


def test_slow_failing_answers_are_retried_only_within_the_request_deadline(siray):
    # each 503 comes 0.3 s late; with a read timeout of 0.4 s the look has 0.8 s in all: two
    # answers and a third attempt cut short, not six attempts (1.8 s)
    method, path, _status, args = LOOK
    server = HostileServer()
    server.on(method, path, refusing(503, after=0.3))
    with server.running():
        started = time.monotonic()
        result = siray(*args, env={**server.env(), "SIRAY_READ_TIMEOUT": "0.4"})
        took = time.monotonic() - started
    assert result.exit_code == 5, result
    assert "Traceback" not in result.stderr
    assert server.requests.count((method, path)) <= 3, server.requests
    assert took < 1.6, took


def test_an_answer_that_never_comes_is_waited_for_once_per_request_deadline(siray):
    # no answer at all: the attempts together take the request's deadline (twice the read
    # timeout), not a read timeout each
    method, path, _status, args = LOOK
    server = HostileServer()
    server.on(method, path, lambda handler: time.sleep(3))
    with server.running():
        started = time.monotonic()
        result = siray(*args, env={**server.env(), "SIRAY_READ_TIMEOUT": "0.25"})
        took = time.monotonic() - started
    assert result.exit_code == 5, result
    assert server.requests.count((method, path)) <= 3, server.requests
    assert took < 1.2, took


def gzipped_file(size: int, asked: list[str]):
    """`size` zero bytes as a gzip-compressed PNG (a few KB per ten MB on the wire), sent
    whatever was asked for; the Accept-Encoding of each request is noted in `asked`."""
    return encoded(gzip.compress(b"\0" * size, compresslevel=9), "image/png", "gzip", asked)


def finished_task_with(server: HostileServer, task_id: str, path: str, answer) -> None:
    server.on("POST", CREATE, task_created(task_id))
    server.on(
        "GET",
        STATUS.format(task_id),
        status_document(task_id, "SUCCESS", outputs=[server.url + path]),
    )
    server.on("GET", path, answer)


@pytest.mark.parametrize(
    ("size", "env", "why"),
    [
        (50 * 1024 * 1024, {"SIRAY_DOWNLOAD_MAX_SIZE": "1000000"}, "download_max_size"),
        (20 * 1024 * 1024, {}, "100 times as many"),  # the default 4 GiB is no bound here
    ],
    ids=["past download_max_size", "past the inflation bound"],
)
def test_a_gzip_bomb_download_is_refused_and_leaves_nothing(siray, tmp_path, size, env, why):
    asked: list[str] = []
    server = HostileServer()
    finished_task_with(server, "image_bomb", "/bomb.png", gzipped_file(size, asked))
    out = tmp_path / "out"
    with server.running():
        result = siray(
            "run", MODEL, "x", "--no-validate", "-o", str(out), env={**server.env(), **env}
        )
    assert asked and set(asked) == {"identity"}, asked
    assert result.exit_code == 5, result
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "/bomb.png failed" in error and why in error, result
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []  # no file, and no temporary one either


def compressed_png(body: bytes, encoding: str):
    return encoded(body, "image/png", encoding)


def test_a_file_compressed_anyway_is_saved_inflated(siray, tmp_path):
    picture = PNG + os.urandom(300_000)  # a picture hardly compresses: well within the bound
    server = HostileServer()
    finished_task_with(
        server, "image_zipped", "/zipped.png", compressed_png(gzip.compress(picture), "gzip")
    )
    with server.running():
        result = siray(
            "run", MODEL, "x", "--no-validate", "-o", str(tmp_path / "out"), env=server.env()
        )
    assert result.exit_code == 0, result
    assert (tmp_path / "out" / "image_zipped_1.png").read_bytes() == picture


def test_a_file_in_an_encoding_siray_does_not_unpack_is_refused(siray, tmp_path):
    server = HostileServer()
    finished_task_with(server, "image_br", "/br.png", compressed_png(b"\x1b\x03\x00\xf8", "br"))
    with server.running():
        result = siray(
            "run", MODEL, "x", "--no-validate", "-o", str(tmp_path / "out"), env=server.env()
        )
    assert result.exit_code == 5, result
    assert "compressed it as 'br'" in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def errors_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_config_file_past_the_size_cap_is_refused_in_one_line(siray, isolated_environment):
    config = isolated_environment / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[profiles.default]\ntimeout = 45\n" + "# padding\n" * 200_000)  # 2 MB
    config.chmod(0o600)
    result = siray("config", "list")
    assert result.exit_code == 2, result
    (error,) = errors_of(result)
    assert f"config file {config} is larger than 1 MiB" in error, result
    assert "Traceback" not in result.stderr


def _at_most_a_gigabyte() -> None:
    # before the cap, reading /dev/zero whole ended only when memory did: here, at 1 GiB
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_config_file_linked_to_dev_zero_is_refused(emu, isolated_environment):
    config = isolated_environment / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.symlink_to("/dev/zero")
    result = subprocess.run(
        siray_command("status", "image_abc"),
        env=subprocess_env(emu),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        preexec_fn=_at_most_a_gigabyte,
    )
    assert result.returncode == 2, result
    (error,) = errors_of(result)
    assert f"config file {config} is larger than 1 MiB" in error, result
    assert "Traceback" not in result.stderr and "chmod" not in result.stderr


BAD_KEY = "sk-HEAD\x1b]0;pwned\x07MIDDLE\u00e9TAIL1234"
BAD_PARTS = ("HEAD", "MIDDLE", "TAIL", "\x1b", "pwned")


def assert_refused_without_the_key(result, exit_code: int = 3) -> None:
    assert result.exit_code == exit_code, result
    (error,) = errors_of(result)
    assert "cannot carry" in error, result
    everything = result.stdout + result.stderr
    assert not [part for part in BAD_PARTS if part in everything], result
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["auth", "token"], {"SIRAY_API_KEY": BAD_KEY}),
        (["--api-key", BAD_KEY, "auth", "status", "--offline"], {}),
        (["--provider", "higgsfield", "auth", "token"], {"HF_KEY": f"id:{BAD_KEY}"}),
        (
            ["--provider", "higgsfield", "config", "list"],
            {"HF_KEY": None, "HF_API_KEY": "id", "HF_API_SECRET": BAD_KEY},
        ),
    ],
    ids=["SIRAY_API_KEY", "--api-key", "HF_KEY", "HF_API_KEY+HF_API_SECRET"],
)
def test_a_key_no_header_can_carry_is_refused_where_it_is_read(siray, args, env):
    # before, only a key about to be sent was checked: these printed it, or part of it
    assert_refused_without_the_key(siray(*args, env={"SIRAY_API_KEY": "sk-fine", **env}))


def test_a_key_no_header_can_carry_in_any_profile_is_refused(siray, isolated_environment):
    config = isolated_environment / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    escaped = BAD_KEY.replace("\x1b", "\\u001b").replace("\x07", "\\u0007")
    config.write_text(
        f'[profiles.default]\napi_key = "sk-fine-default-key"\n\n'
        f'[profiles.other]\napi_key = "{escaped}"\nhf_key = "id:{escaped}"\n'
    )
    config.chmod(0o600)
    env = {"SIRAY_API_KEY": None, "HF_KEY": None}
    assert siray("config", "list", env=env).exit_code == 0  # the default profile's key is fine
    assert_refused_without_the_key(siray("config", "list", "--profile", "other", env=env))
    assert_refused_without_the_key(siray("--profile", "other", "auth", "token", env=env))
    assert_refused_without_the_key(
        siray("--profile", "other", "--provider", "higgsfield", "auth", "token", env=env)
    )


def test_config_set_refuses_a_key_no_header_can_carry_without_echoing_it(siray):
    assert_refused_without_the_key(siray("config", "set", "api_key", BAD_KEY), exit_code=2)
    assert siray("config", "get", "api_key", env={"SIRAY_API_KEY": None}).stdout == ""


LOOK_PATH = "path=^/requests/.+/status$,method=GET,count=0"  # every look, retries included
FAILING_LOOKS = [f"action=status,status=500,body=html,{LOOK_PATH}", f"action=drop,{LOOK_PATH}"]


@pytest.mark.parametrize("fault", FAILING_LOOKS, ids=["500", "dropped"])
def test_a_higgsfield_cancel_stands_when_the_look_after_it_fails(siray, emu, fault):
    held = siray("generate", HF_IMAGE, "[hold] then a failing look", env=HF).stdout.strip()
    emu.state.faults.add(Fault.parse(fault))
    result = siray("cancel", held, env=HF)
    emu.state.faults.clear()
    assert result.exit_code == 0, result
    assert result.stdout == f"{held}\tCANCELLED\n"
    assert siray("status", held, "--json", env=HF).json()["status"] == "CANCELLED"


def test_a_refused_higgsfield_cancel_gives_the_servers_words_when_the_look_fails(siray, emu):
    assert siray("run", HF_IMAGE, "finished before the cancel", env=HF).exit_code == 0
    (done,) = [
        t.task_id
        for t in emu.state.tasks.values()
        if t.body["prompt"] == "finished before the cancel"
    ]
    emu.state.faults.add(Fault.parse(FAILING_LOOKS[0]))
    result = siray("cancel", done, env=HF)
    emu.state.faults.clear()
    assert result.exit_code == 5, result
    (error,) = errors_of(result)
    assert f"request {done} cannot be cancelled" in error
    assert "Request has already started and cannot be canceled (HTTP 400)" in error


CLASS_NAMES = ("ConnectError", "NothingListening", "Error:", "Exception")


def test_a_refused_loopback_connection_always_ends_as_nothing_listens(siray):
    # with no backoff the retries run out in milliseconds, long before the second of grace: it
    # used to end as a bare "(ConnectError: [Errno 111] Connection refused)" (the grace itself
    # is test_errors' business)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        env = {"SIRAY_BASE_URL": f"http://127.0.0.1:{port}", "SIRAY_RETRY_BACKOFF": "0"}
        looked = siray("status", "image_gone1", env=env)
        submitted = siray("generate", MODEL, "x", "--no-validate", env=env)
    assert looked.exit_code == 5, looked
    (error,) = errors_of(looked)
    assert f"could not reach http://127.0.0.1:{port} (nothing listens on 127.0.0.1:{port})" in error
    assert submitted.exit_code == 5, submitted
    (error,) = errors_of(submitted)
    assert f"nothing was submitted (nothing listens on 127.0.0.1:{port})" in error
    for result in (looked, submitted):
        assert not [name for name in CLASS_NAMES if name in result.stderr], result


def test_other_network_failures_are_told_in_words(siray):
    server = HostileServer()
    server.on("GET", STATUS.format("image_slow"), lambda handler: time.sleep(2))
    with server.running():
        result = siray("status", "image_slow", env={**server.env(), "SIRAY_READ_TIMEOUT": "0.2"})
    assert result.exit_code == 5, result
    assert "(no answer within the read timeout)" in result.stderr, result
    assert "ReadTimeout" not in result.stderr and "Error" not in result.stderr
