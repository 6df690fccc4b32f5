"""Scale benchmark (issue 24 item 3): a 10,000-line batch, and a history of 100,000 tasks.

The batch: `siray run --batch FILE -m MODEL --concurrency 64 -o DIR` of --lines lines against an
emulator in this process (short tasks), to the point where --through results have been printed
(their files saved in DIR, an empty directory first, as a user's `-o out/`); then the process
is killed. Measured: the time from starting the process to the first task
created on the emulator (every line is parsed, built, checked and planned before it), to the
first result on stdout (results are streamed as lines end, not held to the batch's end), and
the siray process's peak resident memory (VmHWM, sampled from /proc every 20 ms; the emulator's
memory is not in it). The batch is cut short because a batch's status requests are paced (at
20 a second when this was written), so a whole 10,000-line batch takes minutes: the peak is over
the whole planning of every line and the first --through lines run.

The history: --tasks tasks (the batch's lines among them, done and handed over) written to a
fresh history with siray's own schema (each tree opens it first, so its migrations have run
before anything is timed). Measured in-process (the look-up itself: a fresh History, opened and
asked): `history -n 20`'s query, a rerun's look-up of one task id (`siray rerun ID` and `siray
info` find a task so), and --resume planning of the batch (the time spent in the Ledger's verdict
look-ups, `prior`/`priors`, while `run --batch FILE --resume --dry-run` runs in-process, from the
console script's `main`, as a process runs it); and the whole commands: `siray history -n 20` and
`siray rerun ID --dry-run` as processes (their wall time adds process start-up, 0.2-0.45 s, see
startup.py), and the in-process `run --batch FILE --resume --dry-run` above (its time adds
reading and checking every line, not start-up; run as a process it would repeat every look-up,
which takes minutes before the index).

Goals (issue 24): first submit < 1.5 s and peak RSS < 150 MiB for a 10,000-line batch; each of
the three look-ups < 100 ms on a history of 100,000 tasks.

    python benchmarks/scale.py [--rounds 3] [--history-rounds N] [--before DIR] [--lines 10000]
                               [--through 2000] [--tasks 100000] [--only batch|history]

--before DIR runs another checkout (e.g. `git worktree add /tmp/before main`) side by side, with
PYTHONPATH=DIR, round by round interleaved with this one: medians with [min - max] of --rounds.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from siray_cli.domain import TaskKind
from siray_cli.emulator.server import Emulator, EmulatorConfig
from siray_cli.services.ledger import fingerprint

ROOT = Path(__file__).resolve().parent.parent
MODEL = "alibaba/z-image-turbo-t2i"
OTHER_MODELS = ("google/gemini-2.5-flash-image-t2i", "bytedance/seedream-4.0-t2i")
STATES = ("SUCCESS",) * 8 + ("FAILURE", "CANCELLED", "IN_PROGRESS")
MIB = 1024 * 1024

# Run in a child with the tree on PYTHONPATH: the look-ups themselves, timed in-process.
CHILD = r"""
import contextlib, io, json, sys, time
from pathlib import Path
from siray_cli.storage.history import History
what, db = sys.argv[1], Path(sys.argv[2])
if what == "open":  # untimed: the tree's migrations run
    history = History(db, print)
    history.count()
    history.close()
elif what == "history":
    started = time.perf_counter()
    history = History(db, print)
    records = history.query(limit=20)
    elapsed = time.perf_counter() - started
    history.close()
    assert len(records) == 20, records
    print(json.dumps(elapsed))
elif what == "find":
    started = time.perf_counter()
    history = History(db, print)
    record = history.find(sys.argv[3])
    elapsed = time.perf_counter() - started
    history.close()
    assert record is not None and record.task_id == sys.argv[3]
    print(json.dumps(elapsed))
