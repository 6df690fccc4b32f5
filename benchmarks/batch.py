"""Batch benchmark: `siray run --batch` against the emulator, this checkout and (with --before)
another one side by side in the same rounds, interleaved. Tasks vary in length by the emulator's
default spread (15 %: real tasks vary) and, in the same run, by none (`--spreads 0.15 0`).

Each row prints the median and [min - max] over the rounds: the wall time, its ratio to the
ideal (ceil(jobs / concurrency) x task length), status requests per task, 429 answers, and where
the time beyond the ideal goes: the ideal for the very task lengths of the round (the spread's
share), start-up (process start to the first task created), the refill
delay (a task finishing in the emulator to the task that takes its slot being created), the mean
and worst delay between a task finishing and siray reporting it on stdout, and the tail.

The clock starts once the emulator has imported what its first create needs (a real server
is up and warm when a batch starts; the import would compete with siray for the CPU).

With --rate-limit N the emulator answers 429 (with Retry-After) beyond N API requests a second;
every line must still succeed, and the benchmark prints the best that limit allows: each task
costs at least two requests (its create and one look that finds it done), so no batch ends
before 2 x jobs / N seconds, plus one task's length.

Goals (issue 24), with the default spread: 24 x 1 s at concurrency 8 within 1.3 x the ideal;
1,000 x 2 s at concurrency 64 within 1.25 x without a limit, and with --rate-limit 30 no failed
line and within 1.15 x of that bound; 100 x 10 s at concurrency 16 within 1.1 x.

    python benchmarks/batch.py --jobs 24 --concurrency 8 --task-seconds 1 --rounds 5
    python benchmarks/batch.py --jobs 1000 --concurrency 64 --task-seconds 2 [--rate-limit 30]
    python benchmarks/batch.py --jobs 100 --concurrency 16 --task-seconds 10 --spreads 0.15
    python benchmarks/batch.py ... --before /tmp/before   # e.g. git worktree add /tmp/before REV
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siray_cli.emulator.server import Emulator, EmulatorConfig

MODEL = "alibaba/z-image-turbo-t2i"


def run_once(
    tree: Path | None,
    jobs: int,
    concurrency: int,
    task_seconds: float,
    spread: float,
    rate_limit: float | None,
    seed: int,
) -> dict[str, float]:
    config = EmulatorConfig(
        port=0, task_seconds=task_seconds, task_jitter=spread, seed=seed, rate_limit=rate_limit
    )
    lines = "".join(
        json.dumps(
            {"prompt": f"asset {n}", "name": f"asset-{n:04d}", "inputs": {"size": "1024x768"}}
        )
        + "\n"
        for n in range(jobs)
    )
    with Emulator(config) as emulator, tempfile.TemporaryDirectory() as home:
        emulator.wait_warm()  # as ready as a real server, whose first create costs no import
        env = {
            **os.environ,
            **emulator.environment(),
            "SIRAY_DATA_DIR": f"{home}/data",
            "SIRAY_CACHE_DIR": f"{home}/cache",
            "SIRAY_CONFIG_DIR": f"{home}/config",
        }
        env.pop("SIRAY_POLL_INTERVAL", None)
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        command = [sys.executable, "-m", "siray_cli", "run", "--batch", "-", "-m", MODEL]
        command += ["--concurrency", str(concurrency)]
        started = time.time()
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=home,  # not this checkout: `-m` would import siray_cli from the working directory
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(lines)
        process.stdin.close()
        reported: dict[str, float] = {}
        failed = 0
        for line in process.stdout:
            result = json.loads(line)
            reported[result["task_id"]] = time.time()
            failed += result.get("status") != "SUCCESS"
        process.wait()
        wall = time.time() - started
        stats = emulator.state.stats()
        tasks = {t["task_id"]: t for t in stats["tasks"]}
        refused = emulator.state.rate_limit.refused if emulator.state.rate_limit else 0
    if not reported or not tasks:
        raise SystemExit(f"the batch failed: exit {process.returncode}, nothing reported")
    failed += jobs - len(reported)  # lines never reported (a batch that gave up) failed too
    reported = {i: t for i, t in reported.items() if i in tasks}
    created = sorted(t["created_at"] for t in tasks.values())
    finished = sorted(t["finishes_at"] for t in tasks.values())
    refills = [created[k] - finished[k - concurrency] for k in range(concurrency, len(created))]
    by_creation = sorted(tasks.values(), key=lambda t: t["created_at"])
    lengths = [t["finishes_at"] - t["created_at"] for t in by_creation]
    delays = [reported[i] - tasks[i]["finishes_at"] for i in reported]
    return {
        "wall time (s)": wall,
        "ratio to the ideal": wall / ideal_of(jobs, concurrency, task_seconds),
        "ratio to the best the limit allows": wall
        / bound_of(jobs, concurrency, task_seconds, rate_limit),
        "ideal for these task lengths (s)": ideal_for(lengths, concurrency),
        "status requests per task": statistics.mean(t["status_requests"] for t in tasks.values()),
        "429 answers": float(refused),
        "failed lines": float(failed),
        "exit status": float(process.returncode),
        "start-up to first task (s)": created[0] - started,
        "mean refill delay (s)": statistics.mean(refills) if refills else 0.0,
        "mean report delay (s)": statistics.mean(delays),
        "max report delay (s)": max(delays),
        "tail after last report (s)": wall - (max(reported.values()) - started),
    }


def ideal_of(jobs: int, concurrency: int, task_seconds: float) -> float:
    return math.ceil(jobs / concurrency) * task_seconds


def ideal_for(lengths: list[float], concurrency: int) -> float:
    """The shortest the batch could have taken with these very task lengths (the spread), in
    this order, each started the moment a slot frees: no start-up, no lag, no refill delay."""
    slots = [0.0] * concurrency
    for length in lengths:
        heapq.heapreplace(slots, slots[0] + length)
    return max(slots)


def bound_of(jobs: int, concurrency: int, task_seconds: float, limit: float | None) -> float:
    """The shortest a batch can take: its ideal, or under a rate limit two requests per task at
    the limit, plus one task's length."""
    ideal = ideal_of(jobs, concurrency, task_seconds)
    return ideal if limit is None else max(ideal, 2 * jobs / limit + task_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--task-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spreads", type=float, nargs="+", default=[0.15, 0.0])
    parser.add_argument("--rate-limit", type=float, help="emulator: API requests a second per key")
    parser.add_argument("--before", type=Path, help="another checkout, run side by side")
    args = parser.parse_args()

    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before is not None:
        trees.insert(0, ("before", args.before.resolve()))
    ideal = ideal_of(args.jobs, args.concurrency, args.task_seconds)
    bound = bound_of(args.jobs, args.concurrency, args.task_seconds, args.rate_limit)
    limit = (
        f", rate limit {args.rate_limit:g}/s (best it allows {bound:.1f} s)"
        if args.rate_limit
        else ""
    )
    print(
        f"jobs {args.jobs}, concurrency {args.concurrency}, task length {args.task_seconds:g} s, "
        f"ideal {ideal:g} s{limit}, {args.rounds} rounds: median [min - max]"
    )
    for spread in args.spreads:
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
        for n in range(args.rounds):
            for name, tree in trees:  # interleaved: both see the same conditions
                rounds[name].append(
                    run_once(
                        tree,
                        args.jobs,
                        args.concurrency,
                        args.task_seconds,
                        spread,
                        args.rate_limit,
                        seed=3 + n,
                    )
                )
        print(f"\nspread {spread:.0%}" + "".join(f"{name:>26}" for name, _ in trees))
        for key in rounds[trees[0][0]][0]:
            if key == "ratio to the best the limit allows" and not args.rate_limit:
                continue
            cells = []
            for name, _ in trees:
                values = [r[key] for r in rounds[name]]
                cells.append(
                    f"{statistics.median(values):>8.2f} [{min(values):.2f} - {max(values):.2f}]"
                )
            print(f"{key:<36}" + "".join(f"{cell:>26}" for cell in cells))


if __name__ == "__main__":
    main()
