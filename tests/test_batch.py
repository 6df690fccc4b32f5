"""`siray run --batch`: every line checked before any is paid for, bounded concurrency, a result
per task as soon as it ends, --resume without paying twice, and Ctrl-C that loses no id."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time

import httpx
import pytest
from helpers import (
    CREATE,
    GEMINI_IMAGE,
    NO_CERTIFICATES,
    created,
    database,
    emulator_stats,
    release_held,
    rows,
    run_in_terminal,
    siray_command,
    start,
    subprocess_env,
    wait_for,
    write_jobs,
)
from helpers import Z_IMAGE as IMAGE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siray_cli.domain import TaskKind
from siray_cli.emulator.faults import Fault

GEMINI_I2I = "google/gemini-2.5-flash-image-i2i"  # an image model that takes an image
JOBS = [
    {"prompt": "a red fox", "name": "fox", "inputs": {"size": "1024x768"}},
    {"prompt": "an owl", "name": "owl", "inputs": {"size": "768x1024", "seed": 3}},
    {"model": "google/veo-3-fast-t2v", "prompt": "waves", "name": "waves"},
]


def test_batch_on_a_pipe_reports_each_task_as_json_and_downloads_by_name(siray, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", *JOBS)
    result = siray(
        "run",
        "--batch",
        str(jobs),
        "-m",
        IMAGE,
        "-o",
        str(tmp_path / "out"),
        "--poll-interval",
        "0.2",
    )
    assert result.exit_code == 0, result
    results = {r["line"]: r for r in map(json.loads, result.lines)}
    assert sorted(results) == [1, 2, 3]
    assert results[1]["files"] == [str(tmp_path / "out" / "fox.png")]
    assert results[3]["files"] == [str(tmp_path / "out" / "waves.mp4")]
    assert all(r["status"] == "SUCCESS" and r["error"] is None for r in results.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "fox.png",
        "owl.png",
        "waves.mp4",
    ]
    assert "batch: 3 succeeded, 0 failed, of 3" in result.stderr
    assert "line 1 (fox) image_" in result.stderr  # plain progress lines on stderr
    assert "\r" not in result.stderr


def test_a_batch_run_in_another_process_leaves_its_objects_collectable(siray, tmp_path):
    """Freezing what lives to the end (collection.py) is for siray's own process: one that
    runs a batch among its own work (this test's, through CliRunner) keeps every object it
    had collectable, its garbage cycles and their open files included."""
    import gc

    frozen = gc.get_freeze_count()
    jobs = write_jobs(tmp_path / "jobs.jsonl", *JOBS[:2])
    result = siray("run", "--batch", str(jobs), "-m", IMAGE)
    assert result.exit_code == 0, result
    assert len(result.lines) == 2
    assert gc.get_freeze_count() == frozen


def test_batch_on_a_terminal_shows_an_overall_bar(emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", *JOBS)
    code, screen = run_in_terminal(
        siray_command("run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2"),
        subprocess_env(emu),
    )
    assert code == 0, screen
    assert "batch" in screen and "done 3 · failed 0 · running 0" in screen
    assert "3/3" in screen
    assert re.search(r"line 1 \(fox\)\s+image_\w+\s+SUCCESS\s+http://", screen)


def test_csv_with_a_header_is_accepted_and_typed_by_the_schema(siray, emu, tmp_path):
    (tmp_path / "jobs.csv").write_text(
        "prompt,size,seed,name\na cat,1024x768,7,cat\na dog,768x1024,,dog\n"
    )
    result = siray("run", "--batch", str(tmp_path / "jobs.csv"), "-m", IMAGE)
    assert result.exit_code == 0, result
    bodies = sorted(
        (t.body for t in emu.state.tasks.values() if t.body["prompt"] in ("a cat", "a dog")),
        key=lambda b: b["prompt"],
    )
    assert bodies[0]["seed"] == 7 and "seed" not in bodies[1]


def test_one_bad_line_rejects_the_whole_batch_before_any_submit(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        JOBS[0],
        {"prompt": "x", "inputs": {"size": "1024x1000"}},
        JOBS[1],
        {"model": "nobody/nothing", "prompt": "x"},
        {"prompt": ""},
    )
    before = created(emu)
    result = siray("run", "--batch", str(jobs), "-m", IMAGE)
    assert result.exit_code == 2, result
    assert "3 bad lines, nothing was submitted" in result.stderr
    assert (
        'line 2: invalid inputs for alibaba/z-image-turbo-t2i: size: "1024x1000"' in result.stderr
    )
    assert "line 4: model 'nobody/nothing' is not in the catalogue" in result.stderr
    assert "line 5: no prompt given" in result.stderr
    assert created(emu) == before


def test_malformed_lines_and_duplicate_names(siray, tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"prompt": "a"}\nnot json\n{"promt": "c"}\n')
    result = siray("run", "--batch", str(tmp_path / "jobs.jsonl"), "-m", IMAGE)
    assert result.exit_code == 2
    assert "line 2: not valid JSON (Expecting value at column 1)" in result.stderr
    assert "line 3: unknown field 'promt'" in result.stderr
    names = write_jobs(tmp_path / "names.jsonl", JOBS[0], dict(JOBS[1], name="fox"))
    result = siray("run", "--batch", str(names), "-m", IMAGE)
    assert result.exit_code == 2
    assert "line 2: name 'fox' is already used on line 1" in result.stderr


def test_partial_failure_exits_1_and_batch_reads_stdin(siray):
    lines = "\n".join(
        json.dumps(j)
        for j in (
            {"prompt": "fine", "inputs": {"size": "1024x768"}},
            {"prompt": "[fail] broken", "inputs": {"size": "1024x768"}},
        )
    )
    result = siray("run", "--batch", "-", "-m", IMAGE, input=lines)
    assert result.exit_code == 1, result
    statuses = sorted(json.loads(line)["status"] for line in result.lines)
    assert statuses == ["FAILURE", "SUCCESS"]
    assert "batch: 1 succeeded, 1 failed, of 2" in result.stderr


def test_resume_skips_succeeded_lines_and_pays_only_for_the_rest(
    siray, emu, tmp_path, isolated_environment
):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        JOBS[0],
        JOBS[1],
        {"prompt": "[fail] x", "inputs": {"size": "1024x768"}},
    )
    first = siray("run", "--batch", str(jobs), "-m", IMAGE)
    assert first.exit_code == 1
    before = created(emu)
    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "--resume")
    assert again.exit_code == 1
    assert created(emu) == before + 1  # only the failed line was submitted again
    resumed = {json.loads(line)["line"]: json.loads(line)["resumed"] for line in again.lines}
    assert resumed == {1: "skipped", 2: "skipped", 3: None}
    with sqlite3.connect(database(isolated_environment)) as db:
        lines = [row[0] for row in db.execute("SELECT batch_line FROM tasks ORDER BY id")]
    assert lines == [1, 2, 3, 3] or sorted(lines) == [1, 2, 3, 3]


def test_resume_rejoins_a_task_still_running(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "slow [hold]", "inputs": {"size": "1024x768"}}
    )
    first = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--timeout", "0.5", "--poll-interval", "0.1"
    )
    assert first.exit_code == 1
    task_id = json.loads(first.stdout)["task_id"]
    httpx.post(  # ended behind siray's back: the history still has it running
        f"{emu.url}/v1/images/generations/async/{task_id}/cancel",
        headers={"Authorization": f"Bearer {emu.config.api_key}"},
        verify=NO_CERTIFICATES,
    ).raise_for_status()
    before = created(emu)
    again = siray("run", "--batch", str(jobs), "-m", IMAGE, "--resume")
    assert created(emu) == before  # rejoined, not resubmitted
    assert json.loads(again.stdout)["task_id"] == task_id


def test_concurrency_is_bounded(siray, emu, tmp_path):
    prompts = {f"bounded {n}" for n in range(6)}
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": prompt, "inputs": {"size": "1024x768"}} for prompt in sorted(prompts)),
    )
    result = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2", "--poll-interval", "0.1"
    )
    assert result.exit_code == 0, result
    # this batch's tasks only: a task another test left to be created late is not one of them
    ours = {t.task_id for t in emu.state.tasks.values() if t.body.get("prompt") in prompts}
    spans = [
        (t["created_at"], t["finishes_at"])
        for t in emulator_stats(emu)["tasks"]
        if t["task_id"] in ours
    ]
    assert len(spans) == 6
    most = max(sum(1 for a, b in spans if a <= moment < b) for moment, _ in spans)
    assert most <= 2


def test_a_batch_on_the_adaptive_schedule_looks_at_most_twice_at_tasks_shorter_than_a_look(
    siray, emu, tmp_path
):
    # the other tests poll on a fixed beat; here the tasks of one model share what they learn
    # (peers): the first look (0.5 s) finds each of the first two 0.2 s tasks done, and the
    # others are looked at sooner, as they enter the peers' window (from 0.25 s): at most one
    # look more each, when that one came a little early
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"peer {n}", "inputs": {"size": "1024x768"}} for n in range(4)),
    )
    started = time.time()
    result = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2",
        env={"SIRAY_POLL_INTERVAL": None},
    )  # fmt: skip
    assert result.exit_code == 0, result
    tasks = [t for t in emulator_stats(emu)["tasks"] if t["created_at"] >= started]
    looks = [t["status_requests"] for t in sorted(tasks, key=lambda t: t["created_at"])]
    assert len(looks) == 4 and looks[:2] == [1, 1] and all(n <= 2 for n in looks[2:]), looks


def test_submissions_respect_429_retry_after(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"after 429 {n}", "inputs": {"size": "1024x768"}} for n in range(3)),
    )
    emu.state.faults.add(
        Fault(action="status", status=429, retry_after=0.5, method="POST", count=1)
    )
    result = siray("run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "3")
    assert result.exit_code == 0, result
    # by prompt: the emulator is shared, and another test's delayed create may land meanwhile
    assert [created(emu, f"after 429 {n}") for n in range(3)] == [1, 1, 1]


def test_a_batch_slows_down_to_a_servers_rate_limit_and_loses_no_line(
    siray, make_emulator, tmp_path
):
    """The emulator refuses API requests beyond 8 a second with 429 and Retry-After: the batch
    learns the limit (a few refusals, not one per request), every line succeeds, and each is
    created once."""
    server = make_emulator(rate_limit=8, task_seconds=0.3)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"limited {n}", "inputs": {"size": "1024x768"}} for n in range(12)),
    )
    result = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "12", "--json", server=server
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for line in lines if line.get("status") == "SUCCESS") == 12
    assert len(server.state.tasks) == 12  # none paid twice
    refused = server.state.rate_limit.refused
    looks = sum(task.status_requests for task in server.state.tasks.values())
    assert 0 < refused <= looks // 2


def test_batch_takes_inputs_only_from_its_file(siray, tmp_path, isolated_environment):
    jobs = write_jobs(tmp_path / "jobs.jsonl", JOBS[0])
    result = siray("run", IMAGE, "--batch", str(jobs))
    assert result.exit_code == 2 and "--batch takes every job from its file" in result.stderr
    missing = siray("run", "--batch", str(tmp_path / "none.jsonl"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert not (isolated_environment / "data").exists()  # nothing was recorded, not even made


def test_ctrl_c_during_a_batch_keeps_every_id(emu, tmp_path, isolated_environment):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"[hold] interrupted {n}", "inputs": {"size": "1024x768"}} for n in range(5)),
    )
    process = start(emu, "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2")
    assert process.stderr is not None
    seen = []
    while len(seen) < 2:
        line = process.stderr.readline()
        assert line, "siray ended early"
        if "submitted" in line:
            seen.append(line.split()[-2].rstrip(":"))
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 130, rest
    # the hint takes the batch up again as it was run, without paying for a line twice
    assert f"resume with: siray run --batch {jobs} --model {IMAGE} --resume" in rest
    with sqlite3.connect(database(isolated_environment)) as db:
        recorded = {row[0] for row in db.execute("SELECT task_id FROM tasks")}
    made = {
        t.task_id
        for t in emu.state.tasks.values()
        if t.body["prompt"].startswith("[hold] interrupted")
    }
    assert set(seen) <= made
    assert made == recorded  # every task the emulator created is in the history
    assert all(task_id in rest for task_id in made)  # and was printed as still running
    assert len(made) <= 3  # no new submit after Ctrl-C (2 in flight, at most 1 under way)


def test_one_task_left_running_by_ctrl_c_is_told_in_the_singular(emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "[hold] alone", "inputs": {"size": "1024x768"}}
    )
    process = start(emu, "run", "--batch", str(jobs), "-m", IMAGE)
    assert process.stderr is not None
    while "submitted" not in (line := process.stderr.readline()):
        assert line, "siray ended early"
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 130, rest
    (task,) = [t for t in emu.state.tasks.values() if t.body["prompt"] == "[hold] alone"]
    assert f"error: interrupted; 1 task keeps running: {task.task_id}" in rest


def typed(stdout: str) -> list[dict]:
    """Every stdout line of `run --batch --json`: one JSON object, with its record type."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(r, dict) and "type" in r for r in records), stdout
    return records


def test_batch_json_is_typed_records_results_errors_then_a_summary(siray, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        JOBS[0],
        {"prompt": "[fail] typed", "inputs": {"size": "1024x768"}},
        JOBS[1],
    )
    result = siray("run", "--batch", str(jobs), "-m", IMAGE, "--json")
    assert result.exit_code == 1, result
    *lines, summary = typed(result.stdout)
    by_line = {r["line"]: r for r in lines}
    assert {n: r["type"] for n, r in by_line.items()} == {1: "result", 2: "error", 3: "result"}
    assert by_line[2]["status"] == "FAILURE" and by_line[2]["error"]["type"] == "task_failed"
    assert by_line[1]["name"] == "fox" and by_line[1]["outputs"]  # the fields kept as they were
    assert summary["type"] == "summary" and summary["states"] == {"FAILURE": 1, "SUCCESS": 2}
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (3, 2, 1)
    assert summary["seconds"] > 0
    assert "batch: 2 succeeded, 1 failed, of 3" in result.stderr  # people are still told


def test_a_batch_that_fails_its_checks_is_an_invalid_record_per_bad_line(siray, tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"prompt": "a"}\nnot json\n{"promt": "c"}\n')
    result = siray("run", "--batch", str(tmp_path / "jobs.jsonl"), "-m", IMAGE, "--json")
    assert result.exit_code == 2, result
    assert [(r["type"], r["line"]) for r in typed(result.stdout)] == [
        ("invalid", 1),
        ("invalid", 2),
        ("invalid", 3),
    ]
    assert typed(result.stdout)[1]["error"] == "not valid JSON (Expecting value at column 1)"
    assert "error: " in result.stderr and "3 bad lines" in result.stderr
    missing = siray("run", "--batch", str(tmp_path / "none.jsonl"), "--json")
    assert missing.exit_code == 2
    ((record),) = typed(missing.stdout)
    assert record["type"] == "invalid" and record["line"] is None
    assert "does not exist" in record["error"]


def test_sigint_mid_batch_with_json_ends_with_an_interrupted_record(emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"[hold] typed stop {n}", "inputs": {"size": "1024x768"}} for n in range(4)),
    )
    process = start(emu, "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2", "--json")
    assert process.stderr is not None
    seen = 0
    while seen < 2:
        line = process.stderr.readline()
        assert line, "siray ended early"
        seen += "submitted" in line
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    *submitted, record = typed(stdout)  # no line ended: each task as it began, then the stop
    made = {t.task_id for t in emu.state.tasks.values() if "typed stop" in t.body["prompt"]}
    assert record["type"] == "interrupted" and set(record["task_ids"]) == made
    assert {r["type"] for r in submitted} == {"submitted"}
    assert {r["task_id"] for r in submitted} == made and all(r["line"] for r in submitted)
    assert record["resume"] == f"siray run --batch {jobs} --model {IMAGE} --resume"
    assert f"resume with: {record['resume']}" in stderr  # and people are told as before


