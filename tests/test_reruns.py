"""A rerun never pays twice for what an earlier run started: a command killed (or timed out)
before it handed its result over is rerun by CI as it was, and must follow the task it had
started; two runs of the same jobs at once share their tasks. A run that handed its result over
is no such case: running it again is asking for a new task. Each test drives the real entry
point against the emulator."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import (
    CREATE,
    HF,
    HF_IMAGE,
    created,
    database,
    recorded_ids,
    release_held,
    rows,
    siray_command,
    start,
    subprocess_env,
    wait_for,
    write_jobs,
)
from helpers import GEMINI_IMAGE as IMAGE

from siray_cli.emulator.faults import Fault


def kill_mid_create(emu, path: str, *args: str, env: dict[str, str] | None = None) -> None:
    """SIGKILL `siray ARGS` while its create request (to `path`) is held up for a second; the
    server creates the task all the same, once the second is up."""
    create = emu.state.faults.add(Fault(action="delay", delay=1, method="POST", path=path))
    process = start(emu, *args, env=env)
    try:
        wait_for(lambda: create.fired, "the create request")
        process.kill()
        process.communicate(timeout=30)
    finally:
        release_held(emu)


def test_a_run_stopped_while_waiting_is_followed_by_its_rerun_not_paid_again(
    siray, emu, isolated_environment
):
    prompt = "[hold] a rerun after SIGTERM"
    first = start(emu, "run", IMAGE, prompt)
    wait_for(lambda: created(emu, prompt) == 1, "the task")
    wait_for(lambda: recorded_ids(isolated_environment), "its record")
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 143, stderr
    (record,) = rows(isolated_environment)

    again = siray("run", IMAGE, prompt, "--timeout", "0.3", "--json")
    assert again.exit_code == 4, again  # still held: it gave up waiting, and paid nothing
    assert f"following task {record['task_id']} instead of paying again" in again.stderr
    assert json.loads(again.stdout)["error"]["task_id"] == record["task_id"]
    assert created(emu, prompt) == 1

    forced = siray("run", IMAGE, prompt, "--timeout", "0.3", "--new")
    assert forced.exit_code == 4, forced
    assert created(emu, prompt) == 2


def test_a_run_that_handed_its_result_over_is_run_anew(siray, emu):
    for _ in range(2):
        done = siray("run", IMAGE, "another one, please")
        assert done.exit_code == 0, done
        assert "instead of paying again" not in done.stderr
    generated = {siray("generate", IMAGE, "and one more").stdout for _ in range(2)}
    assert len(generated) == 2
    assert created(emu, "another one, please") == 2 and created(emu, "and one more") == 2


def test_a_rerun_downloads_the_outputs_of_a_task_that_ended_meanwhile(siray, emu, tmp_path):
    """Killed after the task succeeded but before its files landed: the rerun fetches them from
    that task (its files already there are its own), without a new task."""
    emu.state.faults.add(Fault(action="status", status=503, path="^/(files|redirect)", count=0))
    try:
        first = siray("run", IMAGE, "ended meanwhile", "-o", str(tmp_path))
    finally:
        release_held(emu)
    assert first.exit_code == 5, first
    again = siray("run", IMAGE, "ended meanwhile", "-o", str(tmp_path))
    assert again.exit_code == 0, again
    (path,) = again.lines
    assert Path(path).read_bytes()[:4] == b"\x89PNG"
    assert created(emu, "ended meanwhile") == 1
    assert siray("run", IMAGE, "ended meanwhile", "-o", str(tmp_path)).exit_code == 0
    assert created(emu, "ended meanwhile") == 2  # handed over: the next run is a new task


def test_two_runs_of_the_same_request_at_once_pay_once(make_emulator):
    # the second starts while the first's task runs (a minute of the emulator's clock, which
    # only the test moves on), so however slowly a loaded machine starts the second, it finds
    # that task and follows it; then the clock moves on and both end with the same outputs
    server = make_emulator(task_seconds=60)
    prompt = "two terminals, one request"
    beat = {"SIRAY_POLL_INTERVAL": "0.1"}  # seen soon after the clock moves on
    first = start(server, "run", IMAGE, prompt, env=beat)
    wait_for(lambda: created(server, prompt) == 1, "the first create request")
    second = start(server, "run", IMAGE, prompt, env=beat)
    said: list[str] = []
    assert second.stderr is not None
    pump = threading.Thread(target=lambda: said.extend(second.stderr or []), daemon=True)
    pump.start()
    wait_for(lambda: any("instead of paying again" in line for line in said), "the second run")
    server.state.clock.advance(120)
    first_out, first_err = first.communicate(timeout=60)
    assert second.stdout is not None
    second_out = second.stdout.read()
    second.wait(timeout=60)
    pump.join(timeout=10)
    assert [first.returncode, second.returncode] == [0, 0], (first_err, said)
    assert first_out == second_out  # the same outputs
    assert created(server, prompt) == 1


def test_a_batch_rerun_without_resume_follows_the_tasks_it_had_started(
    siray, emu, isolated_environment, tmp_path
):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "[hold] batch rerun 1", "name": "one"},
        {"prompt": "[hold] batch rerun 2", "name": "two"},
        {"prompt": "[hold] batch rerun 2", "name": "three"},  # the same request: its own task
    )
    first = start(emu, "run", "--batch", str(jobs), "-m", IMAGE)
    wait_for(lambda: len(recorded_ids(isolated_environment)) == 3, "the tasks")
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 143, stderr
    ids = sorted(r["task_id"] for r in rows(isolated_environment))

    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "--timeout", "0.3")
    results = [json.loads(line) for line in again.lines]
    assert sorted(r["task_id"] for r in results) == ids
    assert {r["resumed"] for r in results} == {"rejoined"}
    assert created(emu, "[hold] batch rerun 1") == 1
    assert created(emu, "[hold] batch rerun 2") == 2


def test_two_batches_of_the_same_jobs_at_once_pay_once(make_emulator, tmp_path):
    """The same jobs in two files that differ (a blank line): not the same batch to the batch
    lock, but every job is submitted once, and both runs end with its outputs. The tasks run
    until the emulator's clock moves, so the two runs overlap however slow this machine is."""
    server = make_emulator(task_seconds=60)
    prompts = [f"two batches {n}" for n in range(4)]
    one = write_jobs(tmp_path / "one.jsonl", *({"prompt": p} for p in prompts))
    two = tmp_path / "two.jsonl"
    two.write_text(one.read_text() + "\n")
    server.state.faults.add(Fault(action="delay", delay=0.2, method="POST", path=CREATE, count=8))
    runs = [
        start(server, "run", "--batch", str(path), "-m", IMAGE, "--concurrency", "4")
        for path in (one, two)
    ]
    said: list[list[str]] = [[], []]
    readers = [
        threading.Thread(target=lambda run=run, lines=lines: lines.extend(run.stderr), daemon=True)
        for run, lines in zip(runs, said, strict=True)
    ]
    for reader in readers:
        reader.start()
    # every line of both runs submitted, or following the other run's task (told as rejoined)
    # (a line's own words: the notice "the same request was submitted at ..." that may come
    # before a rejoined line is not a fifth start)
    started = (": submitted", ": rejoined")
    try:
        wait_for(
            lambda: all(sum(s.rstrip().endswith(started) for s in lines) == 4 for lines in said),
            "starts",
        )
    except AssertionError:
        raise AssertionError(f"not every line started: {said}") from None
    server.state.clock.advance(120)
    for run, reader in zip(runs, readers, strict=True):
        run.wait(timeout=60)
        reader.join(timeout=10)
    outputs = ["".join(lines) for lines in said]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [created(server, p) for p in prompts] == [1, 1, 1, 1], outputs
    # each line is told submitted by the run that paid for it, rejoined by the other
    assert sum(text.count(": submitted") for text in outputs) == 4, outputs
    assert sum(text.count(": rejoined") for text in outputs) == 4, outputs


