"""Every exit code, error bodies in JSON, text and HTML, both create-response shapes, retries that
are safe and the one that is not, and the key never shown."""

from __future__ import annotations

import socket
import time

import pytest
from helpers import Z_IMAGE as MODEL
from helpers import created, emulator_stats

from siray_cli.emulator.faults import Fault

GEN = ("generate", MODEL, "x", "-i", "size=1024x768")


def test_missing_key_exits_3_and_names_the_ways(siray):
    result = siray(*GEN, env={"SIRAY_API_KEY": None})
    assert result.exit_code == 3, result
    assert "no API key" in result.stderr
    assert "SIRAY_API_KEY" in result.stderr and "--api-key" in result.stderr
    assert "siray auth login" in result.stderr


def test_wrong_key_exits_3_and_is_never_shown(siray):
    key = "sk-WRONG-0123456789-recognisable"
    for args in (GEN, ("--api-key", key, "--debug", *GEN), ("status", "image_abc")):
        result = siray(*args, env={"SIRAY_API_KEY": key})
        assert result.exit_code == 3, result
        assert "Invalid API key" in result.stderr
        assert key not in result.stdout + result.stderr


def test_a_refused_key_hints_at_auth_status_which_says_where_it_comes_from(siray):
    refused = siray(*GEN, env={"SIRAY_API_KEY": "sk-REFUSED-0123456789"})
    assert refused.exit_code == 3, refused
    assert (
        "hint: check the API key: `siray auth status` says which is in effect and where it "
        "comes from" in refused.stderr
    )
    followed = siray("auth", "status", env={"SIRAY_API_KEY": "sk-REFUSED-0123456789"})
    assert followed.exit_code == 3, followed
    assert "(from env SIRAY_API_KEY)" in followed.stdout
    assert "key works:   no (the API rejected it)" in followed.stdout


def test_hints_spell_siray_with_the_root_flags_that_chose_the_profile_and_host(siray, emu):
    """Following a hint as printed reaches the same profile and host as the command that gave
    it: the hint's own commands are spelled with those root flags."""
    assert siray("--profile", "work", "config", "set", "timeout", "60").exit_code == 0
    bad = {"SIRAY_API_KEY": "sk-REFUSED-0123456789"}
    refused = siray("--profile", "work", "--base-url", emu.url, *GEN, env=bad)
    assert refused.exit_code == 3, refused
    spelled = f"siray --profile work --base-url {emu.url} auth status"
    assert f"`{spelled}` says which is in effect" in refused.stderr
    followed = siray(*spelled.split()[1:], env=bad)
    assert "profile:     work (from flag --profile)" in followed.stdout
    # a command already spelled with its root flags, or the emulator's, is left as it is
    missing = siray("--profile", "nowhere", *GEN)
    assert "`siray --profile nowhere auth login`" in missing.stderr


def test_flag_beats_environment(siray, emu):
    result = siray("--api-key", "wrong-key-flag", *GEN)
    assert result.exit_code == 3
    result = siray("--api-key", emu.config.api_key, *GEN, env={"SIRAY_API_KEY": "wrong"})
    assert result.exit_code == 0, result


def test_debug_traces_requests_without_the_key(siray, emu):
    result = siray("--debug", "run", MODEL, "x", "-i", "size=1024x768")
    assert result.exit_code == 0, result
    assert f"debug: POST {emu.url}/v1/images/generations/async -> 200" in result.stderr
    assert "debug: GET" in result.stderr and " ms)" in result.stderr
    assert "api_key = (set) from env SIRAY_API_KEY" in result.stderr
    assert emu.config.api_key not in result.stderr + result.stdout


