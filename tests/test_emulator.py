"""The emulator follows the Siray API contract: shapes, auth schemes, lifecycle, catalogue; and
the `siray emulator` command serves it in the foreground, around another command, or in the
background for a shell session (start, status, stop)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CREATE, GEMINI_IMAGE, NO_CERTIFICATES, run_process, siray_command, spawn

from siray_cli.emulator.catalogue import MODELS
from siray_cli.emulator.faults import Fault, FaultSpecError
from siray_cli.emulator.server import Emulator, EmulatorConfig

KEY = {"Authorization": "Bearer siray-emulator-key"}
BODY = {"model": "alibaba/z-image-turbo-t2i", "prompt": "x", "size": "1024x768"}


def test_missing_and_wrong_keys_get_the_documented_401(emu):
    for headers, message in (
        ({}, "Missing API key"),
        ({"Authorization": "Bearer nope"}, "Invalid API key"),
        ({"Authorization": "API-KEY siray-emulator-key"}, "Invalid API key"),
    ):
        response = httpx.post(emu.url + CREATE, json=BODY, headers=headers, verify=NO_CERTIFICATES)
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
    client = httpx.Client(base_url=emu.url, headers=KEY, verify=NO_CERTIFICATES)
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
    output = httpx.get(data["outputs"][0], verify=NO_CERTIFICATES)
    assert output.status_code == 302
    image = httpx.get(data["outputs"][0], follow_redirects=True, verify=NO_CERTIFICATES)
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"


def test_the_clock_moves_tasks_on_in_process_and_over_http(make_emulator):
    emu = make_emulator(task_seconds=60)
    client = httpx.Client(base_url=emu.url, headers=KEY, verify=NO_CERTIFICATES)

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
    response = httpx.post(
        f"{emu.url}/_emulator/clock", json={"advance": 40}, verify=NO_CERTIFICATES
    )
    assert response.status_code == 200 and response.json() == {"offset": 70}
    data = status(task_id)
    assert data["status"] == "SUCCESS" and 51 <= data["finish_time"] - data["submit_time"] <= 70
    assert status(held)["status"] == "QUEUED"  # [hold] waits for a cancel, whatever the time
    cancelled = client.post(f"{CREATE}/{held}/cancel").json()["data"]
    assert cancelled["status"] == "CANCELLED"
    for bad in ({"advance": -1}, {"advance": "1"}, {"advance": True}, {}, [1]):
        response = httpx.post(f"{emu.url}/_emulator/clock", json=bad, verify=NO_CERTIFICATES)
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
    response = httpx.get(f"{emu.url}{CREATE}/image_nope", headers=KEY, verify=NO_CERTIFICATES)
    assert response.status_code == 404 and response.json()["error"]["code"] == "task_not_found"
    video = dict(BODY, model="google/veo-3.1-t2v")
    response = httpx.post(emu.url + CREATE, json=video, headers=KEY, verify=NO_CERTIFICATES)
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
    response = httpx.post(emu.url + CREATE, json=body, headers=KEY, verify=NO_CERTIFICATES)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_the_schema_checker_is_loaded_at_start_not_by_the_first_create():
    """Importing jsonschema takes about 0.1 s: on the first create it held every create sent with
    it (a batch's whole first wave), as a real server would not."""
    script = (
        "import sys, time\n"
        "from siray_cli.emulator.server import Emulator, EmulatorConfig\n"
        "with Emulator(EmulatorConfig(port=0)):\n"
        "    deadline = time.monotonic() + 10\n"
        "    while 'jsonschema.validators' not in sys.modules and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    print('jsonschema.validators' in sys.modules)\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "True"


def test_an_emulator_stopped_before_it_served_stops_at_once():
    """A signal that lands before `siray emulator`'s loop has begun: stop() waited forever for
    a loop that never ran (the TLS emulator stopped by SIGTERM at start-up hung)."""
    server = Emulator(EmulatorConfig(port=0))
    stopping = threading.Thread(target=server.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive()


def test_each_model_is_checked_against_its_own_schema_after_another_was_checked(emu):
    """The compiled schemas are kept: the second model's body is not read by the first's."""
    video = {"model": "google/veo-3.1-t2v", "prompt": "x", "duration": 5}
    for _ in range(2):
        image = httpx.post(emu.url + CREATE, json=BODY, headers=KEY, verify=NO_CERTIFICATES)
        assert image.status_code == 200
        wrong = dict(BODY, size="1024x1000")
        refused = httpx.post(emu.url + CREATE, json=wrong, headers=KEY, verify=NO_CERTIFICATES)
        assert "is not one of" in refused.json()["error"]["message"]
    response = httpx.post(
        emu.url + "/v1/video/generations", json=video, headers=KEY, verify=NO_CERTIFICATES
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "invalid duration: 5 is not one of [8]"
    video["duration"] = 8
    response = httpx.post(
        emu.url + "/v1/video/generations", json=video, headers=KEY, verify=NO_CERTIFICATES
    )
    assert response.status_code == 200


def test_catalogue_on_the_gateway_uses_the_api_key_scheme(emu):
    url = emu.url + "/api/model-verse/models"
    assert httpx.get(url, headers=KEY, verify=NO_CERTIFICATES).status_code == 401
    response = httpx.get(
        url, headers={"Authorization": "API-KEY siray-emulator-key"}, verify=NO_CERTIFICATES
    )
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
    completed = run_process(
        siray_command("emulator", "exec", "--", sys.executable, "-c", code),
        timeout=30,
    )
    assert completed.returncode == 3, completed.stderr
    url, key = completed.stdout.split()
    assert url.startswith("http://127.0.0.1:") and key == "siray-emulator-key"


def test_emulator_exec_end_to_end_with_siray_generate():
    completed = run_process(
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
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "/redirect/image_" in completed.stdout


def test_emulator_exec_of_a_missing_command_exits_127_as_a_shell_does():
    completed = run_process(
        siray_command("emulator", "exec", "--", "no-such-command-xyz"),
        timeout=30,
    )
    assert completed.returncode == 127  # as a shell: the command's status, were it run
    assert "command not found: no-such-command-xyz" in completed.stderr


def exec_in(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return run_process(
        siray_command("emulator", "exec", "--", *command),
        timeout=30,
        cwd=directory,
    )


def test_emulator_exec_runs_a_script_without_a_shebang_line_with_sh_as_a_shell_does(tmp_path):
    # POSIX: a file exec refuses (ENOEXEC) is a shell script, run by /bin/sh with its arguments
    script = tmp_path / "noshebang.sh"
    script.write_text('echo "hi $1 $SIRAY_BASE_URL"\nexit 3\n', encoding="utf-8")
    script.chmod(0o755)
    completed = exec_in(tmp_path, "./noshebang.sh", "there")
    assert completed.returncode == 3, completed.stderr  # the script's own status
    assert completed.stdout.startswith("hi there http://127.0.0.1:")
    assert "internal error" not in completed.stderr


def test_emulator_exec_of_a_file_it_cannot_run_exits_126_saying_why(tmp_path):
    plain = tmp_path / "plain.sh"
    plain.write_text("echo hi\n", encoding="utf-8")
    plain.chmod(0o644)
    completed = exec_in(tmp_path, "./plain.sh")
    assert completed.returncode == 126
    assert "command not executable: ./plain.sh" in completed.stderr
    assert "hint: chmod +x ./plain.sh" in completed.stderr
    # the hint is safe to follow, and then the file runs
    subprocess.run(["sh", "-c", "chmod +x ./plain.sh"], cwd=tmp_path, check=True)
    assert exec_in(tmp_path, "./plain.sh").stdout == "hi\n"

    binary = tmp_path / "data.bin"  # no script: sh is not asked to read it, as bash does not
    binary.write_bytes(b"\0\1\2garbage\n")
    binary.chmod(0o755)
    completed = exec_in(tmp_path, "./data.bin")
    assert completed.returncode == 126
    assert "cannot run ./data.bin: Exec format error" in completed.stderr
    assert "internal error" not in completed.stderr

    completed = exec_in(tmp_path, str(tmp_path))
    assert completed.returncode == 126
    assert "command is a directory" in completed.stderr

    bad = tmp_path / "bad-interpreter"
    bad.write_text("#!/no/such/interpreter\necho hi\n", encoding="utf-8")
    bad.chmod(0o755)
    completed = exec_in(tmp_path, "./bad-interpreter")
    assert completed.returncode == 126  # found, not runnable: not 127
    assert "(#!) names is not found" in completed.stderr


def test_bad_fault_option_is_a_usage_error():
    completed = run_process(
        siray_command("emulator", "--fault", "action=explode", "exec", "--", "true"),
        timeout=30,
    )
    assert completed.returncode == 2
    assert "unknown fault action" in completed.stderr


def test_emulator_serves_in_the_foreground_until_ctrl_c():
    process = spawn(
        siray_command("emulator", "--port", "0"),
        os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().strip() for _ in range(6)]
    env = _exports("\n".join(lines))
    assert {"SIRAY_BASE_URL", "SIRAY_GATEWAY_URL", "SIRAY_API_KEY"} <= set(env)
    # the tasks of the commands pointed at it go to a history of their own, gone with it
    assert Path(env["SIRAY_DATA_DIR"]).is_dir()
    response = httpx.get(
        env["SIRAY_BASE_URL"] + CREATE + "/image_x",
        headers={"Authorization": f"Bearer {env['SIRAY_API_KEY']}"},
        verify=NO_CERTIFICATES,
    )
    assert response.status_code == 404
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "listening on" in stderr and "GET /v1/images/generations/async/image_x -> 404" in stderr
    assert not Path(env["SIRAY_DATA_DIR"]).exists()
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


# -- siray emulator start, status, stop: an emulator in the background -------------------------


def _state(home: Path) -> Path:
    return home / "state" / "emulator" / "emulator.json"


def _running(pid: int) -> bool:
    """Alive, and not a zombie (the process that adopts it may be slow to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _session_members(session: int) -> list[int]:
    """The processes of a session (the emulator leads its own): none may outlive a stop."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _exports(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines), stdout
    return dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)


@pytest.fixture
def background(isolated_environment: Path) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """`siray emulator ARGS` in a process (`start`, `status`, `stop`, ...); any emulator a start
    of the test launched (its command line names the test's state directory) is killed at the
    end, even when the test failed."""

    def siray_emulator(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_process(
            siray_command("emulator", *args),
            timeout=timeout,
        )

    yield siray_emulator
    ours = str(isolated_environment / "state" / "emulator").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if b"daemon" in words and ours in words:
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


def test_start_answers_at_once_status_says_where_and_stop_leaves_nothing(
    background, isolated_environment, tmp_path
):
    started = background("start", "--port", "0", "--task-seconds", "0.1")
    assert started.returncode == 0, started.stderr
    env = _exports(started.stdout)
    assert {"SIRAY_BASE_URL", "SIRAY_GATEWAY_URL", "SIRAY_API_KEY", "HF_KEY"} <= set(env)
    # its tasks go to a history of its own, in its private state directory
    state_dir = isolated_environment / "state" / "emulator"
    assert env["SIRAY_DATA_DIR"] == str(state_dir / "history")
    assert Path(env["SIRAY_DATA_DIR"]).is_dir()
    for private in (state_dir, state_dir / "emulator.log", _state(isolated_environment)):
        assert private.stat().st_mode & 0o077 == 0, private
    info = httpx.get(env["SIRAY_BASE_URL"] + "/_emulator/info", verify=NO_CERTIFICATES).json()
    pid = info["pid"]
    # an upload starts its S3 store (moto, on a port of its own)
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    uploaded = run_process(siray_command("upload", str(tmp_path / "in.png")), {**os.environ, **env})
    assert uploaded.returncode == 0, uploaded.stderr
    moto = httpx.get(env["SIRAY_BASE_URL"] + "/_emulator/info", verify=NO_CERTIFICATES).json()[
        "s3"
    ]["moto"]
    httpx.get(
        moto, verify=NO_CERTIFICATES
    )  # it answers (whatever it says to a request without credentials)

    status = background("status")
    assert status.returncode == 0, status.stderr
    fields = dict(line.split("\t") for line in status.stdout.splitlines())
    assert fields["url"] == env["SIRAY_BASE_URL"] and fields["pid"] == str(pid)
    assert fields["tasks"] == "0" and fields["uptime"].endswith("s")
    document = json.loads(background("status", "--json").stdout)
    assert document["pid"] == pid and document["tasks_created"] == 0
    assert document["environment"] == env and document["uptime_seconds"] >= 0

    stopped = background("stop", timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == ""  # none of its variables is in effect here: nothing to unset
    assert not _running(pid) and _session_members(pid) == []
    for url in (env["SIRAY_BASE_URL"], moto):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=5, verify=NO_CERTIFICATES)
    assert not _state(isolated_environment).exists() and not Path(env["SIRAY_DATA_DIR"]).exists()
    gone = background("status", "--json")
    assert gone.returncode == 2 and "no emulator is running" in gone.stderr
    assert json.loads(gone.stdout)["error"]["type"] == "not_running"


def test_eval_of_start_returns_and_points_siray_at_it_and_stop_unsets_it(
    background, isolated_environment, tmp_path
):
    """`eval "$(siray emulator start)"` must not wait for the emulator's end: it keeps none of
    the shell's descriptors. A run against it leaves nothing in the user's own history."""
    script = f"""
        set -e
        eval "$($SIRAY emulator start --port 0 --task-seconds 0.1)"
        $SIRAY run {GEMINI_IMAGE} "a lighthouse" --poll-interval 0.1 -o out/
        eval "$($SIRAY emulator stop)"
        echo "after stop: ${{SIRAY_BASE_URL-unset}} ${{SIRAY_DATA_DIR}}"
    """
    completed = subprocess.run(
        ["bash", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,  # a start that keeps the shell's pipe open blocks the eval: this fails
        env={**os.environ, "SIRAY": shlex.join(siray_command())},
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == "after stop: unset "
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
    assert not (isolated_environment / "data").exists()  # the user's history: untouched


def test_start_again_is_idempotent_unless_the_options_differ(background):
    first = background("start", "--port", "0")
    assert first.returncode == 0, first.stderr
    again = background("start", "--port", "0")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and "already running" in again.stderr
    other = background("start", "--port", "0", "--task-seconds", "1")
    assert other.returncode == 2 and other.stdout == ""
    assert "already running" in other.stderr and "stop it first" in other.stderr
    assert "Traceback" not in other.stderr


def test_a_conflicting_start_hints_at_a_stop_that_unsets_the_variables_too(background, tmp_path):
    script = """
        set -e
        eval "$($SIRAY emulator start --port 0)"
        hint=$($SIRAY emulator start --port 0 --task-seconds 1 2>&1 >/dev/null | grep '^hint:')
        echo "$hint"
        eval "${hint##*: }"  # the command the hint gives, as given (siray on PATH)
        echo "after: ${SIRAY_BASE_URL-unset}"
        $SIRAY emulator start --port 0 --task-seconds 1 >/dev/null
        $SIRAY emulator stop >/dev/null
    """
    completed = subprocess.run(
        ["bash", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "SIRAY": shlex.join(siray_command()),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    hint, after = completed.stdout.splitlines()
    assert hint == 'hint: stop it first (its variables too): eval "$(siray emulator stop)"'
    assert after == "after: unset"  # the hint, followed, stopped it and unset what start set


def test_two_starts_at_once_start_one_emulator(background):
    both = [
        spawn(
            siray_command("emulator", "start", "--port", "0"),
            os.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # the same emulator's lines
    assert background("stop").returncode == 0


def test_a_start_that_fails_says_why_in_one_line(background, isolated_environment):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = background("start", "--port", str(port), timeout=30)
    assert failed.returncode == 2 and failed.stdout == ""
    error, hint = failed.stderr.splitlines()
    assert error.startswith("error: the emulator did not start: cannot listen on")
    assert hint.startswith("hint: choose another --port") and "emulator.log" in hint
    assert not _state(isolated_environment).exists()


def _fake_state(home: Path, pid: int, port: int) -> None:
    """The state a start would have left, naming a PID that is not an emulator of ours."""
    _state(home).parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    _state(home).write_text(
        json.dumps(
            {
                "pid": pid,
                "url": url,
                "port": port,
                "started_at": 0,
                "environment": {"SIRAY_BASE_URL": url},
                "options": {},
            }
        )
    )


def _gone() -> tuple[int, int]:
    """A PID whose process has ended, and a port nothing listens on: an emulator gone."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return ended.pid, closed.getsockname()[1]


def test_a_state_whose_emulator_died_is_forgotten(background, isolated_environment):
    ended, port = _gone()
    _fake_state(isolated_environment, ended, port)
    status = background("status")
    assert status.returncode == 2 and "no emulator is running" in status.stderr
    assert not _state(isolated_environment).exists()
    _fake_state(isolated_environment, ended, port)
    started = background("start", "--port", "0")
    assert started.returncode == 0, started.stderr
    assert f"PID {ended} is gone" in started.stderr
    assert background("stop").returncode == 0


def test_stopping_an_emulator_gone_already_still_unsets_its_variables(
    background, isolated_environment, monkeypatch
):
    # found by a new user: `eval "$(siray emulator stop)"` after the emulator had died printed
    # nothing, and the shell kept pointing at a dead emulator
    ended, port = _gone()
    _fake_state(isolated_environment, ended, port)
    monkeypatch.setenv("SIRAY_BASE_URL", f"http://127.0.0.1:{port}")  # still in effect
    stopped = background("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "gone already" in stopped.stderr
    assert stopped.stdout == "unset SIRAY_BASE_URL\n"


@pytest.mark.parametrize("answers", ["nothing", "another emulator"])
def test_stop_never_signals_a_recycled_pid(background, isolated_environment, emu, answers):
    """The recorded PID now belongs to another process: on the recorded port nothing answers,
    or another emulator does (with another PID). That process is left alone."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        if answers == "nothing":
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                port = closed.getsockname()[1]
        else:
            port = emu.port
        _fake_state(isolated_environment, stranger.pid, port)
        stopped = background("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "gone already" in stopped.stderr and stopped.stdout == ""
        assert stranger.poll() is None  # alive: never signalled
        assert not _state(isolated_environment).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_kills_an_emulator_that_no_longer_answers(background, isolated_environment):
    """Stopped (SIGSTOP), it answers nothing and ignores SIGTERM: /proc says it is ours, and
    SIGKILL ends it after --timeout."""
    started = background("start", "--port", "0")
    assert started.returncode == 0, started.stderr
    pid = json.loads(_state(isolated_environment).read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    stopped = background("stop", "--timeout", "0.2", timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert "emulator stopped" in stopped.stderr
    assert not _running(pid) and _session_members(pid) == []


def test_clearing_the_faults_lets_a_delayed_request_go_on_at_once(make_emulator):
    """A create a fault delays for a minute is answered as soon as the rules are cleared
    (DELETE /_emulator/faults): a script's test, or ours, does not wait out a delay it no
    longer needs, and no request held by a cleared rule lands later, in another test."""
    import threading
    import time

    server = make_emulator()
    server.state.faults.add(Fault(action="delay", delay=60, method="POST", path=CREATE))
    answers: list[httpx.Response] = []

    def create() -> None:
        answers.append(
            httpx.post(
                f"{server.url}{CREATE}",
                json={"model": GEMINI_IMAGE, "prompt": "held, then let go"},
                headers={"Authorization": "Bearer siray-emulator-key"},
                timeout=30,
                verify=NO_CERTIFICATES,
            )
        )

    sender = threading.Thread(target=create)
    sender.start()
    deadline = time.monotonic() + 10
    while not server.state.stats()["requests"] and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert (
        httpx.delete(
            f"{server.url}/_emulator/faults", timeout=5, verify=NO_CERTIFICATES
        ).status_code
        < 300
    )
    sender.join(timeout=10)
    assert not sender.is_alive() and time.monotonic() - started < 5
    assert answers[0].status_code == 200, answers[0].text