def test_an_unanswered_submit_is_not_guessed_about_by_a_rerun(siray, emu, isolated_environment):
    """Siray takes no idempotency key: a rerun cannot know whether the lost submit created a
    task, so it refuses (exit 5) and says how to check; --new submits anyway."""
    prompt = "killed mid-create, then rerun"
    kill_mid_create(emu, CREATE, "run", IMAGE, prompt)
    dry = siray("run", IMAGE, prompt, "--dry-run")  # refused as the submit would be
    assert dry.exit_code == 5 and "got no answer and may have created a task" in dry.stderr
    again = siray("run", IMAGE, prompt)
    assert again.exit_code == 5, again
    assert "got no answer and may have created a task" in again.stderr
    assert "--new" in again.stderr
    wait_for(lambda: created(emu, prompt) == 1, "the delayed create")
    assert siray("run", IMAGE, prompt, "--new").exit_code == 0
    assert created(emu, prompt) == 2


@pytest.mark.parametrize("command", ["run", "generate"])
def test_a_higgsfield_rerun_sends_an_unanswered_submit_again_with_its_key(
    siray, emu, isolated_environment, command
):
    prompt = f"higgsfield {command} killed mid-create"
    kill_mid_create(emu, "seedream", command, HF_IMAGE, prompt, env=HF)
    (record,) = rows(isolated_environment)
    assert record["task_id"] is None and record["idempotency_key"]
    wait_for(lambda: created(emu, prompt) == 1, "the delayed create")
    dry = siray(command, HF_IMAGE, prompt, "--dry-run", "--json", env=HF)
    assert dry.exit_code == 0, dry
    assert dry.json()["would"] == "resend"
    assert dry.json()["headers"] == {"Idempotency-Key": record["idempotency_key"]}
    again = siray(command, HF_IMAGE, prompt, env=HF)
    assert again.exit_code == 0, again
    assert "with the same idempotency key" in again.stderr
    assert created(emu, prompt) == 1
    (settled,) = rows(isolated_environment)  # the unanswered attempt is settled by the answer
    assert settled["task_id"] and settled["idempotency_key"] == record["idempotency_key"]