def test_batch_dry_run_uploads_and_submits_nothing_and_shows_what_the_run_sends(
    siray, make_emulator, tmp_path, isolated_environment
):
    server = make_emulator()
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(3000))
    cat = {"model": GEMINI_I2I, "prompt": "dry cat", "inputs": {"image": "cat.png"}}
    owl = {"prompt": "dry owl", "inputs": {"size": "768x1024", "seed": 3}, "name": "owl"}
    jobs = write_jobs(tmp_path / "jobs.jsonl", cat, owl)
    args = ("run", "--batch", str(jobs), "-m", IMAGE, "-o", "out")
    dry = siray(*args, "--dry-run", "--json", server=server)
    assert dry.exit_code == 0, dry
    *requests, summary = typed(dry.stdout)
    assert [(r["type"], r["line"], r["would"]) for r in requests] == [
        ("request", 1, "submit"),
        ("request", 2, "submit"),
    ]
    assert requests[0]["body"]["image"] == "@cat.png (would be uploaded, 3 KiB)"
    assert summary == {"type": "summary", "dry_run": True, "total": 2, "would": {"submit": 2}}
    assert emulator_stats(server)["requests"] == {"GET /api/model-verse/models": 1}
    assert rows(isolated_environment) == [] and not (tmp_path / "out").exists()
    plain = siray(*args, "--dry-run", server=server)  # without --json: a line a job
    assert plain.lines[1].startswith(f"line 2 (owl)\tPOST {server.url}/v1/images/")

    real = siray(*args, "--json", server=server)
    assert real.exit_code == 0, real
    sent = {t.body["prompt"]: t.body for t in server.state.tasks.values()}
    shown = {r["body"]["prompt"]: r["body"] for r in requests}
    assert shown["dry owl"] == sent["dry owl"]
    assert {**shown["dry cat"], "image": sent["dry cat"]["image"]} == sent["dry cat"]


