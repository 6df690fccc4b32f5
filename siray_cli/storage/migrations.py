"""The history's schema, one named step at a time (llm's `@migration def m004_...` style): a step
is never renamed, reordered or removed once released, since `PRAGMA user_version` counts them.
Each is tested from every earlier schema (tests/test_history.py)."""

from __future__ import annotations

from collections.abc import Callable

MIGRATIONS: list[tuple[str, str]] = []  # (name, script), in the order they are applied


def migration(function: Callable[[], str]) -> Callable[[], str]:
    """Declare the next schema step (`m005_...`): its number is its place in the list, which
    `PRAGMA user_version` records, so a step is never renamed, reordered or removed."""
    number = len(MIGRATIONS) + 1
    assert function.__name__.startswith(f"m{number:03d}_"), function.__name__
    MIGRATIONS.append((function.__name__, function()))
    return function


@migration
def m001_tasks() -> str:
    return """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT UNIQUE,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        submitted_at REAL NOT NULL,
        base_url TEXT NOT NULL,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER,
        outputs TEXT NOT NULL DEFAULT '[]',
        fail_reason TEXT NOT NULL DEFAULT '',
        finished_at REAL,
        files TEXT NOT NULL DEFAULT '[]',
        updated_at REAL NOT NULL,
        job_key TEXT,
        batch_line INTEGER,
        batch_name TEXT
    );
    CREATE INDEX tasks_submitted ON tasks (submitted_at);
    CREATE INDEX tasks_job ON tasks (job_key);
    """


@migration
def m002_provider_and_state() -> str:
    """The provider that created each task (every task before it was Siray's), and each task's
    state in siray's own words (providers name states differently)."""
    return """
    ALTER TABLE tasks ADD COLUMN provider TEXT NOT NULL DEFAULT 'siray';
    ALTER TABLE tasks ADD COLUMN state TEXT NOT NULL DEFAULT 'SUBMITTED';
    UPDATE tasks SET state = CASE upper(status)
        WHEN 'QUEUED' THEN 'QUEUED' WHEN 'IN_PROGRESS' THEN 'IN_PROGRESS'
        WHEN 'SUCCESS' THEN 'SUCCESS' WHEN 'FAILURE' THEN 'FAILURE'
        WHEN 'CANCELLED' THEN 'CANCELLED' WHEN 'CANCELED' THEN 'CANCELLED'
        WHEN 'UNCERTAIN' THEN 'UNKNOWN' ELSE 'SUBMITTED' END;
    """


@migration
def m003_idempotency_key() -> str:
    """The Idempotency-Key a submit was sent with (providers that take one), so a submit whose
    answer was lost can be sent again with it, safely."""
    return "ALTER TABLE tasks ADD COLUMN idempotency_key TEXT;"


@migration
def m004_delivered_at() -> str:
    """When the command that submitted a task (or a later one) handed its result over; a task
    never handed over is what a rerun of the same command rejoins instead of paying again (every
    task from before counts as handed over: nothing changes for them)."""
    return """
    ALTER TABLE tasks ADD COLUMN delivered_at REAL;
    UPDATE tasks SET delivered_at = updated_at;
    """


@migration
def m005_tasks_by_host_and_destination() -> str:
    """A task is known by its provider, host and id (two hosts, an emulator and a reset sandbox
    say, may hand out the same id), not by its id alone; and `destination` holds where the
    submitting command asked for its files (an absolute directory; NULL: printed; `*` for a task
    not handed over yet when this step ran: not known, so only saved files hand it over), so a
    result is handed over only once it got there; `delivered_by` says whether the command that
    submitted it (or its rerun) handed it over, or a later one that took it up (`status`,
    `download`, a batch's --resume): a rerun of the submitting command after that follows the
    task instead of paying again. SQLite cannot drop a UNIQUE constraint: the table is made
    again."""
    return """
    CREATE TABLE tasks_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        submitted_at REAL NOT NULL,
        base_url TEXT NOT NULL,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER,
        outputs TEXT NOT NULL DEFAULT '[]',
        fail_reason TEXT NOT NULL DEFAULT '',
        finished_at REAL,
        files TEXT NOT NULL DEFAULT '[]',
        updated_at REAL NOT NULL,
        job_key TEXT,
        batch_line INTEGER,
        batch_name TEXT,
        provider TEXT NOT NULL DEFAULT 'siray',
        state TEXT NOT NULL DEFAULT 'SUBMITTED',
        idempotency_key TEXT,
        delivered_at REAL,
        destination TEXT,
        delivered_by TEXT
    );
    INSERT INTO tasks_new (id, task_id, kind, model, request, submitted_at, base_url, profile,
        status, progress, outputs, fail_reason, finished_at, files, updated_at, job_key,
        batch_line, batch_name, provider, state, idempotency_key, delivered_at)
        SELECT id, task_id, kind, model, request, submitted_at, base_url, profile, status,
        progress, outputs, fail_reason, finished_at, files, updated_at, job_key, batch_line,
        batch_name, provider, state, idempotency_key, delivered_at FROM tasks;
    UPDATE tasks_new SET destination = '*' WHERE delivered_at IS NULL AND task_id IS NOT NULL;
    DROP TABLE tasks;
    ALTER TABLE tasks_new RENAME TO tasks;
    CREATE UNIQUE INDEX tasks_key ON tasks (provider, base_url, task_id);
    CREATE INDEX tasks_id ON tasks (task_id);
    CREATE INDEX tasks_submitted ON tasks (submitted_at);
    CREATE INDEX tasks_job ON tasks (job_key);
    """


@migration
def m006_price() -> str:
    """What a task cost where siray asked before sending it (a spending cap priced it): the
    amount and its unit (usd, credits, or the profile's table's "price")."""
    return """
    ALTER TABLE tasks ADD COLUMN price REAL;
    ALTER TABLE tasks ADD COLUMN price_unit TEXT;
    """


@migration
def m007_files() -> str:
    """Every file saved of a task's outputs, by its SHA-256 (of the file as saved, with the record
    a PNG carries) and, for a file that carries one, `bare_sha256` (of the file without it: the
    bytes the server sent, what a tool that strips metadata leaves): `siray info` finds what made
    a file by its bytes, wherever it was moved or whatever it was renamed to. A task's row owns
    its files (they go when it is pruned or forgotten); one path holds one file, the last saved
    there."""
    return """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_row INTEGER NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bare_sha256 TEXT,
        saved_at REAL NOT NULL
    );
    CREATE INDEX files_sha256 ON files (sha256);
    CREATE INDEX files_bare_sha256 ON files (bare_sha256);
    CREATE INDEX files_task ON files (task_row);
    CREATE UNIQUE INDEX files_path ON files (path);
    """


@migration
def m008_tasks_by_job() -> str:
    """A job's attempts found by an index of the whole look (its key on one provider, host and
    profile, newest first). With only `tasks_job` (the key alone) SQLite chose `tasks_key`
    (provider, base_url, task_id) for its two equal columns, and walked every task of the
    host: 50 ms a line on a history of 100,000 tasks. This index leads with the key, and
    holds what a verdict reads of each attempt (records.ATTEMPT_COLUMNS, the row's id too), so
    a batch's plan is answered by the index alone (History.attempts)."""
    return """
    DROP INDEX tasks_job;
    CREATE INDEX tasks_by_job ON tasks (job_key, provider, base_url, profile, submitted_at,
        task_id, state, delivered_at, delivered_by, idempotency_key);
    """
