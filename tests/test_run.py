"""`siray run`: submit + wait + outputs, on pipes and on a terminal, and every way it can end."""

from __future__ import annotations

import json
import re
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
from helpers import Z_IMAGE as MODEL
from helpers import (
    created,
    database,
    emulator_stats,
    last_body,
    png_pixels,
    run_in_terminal,
    run_process,
    siray_command,
    start,
    subprocess_env,
)

from siray_cli.emulator.faults import Fault
from siray_cli.errors import DownloadError
from siray_cli.storage.downloads import download_one
from siray_cli.transport import build_http_client


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_run_on_a_pipe_prints_only_the_output_url(siray, emu):
    result = siray("run", MODEL, "a lighthouse", "-i", "size=1024x768")
    assert result.exit_code == 0, result
    assert len(result.lines) == 1
    assert result.lines[0].startswith(emu.url + "/redirect/image_")
    task_id = result.lines[0].split("/")[-2]
    # the id reaches stderr first, and the progress there is plain lines, never a spinner frame
    assert f"task {task_id} submitted" in result.stderr.splitlines()[0]
    assert f"{task_id}: SUCCESS" in result.stderr
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr


def test_without_a_beat_run_follows_the_adaptive_schedule(siray, make_emulator):
    # the other tests poll on a fixed 0.1 s beat; the default schedule's first look (0.5 s after
    # submission), later than the 0.3 s this task takes, finds it done: one status request,
    # where the beat makes several
    server = make_emulator(task_seconds=0.3)
    result = siray(
        "run", MODEL, "adaptive", "-i", "size=1024x768",
        env={"SIRAY_POLL_INTERVAL": None}, server=server,
    )  # fmt: skip
    assert result.exit_code == 0, result
    task_id = result.lines[0].split("/")[-2]
    (task,) = [t for t in emulator_stats(server)["tasks"] if t["task_id"] == task_id]
    assert task["status_requests"] == 1
    beat = siray("run", MODEL, "on the beat", "-i", "size=1024x768", server=server)
    assert beat.exit_code == 0, beat
    task_id = beat.lines[0].split("/")[-2]
    (task,) = [t for t in emulator_stats(server)["tasks"] if t["task_id"] == task_id]
    assert task["status_requests"] > 1


def test_run_downloads_a_real_png_of_the_requested_size(siray, tmp_path):
    result = siray(
        "run",
        MODEL,
        "a red fox",
        "-i",
        "size=768x1024",
        "-i",
        "seed=42",
        "-o",
        str(tmp_path / "out"),
    )
    assert result.exit_code == 0, result
    (path,) = [Path(line) for line in result.lines]
    assert path.parent == tmp_path / "out"
    assert path.name.startswith("image_") and path.name.endswith("_1.png")
    assert png_size(path) == (768, 1024)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_same_prompt_and_seed_give_the_same_image(siray, tmp_path):
    first = siray("run", MODEL, "same", "-i", "size=1024x768", "-i", "seed=5", "-o", "a")
    second = siray("run", MODEL, "same", "-i", "size=1024x768", "-i", "seed=5", "-o", "b")
    other = siray("run", MODEL, "same", "-i", "size=1024x768", "-i", "seed=6", "-o", "c")
    # the pixels: each file also carries its own task's record (tests/test_provenance.py)
    data = [png_pixels(Path(r.lines[0]).read_bytes()) for r in (first, second, other)]
    assert data[0] == data[1] != data[2]


def test_run_video_downloads_an_mp4(siray, tmp_path):
    result = siray("run", "kuaishou/kling-2.6-pro-t2v", "waves", "-i", "duration=5", "-o", "v")
    assert result.exit_code == 0, result
    path = Path(result.lines[0])
    assert path.suffix == ".mp4" and path.name.startswith("video_")
    assert path.read_bytes()[4:8] == b"ftyp"