SHARD_JOBS = [
    {"prompt": f"sharded {n}", "name": f"s{n}", "inputs": {"size": "1024x768"}} for n in range(12)
]


def names_in(result) -> list[str]:
    return sorted(r["name"] for r in map(json.loads, result.lines) if r.get("type") == "result")


def test_shards_split_a_batch_each_line_once_wherever_it_moves(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", *SHARD_JOBS)
    before = created(emu)
    shards = []
    for index in (1, 2, 3):
        result = siray("run", "--batch", str(jobs), "-m", IMAGE, "--shard", f"{index}/3", "--json")
        assert result.exit_code == 0, result
        assert f"shard {index}/3: " in result.stderr and " of the 12 lines" in result.stderr
        shards.append(names_in(result))
    assert sorted(name for shard in shards for name in shard) == sorted(
        j["name"] for j in SHARD_JOBS
    )
    assert created(emu) == before + 12  # each line paid for once, by its own shard
    # reordered, with lines added: every line keeps its shard (seen by dry runs: nothing paid)
    moved = write_jobs(
        tmp_path / "moved.jsonl",
        {"prompt": "a new line", "name": "new", "inputs": {"size": "1024x768"}},
        *reversed(SHARD_JOBS),
    )
    for index, names in zip((1, 2, 3), shards, strict=True):
        looked = siray(
            "run",
            "--batch",
            str(moved),
            "-m",
            IMAGE,
            "--shard",
            f"{index}/3",
            "--dry-run",
            "--json",
        )
        assert looked.exit_code == 0, looked
        seen = sorted(
            r["name"] for r in map(json.loads, looked.lines) if r.get("name") not in (None, "new")
        )
        assert seen == names
    assert created(emu) == before + 12


def test_a_shard_is_named_in_its_resume_hint_and_needs_a_batch(siray, make_emulator, tmp_path):
    server = make_emulator(task_seconds=60)
    jobs = write_jobs(tmp_path / "jobs.jsonl", *SHARD_JOBS[:4])
    waited = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--shard", "2/2", "--timeout", "1", server=server
    )
    assert f"--batch {jobs} --model {IMAGE} --shard 2/2 --resume" in waited.stderr, waited
    for bad in ("0/2", "3/2", "x", "1/0"):
        refused = siray("run", "--batch", str(jobs), "--shard", bad)
        assert refused.exit_code == 2 and "is not I/N" in refused.stderr, refused
    alone = siray("run", IMAGE, "x", "--shard", "1/2")
    assert alone.exit_code == 2 and "--shard splits a batch" in alone.stderr


