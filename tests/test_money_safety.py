"""No paid task lost or paid twice at the edges: signals other than Ctrl-C, a SIGKILL mid-submit,
batch jobs that fail in unexpected ways, resumes that verify, two runs of one batch at once, and
user JSON that could only fail after the create. Each test drives the real entry point against
the emulator."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from helpers import (
    CREATE,
    created,
    database,
    release_held,
    rows,
    siray_command,
    spawn,
    start,
    subprocess_env,
    wait_for,
    write_jobs,
)
from helpers import GEMINI_IMAGE as IMAGE

from siray_cli.emulator.faults import Fault


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")],
)
def test_sigterm_and_sighup_during_the_create_keep_the_task(
    emu, isolated_environment, signum, code, word
):
    """A CI runner's SIGTERM (or a closed terminal's SIGHUP) while the paid create is in flight:
    the answer is awaited, the id recorded and printed with how to resume, exit 128 + signal."""
    prompt = f"[hold] {word} during the create"
    create = emu.state.faults.add(
        Fault(action="delay", delay=0.6, method="POST", path=CREATE, count=1)
    )
    process = start(emu, "run", IMAGE, prompt)
    try:
        wait_for(lambda: create.fired, "the create request")
        time.sleep(0.1)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        release_held(emu)
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    (task,) = [t for t in emu.state.tasks.values() if t.body["prompt"] == prompt]
    assert task.task_id in stderr
    assert f"siray status {task.task_id} --wait" in stderr
    assert {r["task_id"] for r in rows(isolated_environment)} == {task.task_id}


def test_sigterm_while_waiting_exits_143_and_says_how_to_resume(emu, isolated_environment):
    process = start(emu, "run", IMAGE, "[hold] terminated while waiting")
    wait_for(
        lambda: any(
            t.body["prompt"] == "[hold] terminated while waiting" for t in emu.state.tasks.values()
        ),
        "the task",
    )
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    (record,) = rows(isolated_environment)
    assert f"siray status {record['task_id']} --wait" in stderr


def test_a_sigkill_mid_create_leaves_an_uncertain_record_that_resume_reports(
    siray, emu, isolated_environment, tmp_path
):
    """The intent is journalled before the create is sent: after a SIGKILL, `history --status
    UNCERTAIN` lists it, and `--resume` reports it instead of paying again, until
    --resubmit-uncertain says to."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "killed mid-create", "name": "k"})
    create = emu.state.faults.add(
        Fault(action="delay", delay=5, method="POST", path=CREATE, count=1)
    )
    process = spawn(
        siray_command("run", "--batch", str(jobs), "-m", IMAGE),
        subprocess_env(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: create.fired, "the create request")
        process.kill()
        process.communicate(timeout=30)
    finally:
        release_held(emu)
    (record,) = rows(isolated_environment)
    assert record["task_id"] is None and record["status"] == "UNCERTAIN"
    assert record["job_key"]

    listed = siray("history", "--status", "UNCERTAIN", "--json")
    assert listed.exit_code == 0, listed
    assert [r["status"] for r in listed.json()] == ["UNCERTAIN"]

    before = created(emu, "killed mid-create")
    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "--resume", "--poll-interval", "0.1")
    assert again.exit_code == 1, again
    (result,) = map(json.loads, again.lines)
    assert result["status"] == "UNCERTAIN" and "--resubmit-uncertain" in result["error"]["message"]
    assert created(emu, "killed mid-create") == before  # not paid again

    forced = siray(
        "run",
        "--batch",
        str(jobs),
        "-m",
        IMAGE,
        "--resume",
        "--resubmit-uncertain",
        "--poll-interval",
        "0.1",
    )
    assert forced.exit_code == 0, forced
    assert created(emu, "killed mid-create") == before + 1


def test_a_refused_create_leaves_no_uncertain_record(siray, emu, isolated_environment):
    emu.state.faults.add(Fault(action="status", status=400, method="POST", path=CREATE, count=1))
    result = siray("generate", IMAGE, "refused")
    assert result.exit_code == 2, result
    assert rows(isolated_environment) == []


def test_resume_checks_the_files_and_downloads_them_again(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "kept", "name": "kept"})
    out = tmp_path / "out"
    args = ["run", "--batch", str(jobs), "-m", IMAGE, "--poll-interval", "0.1"]
    first = siray(*args, "-o", str(out))
    assert first.exit_code == 0, first
    assert created(emu, "kept") == 1

    same = siray(*args, "-o", str(out), "--resume")
    assert json.loads(same.stdout)["resumed"] == "skipped"

    (out / "kept.png").unlink()
    again = siray(*args, "-o", str(out), "--resume")
    assert again.exit_code == 0, again
    result = json.loads(again.stdout)
    assert result["resumed"] == "downloaded again"
    assert (out / "kept.png").read_bytes()[:4] == b"\x89PNG"

    elsewhere = siray(*args, "-o", str(tmp_path / "other"), "--resume")
    assert json.loads(elsewhere.stdout)["resumed"] == "downloaded again"
    assert (tmp_path / "other" / "kept.png").is_file()
    assert created(emu, "kept") == 1  # never paid again