def test_run_json_prints_one_document(siray):
    result = siray("run", MODEL, "json please", "-i", "size=1024x1024", "--json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["status"] == "SUCCESS"
    assert document["model"] == MODEL
    assert document["task_id"].startswith("image_")
    assert len(document["outputs"]) == 1 and document["files"] == []
    assert document["ran_for"] is not None


def test_failed_task_exits_1_with_reason_and_json_error(siray):
    result = siray("run", MODEL, "please [fail]", "-i", "size=1024x768", "--json")
    assert result.exit_code == 1, result
    error = result.json()["error"]
    assert error["type"] == "task_failed"
    assert error["task_id"].startswith("image_")
    assert "[fail]" in error["message"]
    assert "FAILURE" in result.stderr


def test_unreadable_input_image_fails_the_task(siray):
    result = siray(
        "run",
        "google/gemini-2.5-flash-image-i2i",
        "edit",
        "-i",
        "image=data:image/png;base64,@@@not-base64",
    )
    assert result.exit_code == 1, result
    assert "malformed data URL" in result.stderr


def test_timeout_exits_4_and_says_how_to_resume(siray):
    result = siray(
        "run",
        MODEL,
        "slow [hold]",
        "-i",
        "size=1024x768",
        "--timeout",
        "0.4",
        "--poll-interval",
        "0.2",
    )
    assert result.exit_code == 4, result
    task_id = result.stderr.split("task ", 1)[1].split()[0]
    assert f"siray status {task_id} --wait" in result.stderr
    assert result.stdout == ""


def test_download_never_overwrites_without_force(siray, tmp_path):
    document = siray("run", MODEL, "x", "-i", "size=1024x768", "--json").json()
    task_id, url = document["task_id"], document["outputs"][0]
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"{task_id}_1.png"
    target.write_bytes(b"precious")
    with build_http_client(expect_json=False) as http:
        with pytest.raises(DownloadError, match="already exists"):
            download_one(http, url, out, task_id, 1, force=False)
        assert target.read_bytes() == b"precious"
        assert download_one(http, url, out, task_id, 1, force=True) == target
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.iterdir()] == [target.name]


def test_a_server_supplied_id_cannot_write_outside_the_directory(siray, tmp_path):
    url = siray("run", MODEL, "x", "-i", "size=1024x768", "--json").json()["outputs"][0]
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    with build_http_client(expect_json=False) as http:
        path = download_one(http, url, out, "../../escape", 1, force=False)
    assert path.parent == out
    assert sorted(p.name for p in (tmp_path / "deep").rglob("*") if p.is_file()) == [path.name]