def test_each_model_s_schema_is_compiled_once_for_every_line(siray, emu, tmp_path, monkeypatch):
    """A batch checks every line against its model's schema, and builds that schema's validator
    once, not once a line (issue 24: 10,000 lines are checked before the first submit)."""
    import jsonschema

    real = jsonschema.Draft202012Validator
    compiled: list[str] = []

    def counted(schema, *args, **kwargs):
        compiled.append(json.dumps(schema, sort_keys=True))
        return real(schema, *args, **kwargs)

    monkeypatch.setattr(jsonschema, "Draft202012Validator", counted)
    # lines that break their schema: a body it certainly accepts never needs jsonschema
    # (services/schema_check.py), one it may refuse is checked, and worded, by jsonschema
    bad_seed = {"size": "1024x768", "seed": 10**11}
    lines = [{"prompt": f"fox {n}", "inputs": bad_seed} for n in range(6)]
    unknown = {"seed": 3}  # an input the model does not take
    lines += [{"prompt": f"owl {n}", "model": GEMINI_IMAGE, "inputs": unknown} for n in range(6)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", *lines)
    result = siray("run", "--batch", str(jobs), "-m", IMAGE, "--dry-run", "--json")
    assert result.exit_code == 2, result
    assert "12 bad lines" in result.stderr, result.stderr
    assert len(compiled) == len(set(compiled)) == 2, compiled


@st.composite
def _stem_and_names(draw: st.DrawFn) -> tuple[str, set[str]]:
    """A line's name, and names in its directory: many of them begin as the line's files do."""
    stem = draw(st.text("ab._-0", min_size=1, max_size=4))
    begun = st.builds(lambda rest: stem + rest, st.text("ab._-0129", max_size=5))
    other = st.text("ab._-0129", min_size=1, max_size=9)
    return stem, draw(st.sets(st.one_of(begun, other), max_size=12))


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    drawn=_stem_and_names(),
    template=st.sampled_from([None, "{name}-{n}.{ext}", "{line}_{name}", "x{date}{name}*"]),
)
def test_the_files_a_batch_would_write_over_are_those_a_glob_of_the_directory_finds(
    tmp_path, drawn, template
):
    """A batch refuses to write over files that exist before it pays for anything: the names
    each line's globs match, in a listing of the directory read once (a glob of the directory
    for each of 10,000 lines took 4 s before the first submit), are the names Path.glob
    finds, hidden files, dots and indexes alike."""
    from siray_cli.names import NameTemplate
    from siray_cli.services.batch.jobs import PreparedJob
    from siray_cli.services.batch.plan import _Listing, _planned_globs

    stem, names = drawn
    directory = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
    directory.mkdir()
    for name in names:
        if name not in (".", ".."):
            (directory / name).touch()
    job = PreparedJob(7, stem, TaskKind.IMAGE, {"model": "m/x"}, "k")  # as a batch file names it
    shaped = NameTemplate(template.replace("*", "")) if template else None
    listing = _Listing(directory)
    for pattern in _planned_globs(job, shaped, "2026-12-07"):
        assert sorted(listing[pattern]) == sorted(p.name for p in directory.glob(pattern)), pattern