def test_a_higgsfield_submit_answered_500_is_sent_again_with_its_key(siray, emu):
    """The contract lists 500 with 502-504: a submit may be repeated with the same key. The
    first attempt created the request, so the second gets the original back."""
    prompt = "higgsfield answered 500"
    emu.state.faults.add(Fault(action="drop-after", method="POST", path="seedream", count=1))
    emu.state.faults.add(Fault(action="status", status=500, method="POST", path="seedream"))
    try:
        done = siray("run", HF_IMAGE, prompt, env=HF)
    finally:
        release_held(emu)
    assert done.exit_code == 0, done
    assert created(emu, prompt) == 1


def test_a_batch_forced_to_stop_mid_submit_says_the_submits_got_no_answer(emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "forced one"}, {"prompt": "forced two"})
    create = emu.state.faults.add(
        Fault(action="delay", delay=3, method="POST", path=CREATE, count=2)
    )
    process = start(emu, "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2")
    try:
        wait_for(lambda: create.fired == 2, "both create requests")
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        assert any("waiting for submits under way" in line for line in process.stderr)
        process.send_signal(signal.SIGTERM)  # forced: the submits are not waited for
        _, stderr = process.communicate(timeout=30)
    finally:
        release_held(emu)
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM); 0 tasks keep running" in stderr
    assert "2 submits got no answer and may have created tasks" in stderr
    assert "siray history --status UNCERTAIN" in stderr


def test_a_run_stopped_while_downloading_says_how_to_fetch_the_outputs(emu, tmp_path):
    files = emu.state.faults.add(
        Fault(action="delay", delay=5, method="GET", path="^/(files|redirect)", count=1)
    )
    process = start(emu, "run", IMAGE, "stopped mid-download", "-o", str(tmp_path / "out"))
    try:
        wait_for(lambda: files.fired, "the download")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        release_held(emu)
    assert process.returncode == 143, stderr
    (task,) = [t for t in emu.state.tasks.values() if t.body["prompt"] == "stopped mid-download"]
    assert f"siray download {task.task_id} -o {tmp_path / 'out'}" in stderr


