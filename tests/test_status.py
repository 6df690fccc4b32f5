"""`siray status`: one or many ids, piped, JSON, on a terminal, and --wait."""

from __future__ import annotations

import json

from helpers import Z_IMAGE as MODEL
from helpers import run_in_terminal, siray_command, subprocess_env


def submit(siray, prompt: str = "x", model: str = MODEL, *extra: str) -> str:
    args = ["generate", model, prompt, *extra]
    if model == MODEL:
        args += ["-i", "size=1024x768"]
    result = siray(*args)
    assert result.exit_code == 0, result
    return result.stdout.strip()


def test_status_on_a_pipe_is_one_tab_separated_line(siray):
    task_id = submit(siray)
    result = siray("status", task_id)
    assert result.exit_code == 0, result
    fields = result.stdout.rstrip("\n").split("\t")
    assert fields[0] == task_id and len(fields) == 6 and fields[5] == "-"  # nothing saved
    assert fields[1] in {"NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS"}


def test_status_shows_the_files_a_task_was_saved_to(siray, tmp_path):
    ran = siray("run", MODEL, "a file to find", "-i", "size=1024x768", "-o", str(tmp_path))
    assert ran.exit_code == 0, ran
    path = ran.stdout.strip()
    task_id = path.rsplit("/", 1)[1].rsplit("_", 1)[0]
    piped = siray("status", task_id)
    assert piped.stdout.rstrip("\n").split("\t")[5] == path
    assert siray("status", task_id, "--json").json()["files"] == [path]
    (tmp_path / path.rsplit("/", 1)[1]).unlink()  # gone from disk: no longer shown
    assert siray("status", task_id, "--json").json()["files"] == []
    # -o: the files it has just saved, not those from before (a new user saw the old ones)
    for extra in ([], ["--wait"]):
        into = tmp_path / f"again{len(extra)}"
        saved = siray("status", task_id, "-o", str(into), *extra, "--json")
        assert saved.exit_code == 0, saved
        assert saved.json()["files"] == [str(into / f"{task_id}_1.png")], saved
    # again into the same directory: its own file there is kept, one document, no error (a new
    # user saw exit 5, an error document, and then files of another directory)
    for extra in ([], ["--wait"]):
        into = tmp_path / "again0"
        again = siray("status", task_id, "-o", str(into), *extra, "--json")
        assert again.exit_code == 0, again
        assert again.json()["files"] == [str(into / f"{task_id}_1.png")], again
    fetched = siray("download", task_id, "-o", str(tmp_path / "again0"))
    assert fetched.exit_code == 0, fetched
    (tmp_path / "again0" / f"{task_id}_1.png").write_text("edited")  # no longer its own
    refused = siray("download", task_id, "-o", str(tmp_path / "again0"))
    assert refused.exit_code == 5 and "already exists" in refused.stderr, refused
    assert (tmp_path / "again0" / f"{task_id}_1.png").read_text() == "edited"


def test_status_wait_then_json_lines_for_several_ids(siray):
    image = submit(siray)
    video = submit(siray, "waves", "google/veo-3-fast-t2v")
    waited = siray("status", image, video, "--wait", "--poll-interval", "0.2")
    assert waited.exit_code == 0, waited
    result = siray("status", image, video, "--json")
    documents = [json.loads(line) for line in result.lines]
    assert [d["task_id"] for d in documents] == [image, video]
    assert [d["kind"] for d in documents] == ["image", "video"]
    assert all(d["status"] == "SUCCESS" and d["progress"] == 100 for d in documents)
    assert all(d["outputs"] and d["finish_time"] >= d["start_time"] for d in documents)


def test_status_wait_reports_a_failure_with_exit_1(siray):
    task_id = submit(siray, "[fail]")
    result = siray("status", task_id, "--wait", "--json")
    assert result.exit_code == 1, result
    document = result.json()
    assert document["status"] == "FAILURE" and "[fail]" in document["fail_reason"]


def test_id_without_prefix_tries_both_endpoints(siray, emu):
    task_id = submit(siray, "waves", "google/veo-3-fast-t2v")
    task = emu.state.tasks.pop(task_id)
    bare = task_id.removeprefix("video_")
    task.task_id = bare
    emu.state.tasks[bare] = task
    result = siray("status", bare, "--json")
    assert result.exit_code == 0, result
    assert result.json()["kind"] == "video"


def test_unknown_task_exits_2_but_reports_the_others(siray):
    good = submit(siray)
    result = siray("status", "image_doesnotexist", good)
    assert result.exit_code == 2
    assert "no task image_doesnotexist" in result.stderr
    assert result.stdout.startswith(good)


def test_malformed_task_id_is_a_usage_error(siray, emu):
    result = siray("status", "../../etc/passwd")
    assert result.exit_code == 2
    assert "is not a task id" in result.stderr


def test_status_on_a_terminal_shows_durations_and_files(emu, tmp_path):
    code, screen = run_in_terminal(
        siray_command("run", MODEL, "x", "-i", "size=1024x768", "-o", str(tmp_path / "out")),
        subprocess_env(emu),
    )
    assert code == 0, screen
    task_id = screen.split("task ", 1)[1].split()[0]
    code, screen = run_in_terminal(siray_command("status", task_id), subprocess_env(emu))
    assert code == 0, screen
    assert f"{task_id}  SUCCESS  100%" in screen
    assert "queued for" in screen and "ran for" in screen
    assert "output: http://" in screen
    [saved] = (tmp_path / "out").iterdir()
    assert f"file: {saved}" in screen.replace("\n", "")


def test_status_wait_on_a_terminal_shows_a_bar(emu):
    submitted = run_in_terminal(
        siray_command("generate", MODEL, "x", "-i", "size=1024x768"), subprocess_env(emu)
    )[1]
    task_id = submitted.split()[0]
    code, screen = run_in_terminal(siray_command("status", task_id, "--wait"), subprocess_env(emu))
    assert code == 0, screen
    assert "━" in screen and "SUCCESS" in screen


def test_waiting_for_several_tasks_saves_each_ones_files_as_it_ends(siray, emu, tmp_path):
    """`status --all-pending --wait -o DIR`: a task that ended is downloaded then, not once every
    task has ended; a task still held at the timeout does not keep the others' files back."""
    held = siray("generate", MODEL, "[hold] never ends", "-i", "size=1024x768").stdout.strip()
    done = siray("generate", MODEL, "the one that ends", "-i", "size=1024x768").stdout.strip()
    out = tmp_path / "out"
    waited = siray("status", "--all-pending", "--wait", "-o", str(out), "--timeout", "1")
    assert waited.exit_code == 4, waited  # the held one timed out
    (saved,) = out.iterdir()
    assert saved.name.startswith(f"{done}_"), waited
    assert f"saved {out}" in waited.stderr and held in waited.stderr
