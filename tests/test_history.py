"""The task history: every submit path records the id before anything else, updates follow,
and a broken database never stops a generation."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from helpers import GEMINI_IMAGE as MODEL
from helpers import (
    NO_CERTIFICATES,
    database,
    rows,
    run_in_terminal,
    run_process,
    siray_command,
    subprocess_env,
    write_jobs,
)

from siray_cli.storage.history import DB_NAME, History
from siray_cli.storage.migrations import MIGRATIONS
from siray_cli.storage.records import redact_data_urls


def test_generate_and_run_are_recorded_then_updated(siray, emu, isolated_environment, tmp_path):
    generated = siray("generate", MODEL, "first").stdout.strip()
    ran = siray("run", MODEL, "second", "-o", str(tmp_path / "o"), "--json").json()
    recorded = {r["task_id"]: r for r in rows(isolated_environment)}
    assert recorded[generated]["status"] == "SUBMITTED"
    assert json.loads(recorded[generated]["request"]) == {"model": MODEL, "prompt": "first"}
    assert (
        recorded[generated]["base_url"] == emu.url and recorded[generated]["profile"] == "default"
    )
    assert recorded[generated]["provider"] == "siray"
    assert recorded[generated]["state"] == "SUBMITTED"
    done = recorded[ran["task_id"]]
    assert done["status"] == "SUCCESS" and done["finished_at"] >= done["submitted_at"]
    assert done["state"] == "SUCCESS"
    assert json.loads(done["outputs"]) == ran["outputs"]
    assert json.loads(done["files"]) == ran["files"]
    # the history is read from anywhere later: its paths are absolute, wherever -o pointed
    relative = siray("run", MODEL, "third", "-o", "rel", "--json").json()
    (kept,) = json.loads(
        {r["task_id"]: r for r in rows(isolated_environment)}[relative["task_id"]]["files"]
    )
    assert (
        Path(kept).is_absolute()
        and Path(kept) == (Path("rel") / Path(relative["files"][0]).name).resolve()
    )
    siray("status", generated, "--wait")
    assert {r["task_id"]: r for r in rows(isolated_environment)}[generated]["status"] == "SUCCESS"
    version = (
        sqlite3.connect(database(isolated_environment)).execute("PRAGMA user_version").fetchone()[0]
    )
    journal = (
        sqlite3.connect(database(isolated_environment)).execute("PRAGMA journal_mode").fetchone()[0]
    )
    assert version == len(MIGRATIONS) and journal == "wal"


def test_data_urls_are_recorded_as_a_placeholder(siray, isolated_environment, tmp_path):
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 3000)
    assert (
        siray(
            "generate",
            "google/gemini-2.5-flash-image-i2i",
            "edit",
            "--image",
            str(tmp_path / "in.png"),
            "--inline",
        ).exit_code
        == 0
    )
    request = json.loads(rows(isolated_environment)[-1]["request"])
    assert request["image"] == "<data:image/png, 3008 bytes>"
    assert redact_data_urls({"a": ["data:,hello"]}) == {"a": ["<data:text/plain, 5 bytes>"]}


def test_history_on_a_terminal_never_wraps_an_id_or_a_path(emu, tmp_path):
    # a long output path gives up its middle to fit 130 columns; --json keeps it whole
    deep = tmp_path / ("a-rather-long-directory-name-for-outputs" * 2) / "renders"
    env = subprocess_env(emu)
    code, screen = run_in_terminal(
        siray_command("run", MODEL, "a long way down", "-o", str(deep)), env
    )
    assert code == 0, screen
    code, screen = run_in_terminal(siray_command("history", "-n", "1"), {**env, "COLUMNS": "130"})
    assert code == 0, screen
    screen = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    header, row = [line for line in screen.splitlines() if line.strip()][:2]
    assert header.split() == ["task", "provider", "model", "status", "age", "output"]
    task_id, provider, model, state, _age, path = row.split()
    assert (provider, model, state) == ("siray", MODEL, "SUCCESS")
    assert task_id.startswith("image_") and len(row) <= 130
    assert "…" in path and path.endswith(f"{task_id}_1.png")  # the middle, never the file name
    listed = run_process(siray_command("history", "-n", "1", "--json"), env, check=True)
    assert json.loads(listed.stdout)[0]["files"] == [str(deep / f"{task_id}_1.png")]


def test_history_lists_newest_first_with_filters(siray, isolated_environment):
    first = siray("run", MODEL, "one").stdout
    second = siray("generate", MODEL, "[hold]").stdout.strip()
    listing = siray("history")
    assert listing.exit_code == 0
    assert [line.split("\t")[0] for line in listing.lines][:1] == [second]
    cells = listing.lines[1].split("\t")
    assert cells[1:4] == ["siray", MODEL, "SUCCESS"] and cells[5] == first.strip()
    assert siray("ls", "-n", "1", "--json").json()[0]["task_id"] == second
    assert [r["status"] for r in siray("history", "--status", "success", "--json").json()] == [
        "SUCCESS"
    ]
    assert siray("history", "--model", "nothing-like-it").stdout == ""
    assert len(siray("history", "--since", "1h", "--json").json()) == 2
    assert siray("history", "--since", "2999-01-01", "--json").json() == []
    bad = siray("history", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "neither a duration nor a date" in bad.stderr


def test_status_without_an_id_is_the_latest_task(siray):
    task_id = siray("generate", MODEL, "x").stdout.strip()
    result = siray("status", "--wait", "--json")
    assert result.exit_code == 0, result
    assert result.json()["task_id"] == task_id
    assert f"the most recent task: {task_id}" in result.stderr


def test_status_without_an_id_and_no_history(siray):
    result = siray("status")
    assert result.exit_code == 2 and "the history holds none" in result.stderr


def cancel_elsewhere(emu, task_id: str) -> None:
    """Cancel a task on the server behind siray's back (a dashboard, another tool)."""
    answer = httpx.post(
        f"{emu.url}/v1/images/generations/async/{task_id}/cancel",
        headers={"Authorization": f"Bearer {emu.config.api_key}"},
        verify=NO_CERTIFICATES,
    )
    answer.raise_for_status()