def test_following_a_stopped_runs_hint_then_running_it_again_pays_once(
    siray, make_emulator, tmp_path, isolated_environment
):
    """`run -o DIR` stopped while waiting: its hint keeps `-o DIR`; a `status --wait` that only
    printed the URLs did not hand the result over where `run` asked, so running the same `run`
    again fetches the finished task's files into DIR instead of paying for a new task."""
    server = make_emulator(task_seconds=60)
    prompt, out = "a run stopped before its files landed", tmp_path / "out"
    first = start(server, "run", IMAGE, prompt, "-o", str(out))
    wait_for(lambda: recorded_ids(isolated_environment), "its record")
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 143, stderr
    (task_id,) = recorded_ids(isolated_environment)
    assert f"resume with: siray status {task_id} --wait -o {out}" in stderr

    server.state.clock.advance(120)
    shown = siray("status", task_id, "--wait", "--timeout", "5", server=server)  # minus -o
    assert shown.exit_code == 0 and f"{task_id}\tSUCCESS" in shown.stdout, shown
    assert not out.exists() or not list(out.iterdir())

    again = siray("run", IMAGE, prompt, "-o", str(out), server=server)
    assert again.exit_code == 0, again
    assert f"task {task_id} succeeded, but its files never reached {out}" in again.stderr
    assert [Path(line).parent for line in again.lines] == [out]
    assert created(server, prompt) == 1

    # once the files are where `run` asked, running it again asks for a new task, as before
    anew = siray("run", IMAGE, prompt, "-o", str(out), "--timeout", "0.3", server=server)
    assert anew.exit_code == 4 and created(server, prompt) == 2, anew


def test_a_rerun_after_the_hint_was_followed_never_overwrites_the_files_there(
    siray, make_emulator, tmp_path, isolated_environment
):
    """Found by a new user: the stopped `run -o DIR`'s hint (`status ID --wait -o DIR`) saved
    the files; a file then edited by hand was overwritten by running the same `run` again
    (which said the files had never arrived). The rerun pays nothing and keeps what is there."""
    server = make_emulator(task_seconds=60)
    prompt, out = "a hint followed, then a rerun", tmp_path / "out"
    first = start(server, "run", IMAGE, prompt, "-o", str(out))
    wait_for(lambda: recorded_ids(isolated_environment), "its record")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=30)
    (task_id,) = recorded_ids(isolated_environment)
    hint = f"siray status {task_id} --wait -o {out}"
    assert f"resume with: {hint}" in stderr, stderr
    server.state.clock.advance(120)
    assert siray(*hint.split()[1:], server=server).exit_code == 0
    [saved] = out.iterdir()
    saved.write_text("my edits")
    again = siray("run", IMAGE, prompt, "-o", str(out), server=server)
    assert again.exit_code == 0, again
    assert f"its files are in {out} already" in again.stderr
    assert "never reached" not in again.stderr
    assert saved.read_text() == "my edits"  # kept, never overwritten without --force
    assert again.lines == [str(saved)]
    assert created(server, prompt) == 1


def test_following_a_stopped_batchs_hint_pays_for_no_line_twice(
    siray, make_emulator, tmp_path, isolated_environment
):
    server = make_emulator(task_seconds=60)
    out = tmp_path / "out"
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"a stopped batch, line {n}", "name": f"line{n}"} for n in range(3)),
    )
    process = start(server, "run", "--batch", str(jobs), "-m", IMAGE, "-o", str(out))
    wait_for(lambda: len(recorded_ids(isolated_environment)) == 3, "three submits")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    hint = f"siray run --batch {jobs} --model {IMAGE} -o {out} --resume"
    assert f"resume with: {hint}" in stderr

    server.state.clock.advance(120)
    # the old advice: wait for every pending task (their files do not land), then run the
    # batch again as it was (without --resume): the lines' tasks are followed, none paid again
    assert siray("status", "--all-pending", "--wait", server=server).exit_code == 0
    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "-o", str(out), server=server)
    assert again.exit_code == 0, again
    assert sorted(p.stem for p in out.iterdir()) == ["line0", "line1", "line2"]
    assert created(server) == 3

    # and the new hint, followed to the letter, pays for nothing either
    words = hint.split()[1:]
    assert siray(*words, server=server).exit_code == 0
    assert created(server) == 3


def test_a_second_host_handing_out_an_id_the_first_used_is_the_one_asked(
    siray, make_emulator, tmp_path, isolated_environment
):
    """The history knows a task by provider, host and id: an id a second host hands out again
    (a reset sandbox, another emulator) does not send `run` to the first host's task."""
    first, second = make_emulator(), make_emulator()
    taken = siray("generate", IMAGE, "[hold] on the first host", server=first).stdout.strip()
    make = second.state.new_task
    second.state.new_task = lambda *args, **kwargs: make(*args, **{**kwargs, "task_id": taken})
    result = siray("run", IMAGE, "on the second host", "--timeout", "10", server=second)
    assert result.exit_code == 0, result
    assert result.stdout.startswith(f"{second.url}/"), result
    hosts = sorted(r["base_url"] for r in rows(isolated_environment) if r["task_id"] == taken)
    assert hosts == sorted([first.url, second.url])
    assert siray("status", taken, server=first).exit_code == 0  # the newest host is asked


