"""A newcomer's first hour: what the README and --help promise works as written, through the real
entry point against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import Z_IMAGE as IMAGE
from helpers import run_in_terminal, siray_command, subprocess_env


def test_emulator_options_may_come_after_exec(emu, tmp_path):
    command = [
        *siray_command("emulator", "exec", "--task-seconds", "0.2", "--no-cancel", "--"),
        sys.executable, "-m", "siray_cli", "run", IMAGE, "a fox", "-i", "size=1024x768",
        "--poll-interval", "0.1", "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=subprocess_env(emu), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCESS"
    # options after `exec` win over those before it
    both = subprocess.run(
        [
            *siray_command("emulator", "--key", "before", "exec", "--key", "after", "--"),
            "sh",
            "-c",
            'echo "$SIRAY_API_KEY"',
        ],
        env=subprocess_env(emu),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert both.returncode == 0, both.stderr
    assert both.stdout.strip() == "after"


def test_every_input_problem_is_reported_at_once(siray):
    result = siray("run", IMAGE, "x", "-i", "seed=abc", "-i", "foo=1", "-i", "size=9x9")
    assert result.exit_code == 2, result
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert 'seed: "abc" is not an integer' in line
    assert "unknown input: foo" in line
    assert 'size: "9x9" is not one of' in line


def test_settings_follow_the_rules_of_their_flags(siray):
    assert siray("config", "set", "timeout", "0").exit_code == 0  # as --timeout 0: no limit
    assert siray("config", "get", "timeout").stdout.strip() == "0"
    negative = siray("config", "set", "timeout", "-5")
    assert negative.exit_code == 2
    assert negative.stderr.strip().splitlines()[0] == (
        "error: timeout '-5' must be 0 (no limit) or a positive number of seconds"
    )
    flag = siray("status", "image_x", "--timeout", "-5")
    assert flag.exit_code == 2 and "must be 0 (no limit) or a positive number" in flag.stderr
    beat = siray("config", "set", "poll_interval", "0.05")
    assert beat.exit_code == 2 and "0.1 or more" in beat.stderr
    flag_beat = siray("status", "image_x", "--poll-interval", "0.05")
    assert flag_beat.exit_code == 2 and "0.1 or more" in flag_beat.stderr


def test_upload_of_standard_input_reports_the_bytes_sent(siray):
    result = siray(
        "upload", "-", "--name", "note.txt", "--content-type", "text/plain", "--json",
        input="hello world 12345",
    )  # fmt: skip
    assert result.exit_code == 0, result
    assert result.json()[0]["bytes"] == len("hello world 12345")


def test_a_failure_reason_is_told_once_on_a_pipe(siray):
    result = siray("run", IMAGE, "[fail] once", "-i", "size=1024x768")
    assert result.exit_code == 1, result
    assert result.stderr.count("the prompt asked for a failure") == 1


def test_models_list_kind_says_what_it_filters(siray):
    result = siray("models", "list", "--help")
    assert "Only image models, or only video models." in result.stdout


def test_a_download_on_a_terminal_never_shows_a_question_mark_speed(emu, tmp_path):
    env = {**os.environ, **subprocess_env(emu)}
    code, screen = run_in_terminal(
        siray_command("run", IMAGE, "speed", "-i", "size=1024x768", "-o", str(tmp_path)), env
    )
    assert code == 0, screen
    assert " ? " not in screen and "?/s" not in screen


def test_download_fetches_a_finished_tasks_outputs_later(
    siray, emu, tmp_path, isolated_environment
):
    import sqlite3

    task_id = siray("generate", IMAGE, "fetched later", "-i", "size=1024x768").stdout.strip()
    waited = siray("status", task_id, "--wait", "-o", str(tmp_path / "first"))
    assert waited.exit_code == 0, waited
    assert (tmp_path / "first" / f"{task_id}_1.png").read_bytes()[:4] == b"\x89PNG"
    result = siray("download", task_id, "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result
    path = tmp_path / "out" / f"{task_id}_1.png"
    assert result.stdout.strip() == str(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    again = siray("download", task_id, "-o", str(tmp_path / "out"))  # its own file, unchanged
    assert again.exit_code == 0 and again.stdout.strip() == str(path), again
    path.write_bytes(b"edited by hand")
    clobber = siray("download", task_id, "-o", str(tmp_path / "out"))
    assert clobber.exit_code == 5 and "already exists" in clobber.stderr  # never clobbered
    assert path.read_bytes() == b"edited by hand"
    with sqlite3.connect(isolated_environment / "data" / "history.sqlite3") as db:
        (files,) = db.execute("SELECT files FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    assert json.loads(files) == [str(path)]


def test_download_of_an_unfinished_or_failed_task_says_why(siray, emu):
    held = siray("generate", IMAGE, "[hold] not yet", "-i", "size=1024x768").stdout.strip()
    waiting = siray("download", held)
    assert waiting.exit_code == 2 and "no outputs yet" in waiting.stderr
    assert f"siray status {held} --wait" in waiting.stderr
    failed = siray("run", IMAGE, "[fail] no outputs", "-i", "size=1024x768", "--json")
    failed_id = json.loads(failed.stdout)["error"]["task_id"]
    gone = siray("download", failed_id)
    assert gone.exit_code == 1 and "ended FAILURE" in gone.stderr
    # with --json: one document, the tasks that could not be fetched in it with their error
    done = siray("generate", IMAGE, "fetched with others", "-i", "size=1024x768").stdout.strip()
    assert siray("status", done, "--wait").exit_code == 0
    mixed = siray("download", held, done, "-o", "mixed", "--json")
    assert mixed.exit_code == 2, mixed
    first, second = json.loads(mixed.stdout)  # one document, whatever failed
    assert first["task_id"] == held and first["files"] == []
    assert first["error"]["type"] == "usage_error" and first["error"]["task_id"] == held
    assert second["task_id"] == done and len(second["files"]) == 1 and "error" not in second
    siray("cancel", held)


def test_help_command_is_the_commands_own_help(siray):
    for words in (["run"], ["models", "list"], ["emulator", "exec"], []):
        via_help = siray("help", *words)
        direct = siray(*words, "--help")
        assert via_help.exit_code == 0, via_help
        assert via_help.stdout == direct.stdout, words
    topic = siray("help", "exit-codes")
    assert "143" in topic.stdout and "terminated (SIGTERM" in topic.stdout
    unknown = siray("help", "nonsense")
    assert unknown.exit_code == 2
    assert "commands: generate, run, status" in unknown.stderr and "exit-codes" in unknown.stderr


def test_json_and_quiet_anywhere(siray):
    task_id = siray("generate", IMAGE, "anywhere", "-i", "size=1024x768").stdout.strip()
    before = siray("--json", "status", task_id)
    after = siray("status", task_id, "--json")
    assert json.loads(before.stdout)["task_id"] == json.loads(after.stdout)["task_id"] == task_id
    quiet_after = siray("generate", IMAGE, "q", "-i", "size=1024x768", "-q")
    quiet_before = siray("-q", "generate", IMAGE, "q", "-i", "size=1024x768")
    assert quiet_after.exit_code == quiet_before.exit_code == 0
    assert quiet_after.stderr == quiet_before.stderr == ""  # no hint: quiet either way
    assert siray("--profile", "default", "status", task_id, "-q").exit_code == 0


def test_status_o_tells_each_saved_file_once(siray, emu, tmp_path):
    task_id = siray("generate", IMAGE, "saved once", "-i", "size=1024x768").stdout.strip()
    result = siray("status", task_id, "--wait", "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result
    assert result.stderr.count("saved ") == 1


def test_a_batch_rerun_over_its_own_files_is_refused_before_paying(siray, emu, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "rerun", "name": "rerun"}) + "\n")
    args = ["run", "--batch", str(jobs), "-m", "google/gemini-2.5-flash-image-t2i"]
    assert siray(*args, "-o", str(tmp_path / "o")).exit_code == 0
    again = siray(*args, "-o", str(tmp_path / "o"))
    assert again.exit_code == 2, again
    assert "exist already, nothing was submitted" in again.stderr and "--resume" in again.stderr
    assert sum(1 for t in emu.state.tasks.values() if t.body.get("prompt") == "rerun") == 1