def test_all_pending_resumes_waiting_on_every_unfinished_task(siray, emu):
    held = siray("generate", MODEL, "[hold]").stdout.strip()
    running = [siray("generate", MODEL, f"task {n}").stdout.strip() for n in range(2)]
    cancel_elsewhere(emu, held)  # the history still has it queued
    result = siray("status", "--all-pending", "--wait", "--json")
    assert result.exit_code == 1, result  # the cancelled one ends CANCELLED
    statuses = {json.loads(line)["task_id"]: json.loads(line)["status"] for line in result.lines}
    assert statuses == {held: "CANCELLED", running[0]: "SUCCESS", running[1]: "SUCCESS"}
    again = siray("status", "--all-pending")
    assert again.exit_code == 0 and "no pending task" in again.stderr


def test_a_task_cancelled_with_siray_is_no_longer_pending(siray, emu):
    held = siray("generate", MODEL, "[hold] cancelled here").stdout.strip()
    assert siray("cancel", held).exit_code == 0
    listed = siray("history", "--status", "CANCELLED", "--json").json()
    assert [r["task_id"] for r in listed] == [held]
    pending = siray("status", "--all-pending")
    assert pending.exit_code == 0 and "no pending task" in pending.stderr


def test_forget_of_unknown_tasks_prints_only_the_error(siray):
    unknown = siray("history", "forget", "image_nonexist")
    assert unknown.exit_code == 2, unknown
    assert unknown.stderr == (
        "error: not in the history: image_nonexist\nhint: `siray history` lists the tasks\n"
    )
    known = siray("generate", MODEL, "to forget").stdout.strip()
    both = siray("history", "forget", known, "image_nonexist")
    assert both.exit_code == 2, both
    assert both.stderr.startswith("removed 1 task from the history\n")
    assert "error: not in the history: image_nonexist" in both.stderr


def test_prune_forgets_old_finished_tasks_only(siray, isolated_environment):
    siray("run", MODEL, "done")
    held = siray("generate", MODEL, "[hold]").stdout.strip()
    with sqlite3.connect(database(isolated_environment)) as db:
        db.execute("UPDATE tasks SET submitted_at = ?", (time.time() - 40 * 86400,))
    result = siray("history", "prune", "--older-than", "30d")
    assert result.exit_code == 0 and "removed 1 task" in result.stderr
    assert [r["task_id"] for r in rows(isolated_environment)] == [held]