def test_tasks_made_under_emulator_exec_stay_out_of_the_real_history(
    siray, emu, isolated_environment
):
    """A task left pending on an emulator that `exec` started is gone with it: it must not stay
    pending in the user's history (`status --all-pending` would fail for good)."""
    inner = [*siray_command("generate", IMAGE, "[hold] under exec")]
    ran = subprocess.run(
        [*siray_command("emulator", "exec", "--"), *inner],
        check=False,
        capture_output=True,
        text=True,
        env=subprocess_env(emu),
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip()
    assert rows(isolated_environment) == []
    pending = siray("status", "--all-pending")
    assert pending.exit_code == 0 and "no pending task" in pending.stderr, pending


def test_history_forget_sets_aside_a_task_of_a_server_gone_for_good(
    siray, make_emulator, isolated_environment
):
    gone = make_emulator()
    lost = siray("generate", IMAGE, "[hold] on a server now gone", server=gone).stdout.strip()
    gone.stop()
    stuck = siray("status", "--all-pending")
    assert stuck.exit_code == 5 and f"siray history forget {lost}" in stuck.stderr, stuck
    forgot = siray("history", "forget", lost)
    assert forgot.exit_code == 0 and "removed 1 task" in forgot.stderr, forgot
    assert siray("status", "--all-pending").exit_code == 0
    unknown = siray("history", "forget", "image_not_there")
    assert unknown.exit_code == 2 and "not in the history: image_not_there" in unknown.stderr


def test_a_stopped_batchs_hint_keeps_the_profile_and_host_it_ran_with(
    siray, make_emulator, tmp_path, isolated_environment
):
    """The batch ran with --profile and --base-url: the command its hint gives does too (under
    another profile, or on the default host, every line would be paid again)."""
    server = make_emulator(task_seconds=60)
    assert siray("--profile", "work", "config", "set", "timeout", "100").exit_code == 0
    jobs = write_jobs(tmp_path / "jobs.jsonl", *({"prompt": f"profiled {n}"} for n in range(2)))
    root = ["--profile", "work", "--base-url", server.url]
    process = start(server, *root, "run", "--batch", str(jobs), "-m", IMAGE)
    wait_for(lambda: len(recorded_ids(isolated_environment)) == 2, "two submits")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    hint = (
        f"siray --profile work --base-url {server.url} run --batch {jobs} --model {IMAGE} --resume"
    )
    assert f"resume with: {hint}" in stderr
    server.state.clock.advance(120)
    assert siray(*hint.split()[1:], env={"SIRAY_BASE_URL": "http://127.0.0.1:9"}).exit_code == 0
    assert created(server) == 2


def test_a_dry_run_of_a_rerun_says_it_would_follow_the_task_and_sends_nothing(
    siray, emu, isolated_environment
):
    prompt = "[hold] a dry rerun"
    first = siray("run", IMAGE, prompt, "--timeout", "0.3")
    assert first.exit_code == 4, first
    (record,) = rows(isolated_environment)
    dry = siray("run", IMAGE, prompt, "--dry-run", "--json")
    assert dry.exit_code == 0, dry
    shown = dry.json()
    assert (shown["would"], shown["task_id"], shown["body"]) == ("follow", record["task_id"], None)
    anew = siray("run", IMAGE, prompt, "--new", "--dry-run")
    assert anew.exit_code == 0, anew
    assert anew.lines[0] == f"POST {emu.url}{CREATE}"
    assert created(emu, prompt) == 1 and len(rows(isolated_environment)) == 1


def test_a_batch_whose_lines_hit_the_timeout_says_how_to_follow_them(
    siray, make_emulator, tmp_path
):
    # tasks still running when --timeout ends the wait are told with the command that follows
    # them; doing exactly that, once they have ended, fetches their files and pays for nothing
    server = make_emulator(task_seconds=60)
    out = tmp_path / "out"
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"a slow line {n}", "name": f"slow{n}"} for n in range(2)),
    )
    first = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "-o", str(out), "--timeout", "1", server=server
    )
    assert first.exit_code == 1, first
    hint = f"siray run --batch {jobs} --model {IMAGE} -o {out} --resume"
    assert f"2 tasks may still finish: resume with: {hint} (it follows them" in first.stderr
    server.state.clock.advance(120)
    followed = siray(*hint.split()[1:], server=server)
    assert followed.exit_code == 0, followed
    assert sorted(p.stem for p in out.iterdir()) == ["slow0", "slow1"]
    assert created(server) == 2