elif what == "resume":
    from siray_cli.main import main
    from siray_cli.services.ledger import Ledger
    spent = [0.0]
    def timed(method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
        return wrapper
    for name in ("prior", "priors"):  # whichever the tree has: its verdict look-ups
        if hasattr(Ledger, name):
            setattr(Ledger, name, timed(getattr(Ledger, name)))
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        lines, sys.argv = int(sys.argv[3]), ["siray", *sys.argv[4:]]  # as the console script
        code = main()
    whole = time.perf_counter() - started
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert code == 0 and summary["would"] == {"skip": lines}, (code, summary)
    print(json.dumps([spent[0], whole]))
"""


def child_env(tree: Path, home: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")},
        **extra,
        "PYTHONPATH": str(tree),
        "SIRAY_DATA_DIR": str(home / "data"),
        "SIRAY_CACHE_DIR": str(home / "cache"),
        "SIRAY_CONFIG_DIR": str(home / "config"),
    }


def batch_body(n: int) -> dict[str, str]:
    return {"model": MODEL, "prompt": f"asset {n}", "size": "1024x768"}


def write_batch(path: Path, lines: int) -> None:
    with path.open("w") as file:
        for n in range(lines):
            line = {"prompt": f"asset {n}", "name": f"asset-{n:05d}"}
            file.write(json.dumps({**line, "inputs": {"size": "1024x768"}}) + "\n")


def peak_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def batch_once(tree: Path, batch: Path, through: int, seed: int) -> dict[str, float]:
    config = EmulatorConfig(port=0, task_seconds=0.05, task_jitter=0.0, seed=seed)
    with Emulator(config) as emulator, tempfile.TemporaryDirectory() as home:
        emulator.wait_warm()  # as ready as a real server, whose first create costs no import
        env = child_env(tree, Path(home), emulator.environment())
        command = [sys.executable, "-m", "siray_cli", "run", "--batch", str(batch), "-m", MODEL]
        command += ["--concurrency", "64", "--json", "-o", str(Path(home) / "out")]
        printed: list[float] = []
        started = time.time()
        process = subprocess.Popen(
            command,
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                if json.loads(line).get("type") == "result":
                    printed.append(time.time())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        peak = 0
        while process.poll() is None and len(printed) < through:
            peak = max(peak, peak_rss(process.pid) or 0)
            time.sleep(0.02)
        peak = max(peak, peak_rss(process.pid) or 0)
        ended = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        reader.join(5)
        with emulator.state.lock:
            created = [task.created_wall for task in emulator.state.tasks.values()]
    if len(printed) < through and not ended:
        raise SystemExit(f"the batch printed {len(printed)} results, not {through}")
    if len(printed) < min(through, 1):
        raise SystemExit(f"the batch failed: exit {process.returncode}")
    return {
        "first submit (s)": min(created) - started,
        "first result on stdout (s)": printed[0] - started,
        "peak RSS (MiB)": peak / MIB,
    }


def seed_history(db: Path, url: str, tasks: int, lines: int) -> list[str]:
    """`tasks` tasks in the history at `db` (made by a tree's own code already): the batch's
    `lines` lines done and handed over two days ago, among older and newer others. Returns the
    task ids of the batch's lines."""
    now = time.time()
    shuffle = random.Random(7)
    rows = []
    ids = []
    for n in range(tasks):
        task_id = f"image_{n:011x}"
        if n < lines:
            body: dict[str, str] = batch_body(n)
            key = fingerprint(TaskKind.IMAGE, body)
            state, at, line, name = "SUCCESS", now - 2 * 86400 + n * 0.01, n + 1, f"asset-{n:05d}"
            ids.append(task_id)
        else:
            model = OTHER_MODELS[n % len(OTHER_MODELS)]
            body = {"model": model, "prompt": f"a picture {n}", "size": "1024x1024"}
            key = fingerprint(TaskKind.IMAGE, body)
            state, line, name = shuffle.choice(STATES), None, None
            at = now - shuffle.random() * 90 * 86400
        outputs = json.dumps([f"{url}/redirect/{task_id}/1"] if state == "SUCCESS" else [])
        rows.append(
            (
                task_id,
                "image",
                body["model"],
                json.dumps(body),
                at,
                url,
                "default",
                state,
                state,
                100 if state == "SUCCESS" else None,
                outputs,
                at + 5,
                at + 5,
                key,
                line,
                name,
                "siray",
                at + 6,
                "submitter",
            )
        )
    connection = sqlite3.connect(db)
    with connection:
        connection.executemany(
            "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url, profile,"
            " status, state, progress, outputs, finished_at, updated_at, job_key, batch_line,"
            " batch_name, provider, delivered_at, delivered_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    connection.close()
    return ids


def open_history(tree: Path, home: Path, db: Path) -> None:
    env = child_env(tree, home, {})
    subprocess.run([sys.executable, "-c", CHILD, "open", str(db)], cwd=tree, env=env, check=True)


def seed_histories(
    trees: list[tuple[str, Path]], homes: dict[str, Path], url: str, tasks: int, lines: int
) -> list[str]:
    """One history for each tree, the same tasks in each: made by the first (the oldest schema)
    and seeded, copied for the others; each tree then opens its own, so its migrations have run
    before anything is timed. Returns the task ids of the batch's lines."""
    ids: list[str] = []
    first: Path | None = None
    for label, tree in trees:
        db = homes[label] / "data" / "history.sqlite3"
        db.parent.mkdir(parents=True)
        if first is None:
            open_history(tree, homes[label], db)  # the schema made
            ids, first = seed_history(db, url, tasks, lines), db
        else:
            shutil.copyfile(first, db)
            open_history(tree, homes[label], db)  # migrated
    return ids


def history_once(
    tree: Path, home: Path, emulator: Emulator, batch: Path, task_id: str, lines: int
) -> dict[str, float]:
    env = child_env(tree, home, emulator.environment())
    db = str(home / "data" / "history.sqlite3")

    def child(*args: str) -> object:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *args],
            check=False,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed in {tree}:\n{done.stdout}{done.stderr}")
        return json.loads(done.stdout.splitlines()[-1])

    def wall(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "siray_cli", *args],
            cwd=tree,
            env=env,
            capture_output=True,
            check=True,
        )
        return time.perf_counter() - started

    resume = ["run", "--batch", str(batch), "-m", MODEL, "--resume", "--dry-run", "--json"]
    planning, whole = child("resume", db, str(lines), *resume)  # type: ignore[misc]
    return {
        "history -n 20: look-up (ms)": float(child("history", db)) * 1000,  # type: ignore[arg-type]
        "history -n 20: command (ms)": wall("history", "-n", "20") * 1000,
        "rerun ID: look-up (ms)": float(child("find", db, task_id)) * 1000,  # type: ignore[arg-type]
        "rerun ID --dry-run: command (ms)": wall("rerun", task_id, "--dry-run") * 1000,
        "--resume planning: look-ups (ms)": planning * 1000,
        "run --batch --resume --dry-run, in-process (ms)": whole * 1000,
    }


def report(title: str, table: dict[str, dict[str, list[float]]], labels: list[str]) -> None:
    print(title)
    header = "".join(f"{label:>30}" for label in labels)
    print(f"{'':<48}{header}")
    for key in next(iter(table.values())):
        cells = []
        for label in labels:
            values = table[label][key]
            digits = 0 if "(ms)" in key else 2
            cells.append(
                f"{statistics.median(values):>10.{digits}f} [{min(values):.{digits}f} - "
                f"{max(values):.{digits}f}]".rjust(30)
            )
        print(f"{key:<48}{''.join(cells)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout to run side by side")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--through", type=int, default=2_000, help="results before the kill")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--only", choices=("batch", "history"))
    parser.add_argument("--history-rounds", type=int, help="rounds of the history (--rounds)")
    args = parser.parse_args()
    trees = [("before", args.before.resolve())] if args.before else []
    trees.append(("after", ROOT))
    labels = [label for label, _ in trees]
    for _, tree in trees:
        compileall.compile_dir(tree / "siray_cli", quiet=1)
    with tempfile.TemporaryDirectory() as scratch:
        batch = Path(scratch) / "batch.jsonl"
        write_batch(batch, args.lines)
        if args.only != "history":
            batches: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
            for n in range(args.rounds):
                for label, tree in trees:
                    for key, value in batch_once(tree, batch, args.through, 3 + n).items():
                        batches[label].setdefault(key, []).append(value)
            report(
                f"{args.lines}-line batch, killed after {args.through} results, concurrency 64, "
                f"{args.rounds} rounds: median [min - max]",
                batches,
                labels,
            )
        if args.only != "batch":
            with Emulator(EmulatorConfig(port=0, task_seconds=0.05, seed=3)) as emulator:
                homes = {label: Path(scratch) / label for label in labels}
                ids = seed_histories(trees, homes, emulator.url, args.tasks, args.lines)
                looked = ids[len(ids) // 2]
                histories: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
                for _ in range(args.history_rounds or args.rounds):
                    for label, tree in trees:
                        measured = history_once(
                            tree, homes[label], emulator, batch, looked, args.lines
                        )
                        for key, value in measured.items():
                            histories[label].setdefault(key, []).append(value)
            report(
                f"history of {args.tasks} tasks, --resume of its {args.lines}-line batch, "
                f"{args.history_rounds or args.rounds} rounds: median [min - max]",
                histories,
                labels,
            )


if __name__ == "__main__":
    main()