def test_a_batch_refuses_each_file_it_would_write_over_and_no_other(siray, emu, tmp_path):
    """Files named as a line's would be (its name, with an index, any extension) are refused
    before anything is paid for, each named; a name that only begins like it is not."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("one.png", "one_2.webp", "one-more.png", "onex.png", "two.txt", "three"):
        (out / name).write_text("kept")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *(
            {"prompt": f"clash {name}", "name": name, "inputs": {"size": "1024x768"}}
            for name in ("one", "two", "three", "four")
        ),
    )
    result = siray("run", "--batch", str(jobs), "-m", IMAGE, "-o", str(out))
    assert result.exit_code == 2, result
    refused = sorted(re.findall(r"line (\d): (\S+) exists", result.stderr))
    assert refused == [
        ("1", str(out / "one.png")),
        ("1", str(out / "one_2.webp")),
        ("2", str(out / "two.txt")),
    ], result.stderr
    assert not [t for t in emu.state.tasks.values() if t.body.get("prompt", "").startswith("clash")]


def test_lines_whose_keys_share_a_lock_stripe_are_submitted_at_once(
    siray, emu, tmp_path, monkeypatch
):
    """A job's lock (held over its create, so that another siray submitting the same job waits
    for its task id) is a stripe of a few hundred lock files: two different lines that share
    one must not wait for each other's create. Before, one in 256 pairs did: with 64 lines in
    flight, a handful of creates a wave went one after another (and a test that needs two
    creates out at once failed now and then)."""
    from siray_cli.services import ledger

    monkeypatch.setattr(ledger, "LOCK_STRIPES", 1)  # every job in one stripe
    prompts = ("shared stripe one", "shared stripe two")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", *({"prompt": p, "inputs": {"size": "1024x768"}} for p in prompts)
    )
    held = emu.state.faults.add(
        Fault(action="delay", delay=60, method="POST", path=CREATE, count=2)
    )
    results: list = []
    worker = threading.Thread(
        target=lambda: results.append(
            siray("run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2")
        )
    )
    worker.start()
    try:
        wait_for(lambda: held.fired == 2, "both creates out at once", timeout=10)
    finally:
        release_held(emu)  # the held creates are answered now
        worker.join(timeout=30)
    (result,) = results
    assert result.exit_code == 0, result
    assert sorted(json.loads(line)["status"] for line in result.lines) == [
        "SUCCESS",
        "SUCCESS",
    ]
    assert {created(emu, p) for p in prompts} == {1}
    assert ledger._job_locks == {}  # a job's lock lives while it is used: 10,000 lines keep none


def test_a_forked_child_forgets_the_job_locks_its_parent_holds():
    """A child enters no stripe on its parent's behalf (both could then send the same job): it
    takes the lock files anew, waiting for the parent as any other process does."""
    from siray_cli.services import ledger

    ledger._stripes[("a data dir", "held by the parent")] = ledger._Stripe()
    ledger._job_locks[b"a job"] = ledger._JobLock()
    read, write = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, bytes([len(ledger._stripes) + len(ledger._job_locks)]))
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"\0"
    finally:
        ledger._stripes.pop(("a data dir", "held by the parent"), None)
        ledger._job_locks.pop(b"a job", None)
        os.close(read)
        os.close(write)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def test_a_second_signal_the_kernel_hands_to_a_worker_still_cuts_the_wait_short():
    """A signal sent to the process may be handed by the kernel to any thread; Python runs its
    handler on the main thread only once that thread runs again. A batch's stop waits (up to
    15 s) for the submits under way; a second signal must cut that short even when a worker
    thread got it (seen once under load: the forced stop waited for a create held 3 s)."""
    from types import SimpleNamespace

    from siray_cli.services.batch.runner import BatchRunner

    entered, release = threading.Event(), threading.Event()

    class Flow:  # a line whose create is still out
        display = SimpleNamespace(counts_down=False, held=lambda *args: None)

        def previous(self, job):
            return None, None

        def submit(self, job):
            entered.set()
            release.wait(20)

    runner = BatchRunner([SimpleNamespace(line=1, name=None)], Flow(), concurrency=1)
    previous = signal.signal(signal.SIGUSR1, _raise_interrupt)
    try:
        runner.start()
        assert entered.wait(5)
        (worker,) = runner._threads
        threading.Timer(0.2, signal.pthread_kill, (worker.ident, signal.SIGUSR1)).start()
        started = time.monotonic()
        left, unanswered = runner.interrupt(grace=5)
        took = time.monotonic() - started
    finally:
        release.set()
        signal.signal(signal.SIGUSR1, previous)
    assert (left, unanswered) == ([], 1)
    assert took < 1.5, took


def test_a_signal_the_kernel_hands_to_another_thread_stops_a_sleep_on_the_main_thread():
    from siray_cli import signals

    previous = signal.signal(signal.SIGUSR1, _raise_interrupt)
    helper = threading.Timer(
        0.2, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    )
    started = time.monotonic()
    try:
        helper.start()
        with pytest.raises(KeyboardInterrupt):
            signals.sleep(5)
    finally:
        helper.join()
        signal.signal(signal.SIGUSR1, previous)
    assert time.monotonic() - started < 1.5