def _spoil_record(home: Path, row: int) -> None:
    """Make a row of the history unreadable as a record, as a hand edit or a broken disk would:
    its task's id, state and key still read, its request does not."""
    with sqlite3.connect(database(home)) as db:
        db.execute("UPDATE tasks SET request = '{not json' WHERE id = ?", (row,))


def _batch_with_a_spoiled_line(siray, home: Path, tmp_path: Path, *prompts: str) -> Path:
    """A batch of these prompts, run until it gives up waiting (its tasks not handed over, so
    rejoined by a rerun), then its first line's record made unreadable."""
    lines = ({"prompt": prompt, "name": f"line-{n}"} for n, prompt in enumerate(prompts))
    jobs = write_jobs(tmp_path / "jobs.jsonl", *lines)
    first = siray("run", "--batch", str(jobs), "-m", IMAGE, "--timeout", "0.01", "--json")
    assert first.exit_code != 0, first  # given up waiting
    _spoil_record(home, next(r["id"] for r in rows(home) if r["batch_line"] == 1))
    return jobs


def _by_line(stdout: str) -> dict[int, dict]:
    """A batch's --json lines that are about one of its lines, by line."""
    return {r["line"]: r for r in map(json.loads, stdout.splitlines()) if "line" in r}


def _task_of_line(home: Path, line: int) -> str:
    return next(r["task_id"] for r in rows(home) if r["batch_line"] == line)


def test_a_rerun_never_pays_again_for_a_task_whose_record_cannot_be_read(
    siray, emu, isolated_environment
):
    """An earlier attempt whose record cannot be read still counts: its task exists, so a rerun
    refuses (exit 5) instead of paying again, says which task, and its hint is safe to follow
    (a look at the task, then the same rerun, pays nothing); --new pays knowingly. Before,
    the attempt was skipped and the rerun paid for the job again."""
    prompt = "a record that cannot be read"
    first = siray("run", IMAGE, prompt, "--timeout", "0.01")
    assert first.exit_code == 4, first  # given up waiting: its rerun would follow the task
    (record,) = rows(isolated_environment)
    task_id = record["task_id"]
    _spoil_record(isolated_environment, record["id"])
    again = siray("run", IMAGE, prompt)
    assert again.exit_code == 5, again
    assert f"(task {task_id}) cannot be read" in again.stderr
    assert f"siray status {task_id} --wait -o DIR" in again.stderr and "--new" in again.stderr
    as_json = siray("run", IMAGE, prompt, "--json")
    assert as_json.exit_code == 5 and as_json.json()["error"]["task_id"] == task_id
    # the hint, followed as written, then the same rerun: nothing paid
    assert siray("status", task_id).exit_code == 0
    fetched = siray("status", task_id, "--wait", "-o", str(isolated_environment / "fetched"))
    assert fetched.exit_code == 0, fetched
    assert siray("run", IMAGE, prompt).exit_code == 5
    assert created(emu, prompt) == 1
    assert siray("run", IMAGE, prompt, "--new").exit_code == 0
    assert created(emu, prompt) == 2


def test_a_batch_line_whose_earlier_record_cannot_be_read_is_reported_not_paid_again(
    siray, emu, isolated_environment, tmp_path
):
    """The same for a batch's line: reported, with the batch's other lines run."""
    jobs = _batch_with_a_spoiled_line(
        siray, isolated_environment, tmp_path, "batch record unreadable", "batch record fine"
    )
    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "--json")
    assert again.exit_code != 0, again
    results = _by_line(again.stdout)
    assert "cannot be read" in results[1]["error"]["message"]
    assert results[2]["status"] == "SUCCESS"
    assert created(emu, "batch record unreadable") == 1
    assert created(emu, "batch record fine") == 1


