"""The local record of every task siray submits, so that no paid task id is ever lost.

SQLite (standard library) in `platformdirs.user_data_dir("siray")` (moved with SIRAY_DATA_DIR),
in WAL mode with a busy timeout so several `siray` processes can write at once, with a schema
version (`PRAGMA user_version`) and ordered migrations. A database that cannot be opened or written
is reported once, as a warning, and never stops a generation.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from siray_cli.domain import TERMINAL, Task, TaskState
from siray_cli.storage.migrations import MIGRATIONS
from siray_cli.storage.private import private_file
from siray_cli.storage.records import (
    ATTEMPT_COLUMNS,
    AttemptRow,
    Glance,
    Record,
    record_from_row,
    redact_data_urls,
)

DB_NAME = "history.sqlite3"
BUSY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # after SQLite's own busy wait, for what skips it

ENDED = tuple(sorted(state.value for state in TERMINAL))
UNCERTAIN = "UNCERTAIN"  # a create request whose answer never came: the task may exist


T = TypeVar("T")


def _busy(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "")  # Python 3.11+
    if name:
        return str(name).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class History:
    """Every method is safe to call whatever happened: a failure becomes one warning."""

    def __init__(
        self,
        path: Path,
        warn: Callable[[str], None],
        *,
        enabled: bool = True,
        busy_timeout: float = 10.0,
        busy_pauses: Sequence[float] = BUSY_PAUSES,
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._busy_pauses = tuple(busy_pauses)
        self._warned_rows = False
        self._warn = warn
        self._connection: sqlite3.Connection | None = None
        self._broken = not enabled
        self._lock = threading.RLock()  # one connection, shared by a batch's threads
        self._written: dict[int, tuple[object, ...]] = {}  # last state written, per row
        self._closed = False  # closed by its command: open_early's thread leaves it closed

    @property
    def enabled(self) -> bool:
        return not self._broken

    @property
    def exists(self) -> bool:
        """Whether there is a history to read (a look that must write nothing asks first)."""
        return self.enabled and (self._connection is not None or self.path.exists())

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        private_file(self.path)
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.row_factory = sqlite3.Row
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            # a journalled submit and a confirmed id are on the disk before siray goes on,
            # whatever this SQLite's default (see _execute for what need not be)
            connection.execute("PRAGMA synchronous = FULL")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def open_early(self) -> threading.Thread | None:
        """Open the history (making a new one's tables) on a thread while the caller goes on.
        SQLite does that work without holding the GIL, so it overlaps the imports and the
        catalogue that come before a first submit (on a fresh CI runner, 10-35 ms of a batch's
        start-up). Whatever uses the history first waits for it, under the history's lock; a
        history that cannot be opened warns once, as it would have on first use. The thread is
        returned (None when there is nothing to open)."""
        if self._broken or self._connection is not None:
            return None
        thread = threading.Thread(target=self._open_early, name="siray-history-open", daemon=True)
        thread.start()
        return thread

    def _open_early(self) -> None:
        with self._lock:
            if not self._closed:  # a command that failed at once has closed it already
                self._retried(lambda connection: None, None)

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"the history was written by a newer siray (schema {version})"
            )
        if version == len(MIGRATIONS):
            return
        # every step left, in one transaction: one write to disk for a new history, not one a
        # step, and a history is never left half way between two versions
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = connection.execute("PRAGMA user_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise sqlite3.DatabaseError(
                    f"the history was written by a newer siray (schema {current})"
                )
            # another process may have migrated meanwhile: only the steps still missing
            for number, (_, script) in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in filter(str.strip, script.split(";")):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _fail(self, exc: Exception) -> None:
        if not self._broken:
            self._warn(
                f"task history {self.path} is unavailable ({exc}); tasks are not being recorded"
            )
        self._broken = True

    def _transaction(self, *statements: tuple[str, Sequence[object]]) -> list[int]:
        """Run statements as one transaction (one write to disk, not one each): their row
        counts, or nothing once the history is broken; busy answers waited out as `_execute`
        waits them, the whole transaction tried again."""

        def run(connection: sqlite3.Connection) -> list[int]:
            connection.execute("BEGIN IMMEDIATE")
            try:
                counts = [connection.execute(sql, values).rowcount for sql, values in statements]
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                raise
            return counts

        return self._retried(run, [])

    def _execute(
        self, sql: str, values: Sequence[object] = (), *, durable: bool = True
    ) -> tuple[list[sqlite3.Row], int]:
        """Run one statement: its rows and row count, or nothing once the history is broken.

        `durable=False` is for what the server can always tell again (a task's last state, that
        its result was handed over): written without waiting for the disk (SQLite's
        synchronous=NORMAL), so a power cut may lose it, never a crash or a kill, and the next
        durable write (a journalled submit, a confirmed id) takes it to the disk too. A batch
        writes a task's state a few times per task; each wait for the disk held every other
        worker's history write behind it."""

        def run(connection: sqlite3.Connection) -> tuple[list[sqlite3.Row], int]:
            if not durable:
                connection.execute("PRAGMA synchronous = NORMAL")
            try:
                cursor = connection.execute(sql, values)
                return cursor.fetchall(), cursor.rowcount
            finally:
                if not durable:
                    connection.execute("PRAGMA synchronous = FULL")

        nothing: tuple[list[sqlite3.Row], int] = ([], 0)
        return self._retried(run, nothing)

    def _retried(self, run: Callable[[sqlite3.Connection], T], broken: T) -> T:
        """`run` on the history's connection, under its lock; `broken` once the history is.

        SQLite waits out another process's write itself (the busy timeout), but not every busy
        answer goes through that wait: a connection that opens the file while the last one of
        another process is cleaning up the WAL, for one, is told "database is locked" at once.
        Those are tried again a few times before the history gives up.
        """
        with self._lock:
            if self._broken:
                return broken
            for pause in (*self._busy_pauses, None):
                try:
                    return run(self._connect())
                except (sqlite3.Error, OSError) as exc:
                    if pause is None or not _busy(exc):
                        self._fail(exc)
                        break
                time.sleep(pause)
        return broken

    def _records(self, rows: list[sqlite3.Row]) -> list[Record]:
        """Rows as records; a row that cannot be read (edited by hand, written by a broken disk)
        is skipped, with one warning, never an error."""
        records = []
        for row in rows:
            try:
                records.append(record_from_row(row))
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                if not self._warned_rows:
                    self._warn(
                        f"task history {self.path}: skipped an unreadable row "
                        f"(id {row['id']}: {type(exc).__name__})"
                    )
                    self._warned_rows = True
        return records

    def record_submit(
        self,
        *,
        task_id: str | None,
        kind: str,
        model: str,
        request: dict[str, Any],
        base_url: str,
        profile: str,
        provider: str,
        job_key: str | None = None,
        batch_line: int | None = None,
        batch_name: str | None = None,
        idempotency_key: str | None = None,
        destination: str | None = None,
    ) -> int | None:
        """Record a submit: with no task id, as UNCERTAIN (its answer never came, or it is about
        to be sent). The row's id, to confirm or forget it; None when the history is off."""
        now = time.time()
        with self._lock:
            _, inserted = self._execute(
                "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url,"
                " profile, provider, status, state, updated_at, job_key, batch_line, batch_name,"
                " idempotency_key, destination) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(provider, base_url, task_id) DO NOTHING",
                (
                    task_id,
                    kind,
                    model,
                    json.dumps(redact_data_urls(request)),
                    now,
                    base_url,
                    profile,
                    provider,
                    "SUBMITTED" if task_id else UNCERTAIN,
                    (TaskState.SUBMITTED if task_id else TaskState.UNKNOWN).value,
                    now,
                    job_key,
                    batch_line,
                    batch_name,
                    idempotency_key,
                    destination,
                ),
            )
            if inserted != 1:
                return None
            rows, _ = self._execute("SELECT last_insert_rowid()")
        return int(rows[0][0]) if rows else None

    def confirm(self, row: int | None, task_id: str) -> None:
        """The journalled submit `row` created task `task_id`. The host has just created it: a
        row it had under the same id (a host reset since, handing ids out again) is of another
        task, long gone there, and makes way."""
        if row is None:
            return
        counts = self._transaction(
            (
                "DELETE FROM tasks WHERE task_id = ? AND id != ? AND (provider, base_url) ="
                " (SELECT provider, base_url FROM tasks WHERE id = ?)",
                (task_id, row, row),
            ),
            (
                "UPDATE tasks SET task_id = ?, status = 'SUBMITTED', state = ?, updated_at = ?"
                " WHERE id = ?",
                (task_id, TaskState.SUBMITTED.value, time.time(), row),
            ),
        )
        if counts and counts[0]:
            self._drop_orphan_files()

    def forget(self, row: int | None) -> None:
        """The journalled submit `row` certainly created nothing (the server refused it)."""
        if row is not None:
            self._execute("DELETE FROM tasks WHERE id = ? AND task_id IS NULL", (row,))

    def update(self, row: int, status: Task) -> None:
        """Record a task's last known state in its row; a poll that saw nothing new writes
        nothing."""
        state = (status.status, status.progress, tuple(status.outputs), status.fail_reason)
        with self._lock:
            if self._written.get(row) == state:
                return
            self._written[row] = state
        now = time.time()
        self._execute(
            "UPDATE tasks SET status = ?, state = ?, progress = ?, outputs = ?, fail_reason = ?,"
            " finished_at = COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
            (
                status.status,
                status.state.value,
                status.progress,
                json.dumps(status.urls),
                status.fail_reason,
                now if status.is_terminal else None,
                now,
                row,
            ),
            durable=False,  # the server tells it again
        )

    def deliver(self, row: int, by: str) -> None:
        """The task's result was handed over where its command asked (see Ledger.hand_over), by
        the command that submitted it ("submitter") or a later one ("later"); the submitter's
        hand-over is the one that counts once made."""
        self._execute(
            "UPDATE tasks SET delivered_at = COALESCE(delivered_at, ?), delivered_by = CASE"
            " WHEN delivered_by = 'submitter' THEN 'submitter' ELSE ? END WHERE id = ?",
            (time.time(), by, row),
            durable=False,  # lost, the result is only handed over again, never paid again
        )

    def set_price(self, row: int, amount: float, unit: str) -> None:
        self._execute(
            "UPDATE tasks SET price = ?, price_unit = ? WHERE id = ?", (amount, unit, row)
        )

    def costs(self, since: float | None = None) -> list[tuple[str, str, str, int, float]]:
        """Spending by provider, model and unit (tasks priced when sent), since `since`."""
        rows, _ = self._execute(
            "SELECT provider, model, price_unit, COUNT(*), SUM(price) FROM tasks"
            " WHERE price IS NOT NULL AND task_id IS NOT NULL AND submitted_at >= ?"
            " GROUP BY provider, model, price_unit ORDER BY provider, model, price_unit",
            (since or 0.0,),
        )
        return [(r[0], r[1], r[2], int(r[3]), float(r[4])) for r in rows]

    def set_files(
        self, row: int, files: list[str], digests: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        """The files just saved of the task's outputs, each with its SHA-256s when given (as
        saved, and without the record it carries: see migrations.m007), in the `files` table
        that `by_digest` looks a file up in."""
        now = time.time()
        with self._lock:
            self._execute(
                "UPDATE tasks SET files = ?, updated_at = ? WHERE id = ?",
                (json.dumps(files), now, row),
            )
            for path, (digest, bare) in zip(files, digests, strict=False):
                self._execute(
                    "INSERT INTO files (task_row, path, sha256, bare_sha256, saved_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET"
                    " task_row = excluded.task_row, sha256 = excluded.sha256,"
                    " bare_sha256 = excluded.bare_sha256, saved_at = excluded.saved_at",
                    (row, path, digest, bare, now),
                )

    def count(self, since: float | None = None) -> int:
        """Tasks with an id submitted since `since` (all: None)."""
        rows, _ = self._execute(
            "SELECT COUNT(*) FROM tasks WHERE task_id IS NOT NULL AND submitted_at >= ?",
            (since or 0.0,),
        )
        return int(rows[0][0]) if rows else 0

    def file_at(self, path: str) -> tuple[int, str] | None:
        """The task row and SHA-256 of the file last saved at `path`, if siray saved one."""
        rows, _ = self._execute("SELECT task_row, sha256 FROM files WHERE path = ?", (path,))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def by_digest(self, sha256: str) -> list[tuple[Record, str]]:
        """The tasks that saved a file of these bytes (as saved, or without the record it
        carries), with the path each saved it at, newest first (one output, a video say, may be
        byte for byte another's)."""
        rows, _ = self._execute(
            "SELECT tasks.*, files.path AS file_path FROM files JOIN tasks"
            " ON tasks.id = files.task_row WHERE files.sha256 = ? OR files.bare_sha256 = ?"
            " ORDER BY files.saved_at DESC, files.id DESC",
            (sha256, sha256),
        )
        paths: dict[int, str] = {}
        for row in rows:
            paths.setdefault(row["id"], row["file_path"])
        found: dict[int, tuple[Record, str]] = {}
        for record in self._records(rows):
            found.setdefault(record.row, (record, paths[record.row]))
        return list(found.values())

    def _drop_orphan_files(self) -> None:
        self._execute("DELETE FROM files WHERE task_row NOT IN (SELECT id FROM tasks)")

    def query(
        self,
        *,
        limit: int | None = None,
        states: Sequence[str] | None = None,
        model: str | None = None,
        since: float | None = None,
        pending: bool = False,
        with_id: bool = False,
    ) -> list[Record]:
        """Tasks newest first, UNCERTAIN submits (no task id) included unless `with_id` or
        `pending` (a task to look at again needs its id); `states`: only tasks in those states
        (siray's words for them, UNCERTAIN for a submit whose answer never came)."""
        clauses: list[str] = ["task_id IS NOT NULL"] if with_id or pending else ["1"]
        values: list[object] = []
        if states is not None:
            known = [state for state in states if state != UNCERTAIN]
            either = ["task_id IS NULL"] if UNCERTAIN in states else []
            if known:
                either.append(f"(task_id IS NOT NULL AND state IN ({', '.join('?' * len(known))}))")
                values.extend(known)
            clauses.append(f"({' OR '.join(either) or '0'})")
        if model:
            clauses.append("model LIKE ?")
            values.append(f"%{model}%")
        if since is not None:
            clauses.append("submitted_at >= ?")
            values.append(since)
        if pending:
            clauses.append(f"state NOT IN ({', '.join('?' * len(ENDED))})")
            values.extend(ENDED)
        sql = (
            f"SELECT * FROM tasks WHERE {' AND '.join(clauses)} ORDER BY submitted_at DESC, id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows, _ = self._execute(sql, values)
        return self._records(rows)

    def latest(self) -> Record | None:
        records = self.query(limit=1, with_id=True)
        return records[0] if records else None

    def find(
        self, task_id: str, *, provider: str | None = None, base_url: str | None = None
    ) -> Record | None:
        """The task `task_id` (on that provider and host, when given); of several hosts that
        used the same id, the newest."""
        clauses, values = ["task_id = ?"], [task_id]
        for column, value in (("provider", provider), ("base_url", base_url)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        rows, _ = self._execute(
            f"SELECT * FROM tasks WHERE {' AND '.join(clauses)}"
            " ORDER BY submitted_at DESC, id DESC LIMIT 1",
            values,
        )
        records = self._records(rows)
        return records[0] if records else None

    def glances(
        self, job_keys: Sequence[str], *, provider: str, base_url: str, profile: str, since: float
    ) -> list[Glance]:
        """A first look at the submits of these jobs on one provider, host and profile, for a
        whole batch at once (records.Glance, in no order): what settles a job with one answered
        attempt, its task's id and state, and whether a rerun reads it (never handed over, or
        only by a later command, and submitted since `since`). The rest of a job's attempts are
        read by `attempts` (fewer columns: ten thousand rows are made at once)."""
        return self._by_jobs(
            "tasks.job_key, tasks.task_id, tasks.state, (tasks.delivered_at IS NULL"
            " OR tasks.delivered_by = 'later') AND tasks.submitted_at >= ?",
            (since,),
            job_keys,
            provider,
            base_url,
            profile,
        )

    def attempts(
        self, job_keys: Sequence[str], *, provider: str, base_url: str, profile: str
    ) -> list[AttemptRow]:
        """The submits of these jobs on one provider, host and profile, as a verdict reads them
        (records.AttemptRow, in no order)."""
        columns = ", ".join(f"tasks.{column}" for column in ATTEMPT_COLUMNS)  # json_each has an id
        return self._by_jobs(f"tasks.job_key, {columns}", (), job_keys, provider, base_url, profile)

    def _by_jobs(
        self,
        columns: str,
        values: tuple[Any, ...],
        job_keys: Sequence[str],
        provider: str,
        base_url: str,
        profile: str,
    ) -> list[Any]:
        """These columns of the submits of these jobs, in one query answered from the index
        `tasks_by_job` (m008) alone. The keys are given as one JSON array (SQLite caps a
        statement's parameters), each once, sorted, and walked in their order (CROSS JOIN):
        the index is sought in its own order, page after nearby page, and no temporary index of
        the keys is built, as `job_key IN (...)` builds one."""
        sql = (
            f"SELECT {columns} FROM json_each(?) CROSS JOIN tasks"
            " ON tasks.job_key = json_each.value AND tasks.provider = ? AND tasks.base_url = ?"
            " AND tasks.profile = ?"
        )
        # the columns' parameters come first in the statement, then the keys and the place
        parameters = (*values, json.dumps(sorted(set(job_keys))), provider, base_url, profile)

        def run(connection: sqlite3.Connection) -> list[Any]:
            cursor = connection.cursor()
            cursor.row_factory = None  # plain tuples, not sqlite3.Row: a batch's are made at once
            return cursor.execute(sql, parameters).fetchall()

        return self._retried(run, [])

    def unreadable(
        self, task_ids: Sequence[str], *, provider: str, base_url: str, profile: str
    ) -> set[str]:
        """Of these tasks (on one provider, host and profile), those whose record cannot be
        read: a batch's --dry-run tells the lines that follow one apart, as their run does.
        SQLite picks the rows whose JSON columns are not all JSON text (ten thousand rows are
        not read whole); `_records`, which a run reads them with, has the last word."""
        if not task_ids:
            return set()
        valid = " AND ".join(
            f"typeof({column}) = 'text' AND json_valid({column})"
            for column in ("request", "outputs", "files")
        )
        found, _ = self._execute(
            "SELECT * FROM tasks WHERE provider = ? AND base_url = ? AND profile = ?"
            f" AND task_id IN (SELECT value FROM json_each(?)) AND NOT ifnull({valid}, 0)",
            (provider, base_url, profile, json.dumps(list(task_ids))),
        )
        readable = {record.row for record in self._records(found)}
        return {row["task_id"] for row in found if row["id"] not in readable}

    def records(self, rows: Sequence[int]) -> dict[int, Record]:
        """The records of these rows (by their ids), in one query."""
        found, _ = self._execute(
            "SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(rows)),),
        )
        return {record.row: record for record in self._records(found)}

    def prune(self, older_than: float) -> int:
        """Delete finished tasks, and UNCERTAIN attempts, submitted more than `older_than`
        seconds ago (tasks still pending are kept)."""
        _, deleted = self._execute(
            f"DELETE FROM tasks WHERE submitted_at < ? AND (state IN "
            f"({', '.join('?' * len(ENDED))}) OR task_id IS NULL)",
            (time.time() - older_than, *ENDED),
        )
        if deleted:
            self._drop_orphan_files()
        return deleted

    def forget_tasks(self, task_ids: Sequence[str]) -> int:
        """Remove the named tasks (on every host that used the id), whatever their state."""
        if not task_ids:
            return 0
        _, deleted = self._execute(
            f"DELETE FROM tasks WHERE task_id IN ({', '.join('?' * len(task_ids))})",
            tuple(task_ids),
        )
        if deleted:
            self._drop_orphan_files()
        return deleted

    def settle(self, job_key: str, *, provider: str, base_url: str, profile: str) -> None:
        """A job submitted again (--resubmit-uncertain): its earlier UNCERTAIN attempts are
        settled, so they are no longer reported."""
        self._execute(
            "DELETE FROM tasks WHERE job_key = ? AND task_id IS NULL AND provider = ?"
            " AND base_url = ? AND profile = ?",
            (job_key, provider, base_url, profile),
        )

    def close(self) -> None:
        with self._lock:  # not under a worker thread's statement
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None