def test_output_dir_that_is_a_file_fails_before_submitting(siray, emu, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = created(emu)
    result = siray("run", MODEL, "x", "-i", "size=1024x768", "-o", str(blocker))
    assert result.exit_code == 2, result
    assert "is a file" in result.stderr
    assert created(emu) == before


def test_failed_download_exits_5_and_keeps_the_task_id_and_urls(siray, emu, tmp_path):
    emu.state.faults.add(Fault(action="truncate", path="^/files/", count=0))
    result = siray("run", MODEL, "x", "-i", "size=1024x768", "-o", str(tmp_path / "o"))
    assert result.exit_code == 5, result
    assert "output of image_" in result.stderr and "/redirect/image_" in result.stderr
    assert "received" in result.stderr
    assert list((tmp_path / "o").iterdir()) == []  # no partial file


def test_run_on_a_terminal_shows_a_live_bar(emu, tmp_path):
    code, screen = run_in_terminal(
        siray_command("run", MODEL, "terminal", "-i", "size=1024x768", "-o", str(tmp_path)),
        subprocess_env(emu),
    )
    assert code == 0, screen
    assert "━" in screen  # rich's bar
    assert "100%" in screen and "SUCCESS" in screen
    assert "task image_" in screen
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_no_color_keeps_the_bar_but_drops_colour(emu, tmp_path):
    env = subprocess_env(emu, NO_COLOR="1")
    code, screen = run_in_terminal(
        siray_command("run", MODEL, "terminal", "-i", "size=1024x768"), env
    )
    assert code == 0, screen
    assert "SUCCESS" in screen and "━" in screen
    assert "\x1b[3" not in screen and "\x1b[38;" not in screen  # no colour escapes


def test_run_in_a_pipe_subprocess_prints_only_the_output(emu):
    completed = run_process(
        siray_command("run", MODEL, "pipe", "-i", "size=1024x768"), subprocess_env(emu)
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("\n") == 1 and "/redirect/image_" in completed.stdout
    assert "━" not in completed.stderr


def _interrupt_while_waiting(emu, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    process = start(emu, "run", MODEL, "wait [hold]", "-i", "size=1024x768", *extra)
    assert process.stderr is not None
    first = process.stderr.readline()
    assert "submitted" in first, first
    task_id = first.split()[1]
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(
        process.args, process.returncode, stdout, first + stderr
    ), task_id


def test_ctrl_c_while_waiting_prints_the_id_and_how_to_resume(emu):
    completed, task_id = _interrupt_while_waiting(emu)
    assert completed.returncode == 130, completed.stderr
    assert f"siray status {task_id} --wait" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    tasks = {t["task_id"]: t for t in emulator_stats(emu)["tasks"]}
    assert tasks[task_id]["status"] == "QUEUED"  # it keeps running


def test_ctrl_c_with_cancel_on_interrupt_cancels(emu):
    completed, task_id = _interrupt_while_waiting(emu, "--cancel-on-interrupt")
    assert completed.returncode == 130, completed.stderr
    tasks = {t["task_id"]: t for t in emulator_stats(emu)["tasks"]}
    assert tasks[task_id]["status"] == "CANCELLED"
    assert "CANCELLED" in completed.stderr


AGE = re.compile(r"(\d+):(\d\d):(\d\d)")


def test_on_a_terminal_a_task_without_progress_pulses_and_a_rejoined_one_shows_its_age(
    make_emulator,
):
    """Higgsfield tells no percentage: the row shows its state and time, never a bar stuck at
    0%. A rerun that follows the earlier task counts its age from that task's submit."""
    server = make_emulator(task_seconds=60)
    env = subprocess_env(server, SIRAY_PROVIDER="higgsfield")
    args = siray_command("run", "bytedance/seedream/v4/text-to-image", "an old fox")
    code, first = run_in_terminal([*args, "--timeout", "1"], env)
    assert code == 4, first
    assert "QUEUED" in first or "IN_PROGRESS" in first
    assert "0%" not in first
    time.sleep(1)
    code, again = run_in_terminal([*args, "--timeout", "0.5"], env)
    assert code == 4 and "instead of paying again" in again, again
    ages = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in AGE.findall(again)]
    assert ages and max(ages) >= 2, again  # from the first run's submit, not from 0:00


def test_a_batch_row_shows_a_percentage_as_a_single_run_does(make_emulator, tmp_path):
    server = make_emulator(task_seconds=1)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(f'{{"prompt": "row {n}", "inputs": {{"size": "1024x768"}}}}\n' for n in range(2))
    )
    code, screen = run_in_terminal(
        siray_command("run", "--batch", str(jobs), "-m", MODEL), subprocess_env(server)
    )
    assert code == 0, screen
    assert "/100" not in screen and re.search(r"\d+%", screen), screen
    assert re.search(r"\b[0-2]/2\b", screen), screen  # the batch's own row counts lines


def test_dry_run_sends_nothing_and_shows_the_body_the_run_then_sends(
    siray, make_emulator, tmp_path, isolated_environment
):
    server = make_emulator()  # its own: every request it saw is this test's
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(12 * 1024))
    args = ("run", "google/gemini-2.5-flash-image-i2i", "a cat in a hat", "--image", "cat.png")
    dry = siray(*args, "-o", "out", "--dry-run", "--json", "--debug", server=server)
    assert dry.exit_code == 0, dry
    shown = dry.json()
    assert (shown["provider"], shown["would"], shown["method"]) == ("siray", "submit", "POST")
    assert shown["url"] == f"{server.url}/v1/images/generations/async"
    assert shown["body"]["image"] == "@cat.png (would be uploaded, 12 KiB)"
    assert shown["price"] is None
    assert "nothing was uploaded, submitted or recorded" in dry.stderr
    assert server.config.api_key not in dry.stdout + dry.stderr
    # provably free: the catalogue was read, nothing else asked; no history, no directory made
    assert emulator_stats(server)["requests"] == {"GET /api/model-verse/models": 1}
    assert not database(isolated_environment).exists()
    assert not (tmp_path / "out").exists()
    real = siray(*args, "--json", server=server)
    assert real.exit_code == 0, real
    sent = last_body(server)
    assert sent["image"].startswith(server.url)  # uploaded, where the dry run described it
    assert {**shown["body"], "image": sent["image"]} == sent


def test_dry_run_on_a_terminal_prints_a_readable_block(siray, emu):
    result = siray("run", MODEL, "a lighthouse", "-i", "size=1024x768", "--dry-run")
    assert result.exit_code == 0, result
    assert result.lines[:3] == [
        f"POST {emu.url}/v1/images/generations/async",
        "provider: siray",
        "price: not published by this provider",
    ]
    body = json.loads("\n".join(result.lines[3:]))
    assert body == {"model": MODEL, "prompt": "a lighthouse", "size": "1024x768"}