def test_no_history_flag_and_setting(siray, isolated_environment):
    siray("--no-history", "generate", MODEL, "x")
    assert not database(isolated_environment).exists()
    siray("config", "set", "history", "off")
    siray("run", MODEL, "x")
    assert not database(isolated_environment).exists()
    siray("config", "set", "history", "on")
    siray("generate", MODEL, "x")
    assert len(rows(isolated_environment)) == 1


def test_a_corrupt_database_warns_once_and_never_blocks(siray, isolated_environment):
    path = database(isolated_environment)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    result = siray("run", MODEL, "still works")
    assert result.exit_code == 0, result
    assert result.stderr.count("task history") == 1
    assert "tasks are not being recorded" in result.stderr
    assert result.stdout.startswith("http://")


def test_a_read_only_database_never_blocks(siray, isolated_environment):
    siray("generate", MODEL, "x")
    directory = database(isolated_environment).parent
    for file in directory.iterdir():
        file.chmod(0o444)
    directory.chmod(0o555)
    try:
        result = siray("run", MODEL, "y")
    finally:
        directory.chmod(0o755)
    assert result.exit_code == 0, result


def test_the_history_is_closed_when_siray_ends(emu, isolated_environment):
    # siray skips the interpreter's last garbage collection (entry.py), so nothing may rely on
    # it: the history is closed, and SQLite folds its write-ahead log back into the file
    done = subprocess.run(
        [sys.executable, "-m", "siray_cli", "generate", MODEL, "closed"],
        env=subprocess_env(emu),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = isolated_environment / "data"
    assert sorted(p.name for p in data.iterdir()) == [DB_NAME, "locks"]
    assert [r["task_id"] for r in rows(isolated_environment)] == [done.stdout.strip()]


def test_two_processes_write_at_once(emu, isolated_environment):
    env = subprocess_env(emu)
    code = (
        "import sys\n"
        "from siray_cli.main import run as main\n"
        "for n in range(8):\n"
        f"    assert main(['generate', '{MODEL}', f'p{{n}} {{sys.argv[1]}}']) == 0\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(index)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert "warning" not in "".join(err for _, err in outputs)
    ids = {line for out, _ in outputs for line in out.split()}
    assert len(ids) == 24
    assert {r["task_id"] for r in rows(isolated_environment)} == ids


def test_a_newer_schema_is_left_alone(tmp_path):
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    warnings: list[str] = []
    history = History(path, warnings.append)
    assert history.query() == []
    assert "newer siray" in warnings[0]


def submit(history: History, task_id: str) -> None:
    history.record_submit(
        task_id=task_id,
        kind="image",
        model="m",
        request={},
        base_url="",
        profile="p",
        provider="siray",
    )


def test_a_history_opened_early_is_ready_for_the_first_submit_and_warns_once(tmp_path):
    """open_early makes a new history's tables on a thread; a submit at once waits for them."""
    history = History(tmp_path / "new" / DB_NAME, print)
    history.open_early()
    submit(history, "task_early")
    assert [r.task_id for r in history.query()] == ["task_early"]
    with sqlite3.connect(tmp_path / "new" / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    history.close()
    (tmp_path / "dir" / DB_NAME).mkdir(parents=True)  # no database can be opened there
    warnings: list[str] = []
    broken = History(tmp_path / "dir" / DB_NAME, warnings.append)
    broken.open_early()
    submit(broken, "task_lost")
    broken.open_early()
    assert broken.query() == [] and len(warnings) == 1 and "unavailable" in warnings[0]


def test_a_history_closed_before_its_early_open_ran_stays_closed(tmp_path):
    """A command that failed at once closes the history before open_early's thread got to it:
    the thread then opens nothing (no connection left open, no file made)."""
    history = History(tmp_path / "late" / DB_NAME, print)
    with history._lock:  # the thread waits here, as behind a statement of another thread
        opening = history.open_early()
        assert opening is not None
        history.close()
    opening.join(timeout=10)
    assert not opening.is_alive() and history._connection is None
    assert not (tmp_path / "late").exists()


def test_the_journal_waits_for_the_disk_and_a_tasks_state_does_not(tmp_path):
    """A journalled submit and a confirmed id are written with synchronous=FULL; a task's state
    and its hand-over (the server tells them again) with NORMAL, and FULL is back after them."""
    from siray_cli.domain import Task, TaskKind, TaskState

    history = History(tmp_path / DB_NAME, print)
    connection = history._connect()
    ran: list[str] = []
    connection.set_trace_callback(ran.append)

    def level() -> int:
        return int(connection.execute("PRAGMA synchronous").fetchone()[0])

    def under(sql_start: str) -> list[str]:
        """The synchronous setting in force for each statement that starts so."""
        setting, found = "FULL", []
        for statement in ran:
            if statement.startswith("PRAGMA synchronous = "):
                setting = statement.removeprefix("PRAGMA synchronous = ")
            elif statement.startswith(sql_start):
                found.append(setting)
        return found

    assert level() == 2
    row = history.record_submit(
        task_id=None, kind="image", model="m", request={}, base_url="", profile="p",
        provider="siray",
    )  # fmt: skip
    history.confirm(row, "task_disk")
    assert row is not None
    history.update(row, Task("task_disk", TaskKind.IMAGE, "SUCCESS", TaskState.SUCCESS, 100))
    history.deliver(row, "submitter")
    assert level() == 2
    assert under("INSERT INTO tasks") == ["FULL"]
    assert set(under("UPDATE tasks SET task_id")) == {"FULL"}  # the confirmed id
    assert under("UPDATE tasks SET status") == ["NORMAL"]
    assert under("UPDATE tasks SET delivered_at") == ["NORMAL"]
    (record,) = history.query()
    assert record.status == "SUCCESS"


def test_a_confirmed_id_replaces_an_older_task_of_that_host_under_the_same_id(tmp_path):
    """A host reset since hands ids out again: its older row under the new task's id is of a
    task long gone there, and makes way (in one transaction with the confirmation); the same id
    on another host is another task, and stays."""
    history = History(tmp_path / DB_NAME, print)

    def journal(base_url: str) -> int | None:
        return history.record_submit(
            task_id=None,
            kind="image",
            model="m",
            request={},
            base_url=base_url,
            profile="p",
            provider="siray",
        )

    old, elsewhere, new = journal("http://a"), journal("http://b"), journal("http://a")
    history.confirm(old, "t1")
    history.confirm(elsewhere, "t1")
    history.confirm(new, "t1")
    rows = {(r.base_url, r.task_id, r.status) for r in history.query()}
    assert rows == {("http://a", "t1", "SUBMITTED"), ("http://b", "t1", "SUBMITTED")}
    assert len(history.query()) == 2


def locked_database(path: Path) -> sqlite3.Connection:
    """A history with one task, then a connection that holds it locked until closed."""
    first = History(path, print)
    submit(first, "image_first")
    first.close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")
    return blocker


def test_a_lock_held_past_the_busy_wait_is_waited_out_not_taken_as_broken(tmp_path):
    # SQLite's own busy wait does not cover every "database is locked" (a connection opening
    # while another process cleans up the WAL gets it at once); here the wait is made short
    path = tmp_path / DB_NAME
    release = threading.Timer(0.4, locked_database(path).close)
    release.start()
    warnings: list[str] = []
    history = History(path, warnings.append, busy_timeout=0.01)
    submit(history, "image_second")
    release.join()
    assert warnings == []
    assert [r.task_id for r in history.query()] == ["image_second", "image_first"]


def test_a_lock_that_never_ends_gives_up_with_one_warning(tmp_path):
    path = tmp_path / DB_NAME
    blocker = locked_database(path)
    warnings: list[str] = []
    history = History(path, warnings.append, busy_timeout=0.01, busy_pauses=(0.01, 0.02))
    started = time.monotonic()
    submit(history, "image_second")
    assert history.query() == []  # broken now: asks nothing more of the file
    blocker.close()
    assert time.monotonic() - started < 5
    assert len(warnings) == 1 and "database is locked" in warnings[0]


SCHEMA_1 = """
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT UNIQUE, kind TEXT NOT NULL,
    model TEXT NOT NULL, request TEXT NOT NULL, submitted_at REAL NOT NULL,
    base_url TEXT NOT NULL, profile TEXT NOT NULL, status TEXT NOT NULL, progress INTEGER,
    outputs TEXT NOT NULL DEFAULT '[]', fail_reason TEXT NOT NULL DEFAULT '', finished_at REAL,
    files TEXT NOT NULL DEFAULT '[]', updated_at REAL NOT NULL, job_key TEXT,
    batch_line INTEGER, batch_name TEXT
);
"""


def test_a_schema_1_history_is_migrated_and_keeps_its_tasks(siray, isolated_environment):
    path = database(isolated_environment)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
        for task_id, status in (
            ("image_old1", "SUCCESS"),
            ("image_old2", "CANCELED"),
            ("image_old3", "IN_PROGRESS"),
            (None, "UNCERTAIN"),
        ):
            db.execute(
                "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url,"
                " profile, status, updated_at) VALUES (?, 'image', 'm', '{}', 1, 'http://x',"
                " 'default', ?, 1)",
                (task_id, status),
            )
        db.execute("PRAGMA user_version = 1")
    listed = siray("history", "--json")
    assert listed.exit_code == 0, listed
    assert {r["task_id"]: (r["provider"], r["status"]) for r in listed.json()} == {
        "image_old1": ("siray", "SUCCESS"),
        "image_old2": ("siray", "CANCELED"),
        "image_old3": ("siray", "IN_PROGRESS"),
        None: ("siray", "UNCERTAIN"),
    }
    states = dict(sqlite3.connect(path).execute("SELECT status, state FROM tasks").fetchall())
    assert states == {
        "SUCCESS": "SUCCESS",
        "CANCELED": "CANCELLED",
        "IN_PROGRESS": "IN_PROGRESS",
        "UNCERTAIN": "UNKNOWN",
    }
    pending = History(path, print).query(pending=True)
    assert [r.task_id for r in pending] == ["image_old3"]


def test_a_task_is_asked_about_where_it_was_created(siray, emu, make_emulator):
    task_id = siray("generate", MODEL, "made on the first emulator").stdout.strip()
    other = make_emulator()
    elsewhere = {"SIRAY_BASE_URL": other.url, "SIRAY_GATEWAY_URL": other.url}
    result = siray("--debug", "status", task_id, "--wait", "--json", env=elsewhere)
    assert result.exit_code == 0, result
    assert result.json()["status"] == "SUCCESS"
    assert f"{task_id} was created on {emu.url}: asking there" in result.stderr
    pending = siray("status", "--all-pending", env=elsewhere)
    assert pending.exit_code == 0 and "no pending task" in pending.stderr
    # --base-url names a host, and wins over the history
    forced = siray("--base-url", other.url, "status", task_id, env=elsewhere)
    assert forced.exit_code == 2 and f"no task {task_id} on {other.url}" in forced.stderr


def test_status_filters_take_any_case_and_plain_words_and_refuse_others(siray, emu):
    done = siray("generate", MODEL, "a filter that finishes").stdout.strip()
    failed = siray("run", MODEL, "a filter that fails [fail]")
    assert failed.exit_code == 1, failed
    siray("status", done, "--wait")

    def listed(word: str) -> list[str]:
        result = siray("history", "--status", word, "--json")
        assert result.exit_code == 0, result
        return [r["status"] for r in result.json()]

    assert listed("Success") == listed("done") == listed("SUCCEEDED") == ["SUCCESS"]
    assert listed("failed") == listed("FAILURE") == ["FAILURE"]
    assert listed("in-progress") == listed("running") == []
    wrong = siray("history", "--status", "faild")
    assert wrong.exit_code == 2, wrong
    assert "is not a state siray knows (did you mean failed?)" in wrong.stderr
    assert "one of submitted, queued, in_progress, success, failure" in wrong.stderr


def test_a_schema_6_history_gains_the_files_table_and_keeps_its_tasks(siray, isolated_environment):
    """m007_files: a history written before files were known by their hashes keeps its tasks,
    and from then on records each saved file's SHA-256."""
    path = database(isolated_environment)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        for _, script in MIGRATIONS[:6]:
            db.executescript(script)
        db.execute(
            "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url, profile,"
            " status, updated_at, delivered_at) VALUES ('image_old6', 'image', 'm', '{}', 1,"
            " 'http://x', 'default', 'SUCCESS', 1, 1)"
        )
        db.execute("PRAGMA user_version = 6")
    made = siray("run", MODEL, "after m007", "-o", "out", "--json")
    assert made.exit_code == 0, made
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tasks = [r[0] for r in db.execute("SELECT task_id FROM tasks ORDER BY id")]
        files = db.execute("SELECT path, sha256 FROM files").fetchall()
    assert tasks == ["image_old6", made.json()["task_id"]]
    (saved,) = made.json()["files"]
    assert files == [
        (str(Path(saved).resolve()), hashlib.sha256(Path(saved).read_bytes()).hexdigest())
    ]


def _looks_at_tasks(
    siray, monkeypatch, database_path: Path, *args: str
) -> list[tuple[str, list[str]]]:
    """Run `siray ARGS`; each statement it read the tasks table with, and SQLite's plan of it."""
    real = sqlite3.connect
    traced: list[str] = []

    def connect(*a, **k) -> sqlite3.Connection:
        connection = real(*a, **k)
        connection.set_trace_callback(traced.append)
        return connection

    with monkeypatch.context() as patched:
        patched.setattr(sqlite3, "connect", connect)
        result = siray(*args)
    assert result.exit_code == 0, result
    looks = []
    with real(database_path) as db:
        for statement in traced:
            reads = re.search(r"\b(FROM|JOIN) tasks\b", statement)
            if statement.lstrip().upper().startswith("SELECT") and reads:
                unbound = [None] * statement.count("?")  # traced with its values, or without
                plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, unbound)]
                looks.append((statement, plan))
    return looks


def test_the_look_ups_of_a_large_history_search_its_indexes(
    siray, emu, isolated_environment, tmp_path, monkeypatch
):
    """`history -n 20`, a rerun's look-up of a task id and --resume's verdicts on a batch's lines
    read the history through its indexes, so they stay fast on 100,000 tasks (issue 24; timed in
    benchmarks/scale.py): no statement walks the tasks, and a batch's lines are looked up
    together, by job key, not one statement a line. Without m008 SQLite took the index of
    (provider, base_url, task_id) for a job's look-up and walked every task of the host."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"indexed {n}", "name": f"indexed-{n}"} for n in range(4)),
    )
    assert siray("run", "--batch", str(jobs), "-m", MODEL).exit_code == 0
    task_id = rows(isolated_environment)[-1]["task_id"]
    db = database(isolated_environment)

    listed = _looks_at_tasks(siray, monkeypatch, db, "history", "-n", "20")
    rerun = _looks_at_tasks(siray, monkeypatch, db, "rerun", task_id, "--dry-run")
    for statement, plan in [*listed, *rerun]:
        walks = [step for step in plan if step.startswith("SCAN tasks")]
        # an ordered walk of the submitted_at index that a LIMIT stops is no scan of the tasks
        assert all("USING INDEX tasks_submitted" in step for step in walks), (statement, plan)
        assert not walks or " LIMIT " in statement, (statement, plan)
    (found,) = [plan for statement, plan in rerun if re.search(r"\btask_id = ", statement)]
    assert any(step.startswith("SEARCH tasks USING INDEX tasks_id (task_id=?)") for step in found)

    resumed = _looks_at_tasks(
        siray, monkeypatch, db, "run", "--batch", str(jobs), "-m", MODEL, "--resume", "--dry-run"
    )
    by_job = [(statement, plan) for statement, plan in resumed if "job_key" in statement]
    assert len(by_job) == 1, resumed  # the four lines in one look
    ((statement, plan),) = by_job
    # read from the index alone (it holds what a verdict reads), not row by row from the table
    assert any(
        step.startswith("SEARCH tasks USING COVERING INDEX tasks_by_job (job_key=? AND provider=?")
        for step in plan
    ), plan
    assert not any(step.startswith("SCAN tasks") for step in plan), plan