def test_a_batch_line_refused_so_is_followed_by_resume_from_on_a_fresh_runner(
    siray, emu, isolated_environment, tmp_path
):
    """The refused line's result names its task, so --resume-from on a runner with no history
    (CI's re-run) follows that task instead of holding the line as unanswered, whose hint
    (--resubmit-uncertain) would then pay for it again. From an adversarial review: the task
    id was only in the message."""
    prompt = "resume-from a record that cannot be read"
    jobs = _batch_with_a_spoiled_line(siray, isolated_environment, tmp_path, prompt)
    refused = siray("run", "--batch", str(jobs), "-m", IMAGE, "--json")
    results = tmp_path / "results.jsonl"
    results.write_text(refused.stdout)
    fresh = {"SIRAY_DATA_DIR": str(tmp_path / "fresh-runner")}
    args = ["run", "--batch", str(jobs), "-m", IMAGE, "--resume-from", str(results)]
    again = siray(*args, env=fresh)
    assert again.exit_code == 0, again
    assert siray(*args, "--resubmit-uncertain", env=fresh).exit_code == 0
    assert created(emu, prompt) == 1


def test_an_unanswered_higgsfield_submit_whose_record_cannot_be_read_is_sent_again_with_its_key(
    siray, emu, isolated_environment
):
    """Its record does not read, but the key it was sent with does (the history's index): the
    rerun sends it again with that key, so the service answers with the first request instead
    of a second task. From an adversarial review: it was refused, with a hint pointing at a
    listing of the history that cannot show an unreadable row."""
    prompt = "higgsfield unanswered, record unreadable"
    kill_mid_create(emu, "seedream", "run", HF_IMAGE, prompt, env=HF)
    (record,) = rows(isolated_environment)
    assert record["task_id"] is None and record["idempotency_key"]
    wait_for(lambda: created(emu, prompt) == 1, "the delayed create")
    _spoil_record(isolated_environment, record["id"])
    again = siray("run", HF_IMAGE, prompt, env=HF)
    assert again.exit_code == 0, again
    assert "with the same idempotency key" in again.stderr
    assert created(emu, prompt) == 1


def test_an_unanswered_siray_submit_whose_record_cannot_be_read_is_refused_without_a_listing(
    siray, emu, isolated_environment
):
    """Without a key, whether it made a task is not known: refused, and the hint does not send
    the user to a listing of the history, which cannot show an unreadable row."""
    prompt = "siray unanswered, record unreadable"
    kill_mid_create(emu, CREATE, "run", IMAGE, prompt)
    (record,) = rows(isolated_environment)
    _spoil_record(isolated_environment, record["id"])
    again = siray("run", IMAGE, prompt)
    assert again.exit_code == 5, again
    assert "cannot be read" in again.stderr and "history --status" not in again.stderr
    assert "whether it made a task is not known: --new submits it anyway" in again.stderr
    wait_for(lambda: created(emu, prompt) == 1, "the delayed create")
    assert siray("run", IMAGE, prompt).exit_code == 5
    assert created(emu, prompt) == 1


def test_a_batch_dry_run_shows_the_refusal_of_a_line_whose_task_record_cannot_be_read(
    siray, emu, isolated_environment, tmp_path
):
    """The batch's plan reads a followed task from the index alone, but the line's run reads its
    record and refuses the line when it cannot: the --dry-run says so too, naming the task,
    instead of "follow". From an adversarial review."""
    jobs = _batch_with_a_spoiled_line(
        siray, isolated_environment, tmp_path, "dry run, record unreadable", "dry run, fine"
    )
    spoiled = _task_of_line(isolated_environment, 1)
    dry = siray("run", "--batch", str(jobs), "-m", IMAGE, "--dry-run", "--json")
    shown = _by_line(dry.stdout)
    assert shown[1]["would"] == "report", shown[1]
    assert f"(task {spoiled}) cannot be read" in shown[1]["error"], shown[1]
    assert shown[2]["would"] == "follow", shown[2]
    real = siray("run", "--batch", str(jobs), "-m", IMAGE, "--json")
    assert real.exit_code != 0
    results = _by_line(real.stdout)
    assert "cannot be read" in results[1]["error"]["message"]
    assert created(emu, "dry run, record unreadable") == 1
