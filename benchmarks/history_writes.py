"""History writes benchmark: what one batch line writes to the task history, timed.

A line journals its submit, confirms its task id, records its state as the looks see it change
(here three progress steps and the end) and marks its result handed over: seven writes, each
under the history's one lock, which every worker of a batch shares. Each round writes --lines
lines (after one untimed line: the history is made first) to a fresh history in a process of its
own, on the disk of --dir (a real batch's data directory is on the user's disk, and the time a
write waits for it is most of the cost). Printed: milliseconds a line, median [min - max] of
--rounds, this checkout and (with --before) another one, side by side, rounds interleaved.

    python benchmarks/history_writes.py [--lines 300] [--rounds 7] [--before /tmp/before]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUND = """
import sys, tempfile, time
from pathlib import Path
from siray_cli.domain import Task, TaskKind, TaskState
from siray_cli.storage.history import History

lines, where = int(sys.argv[1]), sys.argv[2]
history = History(Path(tempfile.mkdtemp(dir=where)) / "history.sqlite3", print)

def line(n):
    row = history.record_submit(
        task_id=None, kind="image", model="m", request={"prompt": "a fox " * 12},
        base_url="https://api.example", profile="default", provider="siray",
        job_key=f"key-{n}", batch_line=n, idempotency_key=f"idem-{n}",
    )
    history.confirm(row, f"task-{n}")
    for progress in (30, 60, 90):
        history.update(row, Task(f"task-{n}", TaskKind.IMAGE, "IN_PROGRESS",
                                 TaskState.IN_PROGRESS, progress))
    history.update(row, Task(f"task-{n}", TaskKind.IMAGE, "SUCCESS", TaskState.SUCCESS, 100))
    history.deliver(row, "submitter")

line(-1)
started = time.perf_counter()
for n in range(lines):
    line(n)
print((time.perf_counter() - started) / lines * 1000)
history.close()
"""


def one_round(tree: Path | None, lines: int, where: str) -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-c", ROUND, str(lines), where],
        capture_output=True,
        text=True,
        env=env,
        cwd=where,  # not this checkout: -c would import siray_cli from the working directory
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path, help="another checkout, run side by side")
    parser.add_argument("--dir", default=None, help="where the histories are made (a temp dir)")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before is not None:
        trees.insert(0, ("before", args.before.resolve()))
    times: dict[str, list[float]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory(dir=args.dir) as where:
        for _ in range(args.rounds):
            for name, tree in trees:  # interleaved: both see the same conditions
                times[name].append(one_round(tree, args.lines, where))
    print(f"history writes of one batch line, {args.lines} lines, {args.rounds} rounds (ms)")
    for name, values in times.items():
        print(f"{name:>8} {statistics.median(values):7.2f} [{min(values):.2f} - {max(values):.2f}]")


if __name__ == "__main__":
    main()