def test_resume_on_another_host_does_not_trust_this_one(siray, emu, make_emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "host bound"})
    args = ["run", "--batch", str(jobs), "-m", IMAGE, "--poll-interval", "0.1"]
    assert siray(*args).exit_code == 0
    other = make_emulator()
    resumed = siray(*args, "--resume", server=other)
    assert resumed.exit_code == 0, resumed
    assert json.loads(resumed.stdout)["resumed"] is None  # submitted there
    assert created(other) == 1


def test_job_names_that_make_the_same_file_name_are_refused(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "a", "name": "hero shot"},
        {"prompt": "b", "name": "hero/shot"},
    )
    result = siray("run", "--batch", str(jobs), "-m", IMAGE, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result
    assert "same file name" in result.stderr and "line 2" in result.stderr
    assert created(emu, "a") == created(emu, "b") == 0


def test_a_second_run_of_the_same_batch_is_refused(siray, emu, tmp_path):
    from siray_cli.services.batch import batch_lock

    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "only once"})
    with batch_lock(jobs.read_text(), str(jobs)):
        result = siray("run", "--batch", str(jobs), "-m", IMAGE, "--resume")
    assert result.exit_code == 2, result
    assert "another siray is running the batch" in result.stderr
    assert created(emu, "only once") == 0
    assert siray("run", "--batch", str(jobs), "-m", IMAGE, "--poll-interval", "0.1").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["-i", "x:=" + "[" * 100_000 + "]" * 100_000],
        ["-i", "x=" + "[" * 5000 + "]" * 5000],
        ["-i", "x=" + "[" * 65 + "]" * 65],
    ],
    ids=["100k deep, forced JSON", "5000 deep", "65 deep"],
)
def test_deeply_nested_json_is_refused_before_anything_is_sent(siray, emu, args):
    result = siray("run", IMAGE, "deep", "--no-validate", *args)
    assert result.exit_code == 2, result
    assert "nested deeper than" in result.stderr and "Traceback" not in result.stderr
    assert created(emu, "deep") == 0


def test_deeply_nested_json_bodies_and_batch_lines_are_refused(siray, emu, tmp_path):
    deep = "[" * 3000 + "]" * 3000
    (tmp_path / "body.json").write_text('{"prompt": "deep body", "x": ' + deep + "}")
    (tmp_path / "jobs.jsonl").write_text(
        '{"prompt": "deep line", "inputs": {"x": '
        + deep
        + "}}\n"
        + '{"prompt": "bad line", "inputs": 3}\n'
    )
    body = siray("run", IMAGE, "--input-json", str(tmp_path / "body.json"), "--no-validate")
    assert body.exit_code == 2 and "nested deeper than" in body.stderr
    batch = siray("run", "--batch", str(tmp_path / "jobs.jsonl"), "-m", IMAGE, "--no-validate")
    assert batch.exit_code == 2, batch
    assert "line 1: JSON nested deeper than" in batch.stderr
    assert "line 2: inputs must be an object" in batch.stderr  # every bad line at once
    assert created(emu, "deep body") == created(emu, "deep line") == created(emu, "bad line") == 0


def test_batch_files_with_a_bom_and_blank_lines(siray, emu, tmp_path):
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("\ufeffprompt,size\n\na fox,1024x768\n\n\nan owl,99x99\n", "utf-8")
    result = siray("run", "--batch", str(csv_file), "-m", "alibaba/z-image-turbo-t2i")
    assert result.exit_code == 2, result
    assert "line 6:" in result.stderr and "99x99" in result.stderr  # the line in the file
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('\ufeff{"prompt": "bom"}\n', "utf-8")
    ok = siray("run", "--batch", str(jsonl), "-m", IMAGE, "--poll-interval", "0.1")
    assert ok.exit_code == 0, ok


def test_jsonl_jobs_upload_local_images_like_csv(siray, emu, tmp_path):
    (tmp_path / "input.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"local" * 20)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "make it blue", "inputs": {"image": str(tmp_path / "input.png")}},
    )
    result = siray(
        "run",
        "--batch",
        str(jobs),
        "-m",
        "black-forest-labs/flux-kontext-i2i-max",
        "--poll-interval",
        "0.1",
    )
    assert result.exit_code == 0, result
    task = emu.state.tasks[json.loads(result.stdout)["task_id"]]
    assert task.body["image"].startswith(f"{emu.url}/uploads/")


