"""The emulator follows the Siray API contract: shapes, auth schemes, lifecycle, catalogue; and
the `siray emulator` command serves it in the foreground or around another command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest
from helpers import CREATE, siray_command

from siray_cli.emulator.catalogue import MODELS
from siray_cli.emulator.faults import Fault, FaultSpecError

KEY = {"Authorization": "Bearer siray-emulator-key"}
BODY = {"model": "alibaba/z-image-turbo-t2i", "prompt": "x", "size": "1024x768"}


def test_missing_and_wrong_keys_get_the_documented_401(emu):
    for headers, message in (
        ({}, "Missing API key"),
        ({"Authorization": "Bearer nope"}, "Invalid API key"),
        ({"Authorization": "API-KEY siray-emulator-key"}, "Invalid API key"),
    ):
        response = httpx.post(emu.url + CREATE, json=BODY, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        }


def test_lifecycle_is_ordered_coarse_and_uneven(make_emulator):
    # a 400 s task stepped through on the emulator's clock, 2 s a look: QUEUED (from 6-12 % to
    # 15-30 % of it) lasts at least 12 s, so no state can be missed, however busy the machine
    emu = make_emulator(task_seconds=400)
    client = httpx.Client(base_url=emu.url, headers=KEY)
    created = client.post(CREATE, json=BODY).json()
    assert created["code"] == "success" and created["message"] == ""
    task_id = created["data"]["task_id"]
    assert task_id.startswith("image_")
    seen: list[tuple[str, str | None]] = []
    while True:
        data = client.get(f"{CREATE}/{task_id}").json()["data"]
        state = (data["status"], data.get("progress"))
        if not seen or seen[-1] != state:
            seen.append(state)
        if data["status"] == "SUCCESS":
            break
        assert emu.state.clock.advance(2) < 600, seen
    order = ["NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS"]
    statuses = [s for s, _ in seen]
    assert statuses == sorted(statuses, key=order.index)
    assert "QUEUED" in statuses and "IN_PROGRESS" in statuses
    progress = [int(p.rstrip("%")) for s, p in seen if s == "IN_PROGRESS" and p]
    assert progress == sorted(progress) and all(p % 5 == 0 and p < 100 for p in progress)
    assert seen[-1] == ("SUCCESS", "100%")
    assert data["finish_time"] >= data["start_time"] >= data["submit_time"] > 0
    assert data["finish_time"] - data["submit_time"] >= 400 * 0.85 - 1
    assert data["fail_reason"] == "" and len(data["outputs"]) == 1
    output = httpx.get(data["outputs"][0])
    assert output.status_code == 302
    image = httpx.get(data["outputs"][0], follow_redirects=True)
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"


def test_the_clock_moves_tasks_on_in_process_and_over_http(make_emulator):
    emu = make_emulator(task_seconds=60)
    client = httpx.Client(base_url=emu.url, headers=KEY)

    def create(prompt: str) -> str:
        body = dict(BODY, prompt=prompt)
        return str(client.post(CREATE, json=body).json()["data"]["task_id"])

    def status(task_id: str) -> dict:
        return dict(client.get(f"{CREATE}/{task_id}").json()["data"])

    task_id, held = create("x"), create("[hold] x")
    assert status(task_id)["status"] == "NOT_START"
    (stats,) = [t for t in emu.state.stats()["tasks"] if t["task_id"] == task_id]
    assert 51 <= stats["finishes_at"] - stats["created_at"] <= 69
    assert emu.state.clock.advance(30) == 30  # past IN_PROGRESS (15-30 % of at most 69 s)
    assert status(task_id)["status"] == "IN_PROGRESS"
    response = httpx.post(f"{emu.url}/_emulator/clock", json={"advance": 40})
    assert response.status_code == 200 and response.json() == {"offset": 70}
    data = status(task_id)
    assert data["status"] == "SUCCESS" and 51 <= data["finish_time"] - data["submit_time"] <= 70
    assert status(held)["status"] == "QUEUED"  # [hold] waits for a cancel, whatever the time
    cancelled = client.post(f"{CREATE}/{held}/cancel").json()["data"]
    assert cancelled["status"] == "CANCELLED"
    for bad in ({"advance": -1}, {"advance": "1"}, {"advance": True}, {}, [1]):
        response = httpx.post(f"{emu.url}/_emulator/clock", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_clock"
    assert emu.state.clock.offset == 70
    # the same request twice is a duplicate within 600 s of the emulator's clock, not after
    create("twice")
    emu.state.clock.advance(601)
    create("twice")
    assert emu.state.stats()["duplicates"] == 0
    create("twice")
    assert emu.state.stats()["duplicates"] == 1


def test_unknown_task_is_404_and_wrong_endpoint_kind_is_400(emu):
    response = httpx.get(f"{emu.url}{CREATE}/image_nope", headers=KEY)
    assert response.status_code == 404 and response.json()["error"]["code"] == "task_not_found"
    video = dict(BODY, model="google/veo-3.1-t2v")
    response = httpx.post(emu.url + CREATE, json=video, headers=KEY)
    assert response.status_code == 400 and "video model" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "alibaba/z-image-turbo-t2i", "prompt": "x"}, "'size' is a required property"),
        (dict(BODY, size="1024x1000"), "is not one of"),
        (dict(BODY, seed=99999999999), "is greater than the maximum"),
        ({"model": "alibaba/z-image-turbo-t2i", "size": "1024x768"}, "'prompt' is a required"),
        ({"prompt": "x"}, "model is required"),
    ],
)
def test_create_validates_against_the_model_schema(emu, body, fragment):
    response = httpx.post(emu.url + CREATE, json=body, headers=KEY)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_catalogue_on_the_gateway_uses_the_api_key_scheme(emu):
    url = emu.url + "/api/model-verse/models"
    assert httpx.get(url, headers=KEY).status_code == 401
    response = httpx.get(url, headers={"Authorization": "API-KEY siray-emulator-key"})
    models = {m["model_name"]: m for m in response.json()["data"]}
    assert set(models) == set(MODELS)
    schema = json.loads(models["ideogram/ideogram-v3-turbo-i2i"]["model_extend_info"])
    assert schema["required"] == ["prompt", "aspect_ratio", "image"]
    assert schema["properties"]["style_reference_images"]["maxItems"] == 4
    assert models["alibaba/wan-2.6-i2v"]["tag"] == "image-to-video"


def test_fault_specs_parse_or_fail_clearly():
    fault = Fault.parse("action=status,status=429,retry_after=1.5,path=^/v1/,method=get,count=0")
    assert (fault.status, fault.retry_after, fault.method, fault.count) == (429, 1.5, "GET", 0)
    for bad in ("action=explode", "status=abc", "nonsense", "path=(", "rate=2"):
        with pytest.raises(FaultSpecError):
            Fault.parse(bad)


def test_emulator_exec_runs_the_command_against_it_and_passes_its_status():
    code = (
        "import os, sys; print(os.environ['SIRAY_BASE_URL']); "
        "print(os.environ['SIRAY_API_KEY']); sys.exit(3)"
    )
    completed = subprocess.run(
        siray_command("emulator", "exec", "--", sys.executable, "-c", code),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 3, completed.stderr
    url, key = completed.stdout.split()
    assert url.startswith("http://127.0.0.1:") and key == "siray-emulator-key"


def test_emulator_exec_end_to_end_with_siray_generate():
    completed = subprocess.run(
        siray_command(
            "emulator",
            "--task-seconds",
            "0.3",
            "exec",
            "--",
            *siray_command(
                "run", "google/gemini-2.5-flash-image-t2i", "a cat", "--poll-interval", "0.1"
            ),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "/redirect/image_" in completed.stdout


def test_emulator_exec_of_a_missing_command_exits_127_as_a_shell_does():
    completed = subprocess.run(
        siray_command("emulator", "exec", "--", "no-such-command-xyz"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 127  # as a shell: the command's status, were it run
    assert "command not found: no-such-command-xyz" in completed.stderr


def test_bad_fault_option_is_a_usage_error():
    completed = subprocess.run(
        siray_command("emulator", "--fault", "action=explode", "exec", "--", "true"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert "unknown fault action" in completed.stderr


def test_emulator_serves_in_the_foreground_until_ctrl_c():
    process = subprocess.Popen(
        siray_command("emulator", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().strip() for _ in range(3)]
    env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert set(env) == {"SIRAY_BASE_URL", "SIRAY_GATEWAY_URL", "SIRAY_API_KEY"}
    response = httpx.get(
        env["SIRAY_BASE_URL"] + CREATE + "/image_x",
        headers={"Authorization": f"Bearer {env['SIRAY_API_KEY']}"},
    )
    assert response.status_code == 404
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "listening on" in stderr and "GET /v1/images/generations/async/image_x -> 404" in stderr
    assert "Traceback" not in stderr


def test_tls_emulator_stopped_by_sigterm_leaves_no_key_behind(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("cryptography")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "siray_cli", "emulator", "--tls", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(tmp_path.glob("siray-emulator-*/*.pem")):
        time.sleep(0.05)
    assert list(tmp_path.glob("siray-emulator-*/emulator-key.pem"))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert list(tmp_path.iterdir()) == []