def test_requests_carry_the_user_agent(siray, emu):
    from siray_cli import __version__

    assert siray(*GEN).exit_code == 0
    assert f"siray-cli/{__version__}" in emulator_stats(emu)["user_agents"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_exits_5_and_nothing_was_submitted(siray):
    result = siray("--base-url", f"http://127.0.0.1:{free_port()}", *GEN)
    assert result.exit_code == 5, result
    assert "nothing was submitted" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_base_url_is_a_usage_error(siray):
    result = siray("--base-url", "ftp://x", *GEN)
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr


@pytest.mark.parametrize(
    ("body", "expected"),
    [("json", "injected fault: Forbidden"), ("text", "403 Forbidden"), ("html", "403 Forbidden")],
)
def test_error_bodies_in_json_text_and_html(siray, emu, body, expected):
    emu.state.faults.add(Fault(action="status", status=403, body=body, method="GET"))
    result = siray("status", "image_abc", "--json")
    assert result.exit_code == 3, result
    error = result.json()["error"]
    assert error["status_code"] == 403
    assert error["message"] == f"{expected} (HTTP 403)"
    assert "<" not in result.stderr


@pytest.mark.parametrize("shape", ["flat", "id"])
def test_both_create_response_shapes(siray, make_emulator, shape):
    server = make_emulator(create_shape=shape)
    result = siray("run", MODEL, "x", "-i", "size=1024x768", "--json", server=server)
    assert result.exit_code == 0, result
    assert result.json()["task_id"].startswith("image_")


def test_get_rides_through_429_and_5xx_bursts(siray, emu):
    task_id = siray(*GEN).stdout.strip()
    emu.state.faults.add(Fault(action="status", status=429, retry_after=0.1, method="GET", count=2))
    emu.state.faults.add(Fault(action="status", status=503, body="html", method="GET", count=1))
    emu.state.faults.add(Fault(action="drop", method="GET", count=1))
    emu.state.faults.add(Fault(action="malformed", method="GET", count=1))
    before = emulator_stats(emu)["requests"].get("GET /v1/images/generations/async/{task_id}", 0)
    result = siray("status", task_id, "--json")
    assert result.exit_code == 0, result
    assert result.json()["task_id"] == task_id
    after = emulator_stats(emu)["requests"]["GET /v1/images/generations/async/{task_id}"]
    assert after - before == 6  # five faulted answers, then the good one


def test_get_beyond_the_retry_budget_exits_5(siray, emu):
    emu.state.faults.add(Fault(action="status", status=502, method="GET", count=0))
    result = siray("status", "image_abc")
    assert result.exit_code == 5, result
    assert "HTTP 502" in result.stderr and "Traceback" not in result.stderr


def test_a_server_gone_from_this_machine_is_given_up_on_quickly(siray, isolated_environment):
    # an emulator that has stopped: a refused connection on loopback is tried again for about a
    # second (one backoff of 2 s here), not through the whole retry budget (2+4+8+16+32 s), and
    # a second task on the same host is not asked about again. The bound leaves room for a
    # loaded CI machine's slow start-up (5 s was once missed by half a second).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"SIRAY_BASE_URL": f"http://127.0.0.1:{port}", "SIRAY_RETRY_BACKOFF": "2"}
    started = time.monotonic()
    result = siray("status", "image_gone1", "image_gone2", env=env)
    assert time.monotonic() - started < 20
    assert result.exit_code == 5, result
    first, second = (line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "image_gone1" in first and f"nothing listens on 127.0.0.1:{port}" in first
    assert "image_gone2" in second and "did not answer a moment ago" in second


def test_create_is_retried_on_429(siray, emu):
    before = created(emu)
    emu.state.faults.add(
        Fault(action="status", status=429, retry_after=0.1, method="POST", count=2)
    )
    result = siray(*GEN)
    assert result.exit_code == 0, result
    assert created(emu) == before + 1


@pytest.mark.parametrize("action", ["drop-after", "drop", "truncate", "malformed"])
def test_create_is_never_resent_after_it_may_have_arrived(siray, emu, action):
    before = emulator_stats(emu)
    emu.state.faults.add(Fault(action=action, method="POST", path="generations", count=1))
    result = siray(*GEN, "--json")
    after = emulator_stats(emu)
    posts = "POST /v1/images/generations/async"
    assert after["requests"][posts] - before["requests"].get(posts, 0) == 1  # sent once
    assert result.exit_code == 5, result
    assert result.json()["error"]["type"] == "submit_uncertain"
    assert "may have been created" in result.stderr
    created = after["tasks_created"] - before["tasks_created"]
    assert created == (0 if action == "drop" else 1)


def test_create_still_rate_limited_says_nothing_was_submitted(siray, emu):
    before = created(emu)
    emu.state.faults.add(
        Fault(action="status", status=429, retry_after=0.01, method="POST", count=0)
    )
    result = siray(*GEN, "--json")
    emu.state.faults.clear()
    assert result.exit_code == 5, result
    assert "nothing was submitted" in result.stderr
    assert result.json()["error"]["type"] == "rate_limited"
    assert created(emu) == before


def test_create_5xx_is_not_resent(siray, emu):
    before = emulator_stats(emu)["requests"].get("POST /v1/images/generations/async", 0)
    emu.state.faults.add(Fault(action="status", status=503, method="POST", count=1))
    result = siray(*GEN)
    assert result.exit_code == 5
    assert "may have been created" in result.stderr
    assert emulator_stats(emu)["requests"]["POST /v1/images/generations/async"] == before + 1


def test_usage_error_from_click_exits_2(siray):
    result = siray("cancel")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr
    # one line, as siray's own errors: no usage block, and a mistyped command suggested once
    assert result.stderr.splitlines() == [
        "error: Missing argument 'TASK_ID...'.",
        "hint: `siray cancel --help` shows the usage",
    ]
    typo = siray("stauts")
    assert (
        typo.stderr.splitlines()[0]
        == "error: No such command 'stauts'. Did you mean 'status', 'auth'?"
    )
    assert typo.stderr.count("Did you mean") == 1
    result = siray("status", "--nope", "--json")
    assert result.exit_code == 2
    assert result.json()["error"]["type"] == "usage_error"


def test_a_group_without_its_command_shows_its_help(siray):
    result = siray("auth")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Usage: siray auth") and "Commands:" in result.stderr


def test_no_arguments_shows_help_on_stderr(siray):
    result = siray()
    assert result.exit_code == 2
    assert "Usage" in result.stderr and result.stdout == ""


def test_a_pending_task_on_a_gone_server_does_not_stop_the_wait_for_the_others(
    siray, emu, make_emulator, request
):
    """The README's after-a-crash recipe, with a task left on an emulator that has stopped: it
    is reported (exit 5), and the others are still waited for."""
    gone = make_emulator()
    lost = siray(
        "generate", MODEL, "[hold] on a server now gone", "-i", "size=1024x768", server=gone
    ).stdout.strip()
    gone.stop()
    holder = socket.socket()  # its port kept, not listening: no other test's server takes it
    holder.bind(("127.0.0.1", int(gone.url.rsplit(":", 1)[1])))
    request.addfinalizer(holder.close)
    alive = siray("generate", MODEL, "still here", "-i", "size=1024x768").stdout.strip()
    result = siray("status", "--all-pending", "--wait", env={"SIRAY_RETRY_BACKOFF": "0.05"})
    assert result.exit_code == 5, result
    assert f"{alive}\tSUCCESS" in result.stdout
    assert lost in result.stderr and f"nothing listens on {gone.url[7:]}" in result.stderr


def test_a_base_url_ending_in_v1_is_named_as_the_cause(siray, emu):
    # siray adds /v1/... itself: SIRAY_BASE_URL=http://host/v1 sends every request to /v1/v1/...
    result = siray("status", "image_abc", env={"SIRAY_BASE_URL": f"{emu.url}/v1"})
    assert result.exit_code == 2, result
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint:"))
    assert "ends in /v1" in hint and f"try {emu.url}" in hint and "env SIRAY_BASE_URL" in hint


def test_a_base_url_ending_in_v1_is_named_when_a_submit_is_refused_as_unauthorized(siray, emu):
    # found by a new user: on the emulator, /v1/v1/... is another API's door, which answers 401;
    # "Invalid credentials" alone sent them looking for a key problem
    before = created(emu)
    env = {"SIRAY_BASE_URL": f"{emu.url}/v1"}
    result = siray(*GEN, env=env)
    assert result.exit_code == 3, result
    assert "nothing was submitted" in result.stderr and "ends in /v1" in result.stderr
    assert created(emu) == before


def test_a_base_url_with_a_path_of_its_own_is_named_when_a_submit_finds_nothing(siray, emu):
    # Higgsfield's path is the application id: a base URL's path would read as part of it
    env = {"SIRAY_HIGGSFIELD_BASE_URL": f"{emu.url}/api"}
    result = siray(
        "--provider",
        "higgsfield",
        "run",
        "bytedance/seedream/v4/text-to-image",
        "a fox at the wrong base URL",
        env=env,
    )
    assert result.exit_code == 2, result
    assert "nothing was submitted" in result.stderr
    assert f"is {emu.url}/api the right base URL" in result.stderr
    assert "SIRAY_HIGGSFIELD_BASE_URL" in result.stderr
    assert created(emu, "a fox at the wrong base URL") == 0


def test_every_request_failing_alike_names_the_base_url_but_one_unknown_id_does_not(siray, emu):
    for one in ("image_unknown1", "nosuch"):  # a bare id is asked at both endpoints: one lookup
        alone = siray("--base-url", emu.url, "status", one)
        assert alone.exit_code == 2, alone
        assert "hint: check the id" in alone.stderr and "base URL" not in alone.stderr
    both = siray("--base-url", emu.url, "status", "image_unknown1", "image_unknown2")
    hints = [line for line in both.stderr.splitlines() if line.startswith("hint:")]
    assert len(hints) == 2, both
    assert "base URL" not in hints[0]
    assert f"is {emu.url} the right base URL? It is set by flag --base-url" in hints[1]
    # once the host has answered (a task it knows), an unknown id is only an unknown id
    task_id = siray(*GEN).stdout.strip()
    mixed = siray("--base-url", emu.url, "status", task_id, "image_unknown1", "image_unknown2")
    assert "base URL" not in mixed.stderr, mixed