def test_lines_naming_the_same_file_stay_separate_jobs_on_resume(siray, emu, tmp_path):
    # the file is uploaded once, but each line keeps its own resume key: three paid tasks are
    # three jobs to rejoin, never one (a shared placeholder made their bodies identical)
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"same" * 20)
    line = {"prompt": "fox", "inputs": {"image": str(tmp_path / "x.png")}}
    jobs = write_jobs(tmp_path / "jobs.jsonl", *({**line, "name": n} for n in "abc"))
    model = ["-m", "black-forest-labs/flux-kontext-i2i-max", "--poll-interval", "0.1"]
    first = siray("run", "--batch", str(jobs), *model)
    assert first.exit_code == 0, first
    paid = {json.loads(row)["task_id"] for row in first.lines}
    assert len(paid) == 3
    images = {emu.state.tasks[t].body["image"] for t in paid}
    assert len(images) == 1  # one upload
    again = siray("run", "--batch", str(jobs), *model, "--resume")
    rejoined = [json.loads(row) for row in again.lines]
    assert {r["task_id"] for r in rejoined} == paid
    assert [r["resumed"] for r in rejoined] == ["skipped"] * 3
    assert "uploaded" not in again.stderr  # nothing to submit: nothing uploaded again


def test_history_files_are_private(siray, isolated_environment):
    siray("generate", IMAGE, "private")
    siray("models", "list")
    data, cache = isolated_environment / "data", isolated_environment / "cache"
    assert data.stat().st_mode & 0o777 == 0o700
    assert cache.stat().st_mode & 0o777 == 0o700
    for path in [*data.iterdir(), *cache.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_config_set_keeps_comments_and_unknown_keys(siray, isolated_environment):
    path = isolated_environment / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "# my settings, written by hand\n"
        "[profiles.default]\n"
        'model = "alibaba/z-image-turbo-t2i"  # the usual one\n'
        'team_note = "kept by siray"\n'
        "\n"
        "[extras]\n"
        "anything = 1\n"
    )
    path.chmod(0o600)
    result = siray("config", "set", "timeout", "120")
    assert result.exit_code == 0, result
    text = path.read_text()
    assert "# my settings, written by hand" in text
    assert "# the usual one" in text
    assert 'team_note = "kept by siray"' in text and "[extras]" in text
    assert siray("config", "get", "timeout").stdout.strip() == "120"
    assert siray("config", "unset", "model").exit_code == 0
    assert "model =" not in path.read_text()
    assert "team_note" in path.read_text() and "# my settings" in path.read_text()


def test_a_corrupt_history_row_is_skipped_with_a_warning(siray, isolated_environment):
    first = siray("generate", IMAGE, "row one").stdout.strip()
    second = siray("generate", IMAGE, "row two").stdout.strip()
    with sqlite3.connect(database(isolated_environment)) as db:
        db.execute("UPDATE tasks SET outputs = '{not json' WHERE task_id = ?", (first,))
    result = siray("history", "--json")
    assert result.exit_code == 0, result
    assert [r["task_id"] for r in result.json()] == [second]
    assert result.stderr.count("skipped an unreadable row") == 1
    assert "Traceback" not in result.stderr


def test_a_cut_download_whose_size_nobody_tells_is_fetched_again(siray, emu, tmp_path):
    """Found by benchmarks/chaos.py: a body ended by the connection closing, cut short, with a
    HEAD that tells no size (a presigned URL answers 403) was kept as complete."""
    emu.state.faults.add(Fault(action="truncate-eof", method="GET", path="^/files/", count=1))
    emu.state.faults.add(
        Fault(action="status", status=403, method="HEAD", path="^/files/", count=0)
    )
    try:
        result = siray("run", IMAGE, "cut once", "-o", str(tmp_path / "out"), "--json")
    finally:
        release_held(emu)
    assert result.exit_code == 0, result
    (path,) = [Path(p) for p in result.json()["files"]]
    assert path.read_bytes().endswith(b"IEND\xaeB`\x82")  # the whole PNG


def test_a_temporary_file_left_by_a_killed_run_is_swept(siray, emu, tmp_path):
    import fcntl
    import os

    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".swept.png.abc123.part"
    stale.write_bytes(b"left by a SIGKILL")
    busy = out / ".swept.png.def456.part"
    busy.write_bytes(b"being written by another run")
    holder = os.open(busy, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "sweep", "name": "swept"})
        result = siray("run", "--batch", str(jobs), "-m", IMAGE, "-o", str(out))
    finally:
        os.close(holder)
    assert result.exit_code == 0, result
    assert not stale.exists() and busy.exists()
    assert (out / "swept.png").is_file()
