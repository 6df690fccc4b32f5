"""Batch benchmark: `siray run --batch` with 100 jobs and --concurrency 16 against the emulator,
every task exactly the same length. Prints the wall time next to the ideal
(ceil(jobs / concurrency) x task length), their ratio, status requests per task, and where the
time beyond the ideal goes: start-up (process start to the first task created), the refill delay
(a task finishing in the emulator to the task that takes its slot being created: detection lag
plus the next submit), the mean delay between a task finishing and siray reporting it on stdout,
and the tail (the last report to the process's exit). Several rounds give medians and spread.

Goals (issue 16): 24 one-second tasks at concurrency 8 within 1.3 x the ideal (3 s); 100 x 10 s
tasks at concurrency 16 within 1.1 x (70 s).

    python benchmarks/batch.py [--jobs 100] [--concurrency 16] [--task-seconds 10] [--rounds 3]
    python benchmarks/batch.py --jobs 24 --concurrency 8 --task-seconds 1 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from siray_cli.emulator.server import Emulator, EmulatorConfig

MODEL = "alibaba/z-image-turbo-t2i"


def run_once(jobs: int, concurrency: int, task_seconds: float, seed: int) -> dict[str, float]:
    config = EmulatorConfig(port=0, task_seconds=task_seconds, task_jitter=0.0, seed=seed)
    lines = "".join(
        json.dumps(
            {"prompt": f"asset {n}", "name": f"asset-{n:03d}", "inputs": {"size": "1024x768"}}
        )
        + "\n"
        for n in range(jobs)
    )
    with Emulator(config) as emulator, tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            **emulator.environment(),
            "SIRAY_DATA_DIR": f"{home}/data",
            "SIRAY_CACHE_DIR": f"{home}/cache",
            "SIRAY_CONFIG_DIR": f"{home}/config",
        }
        env.pop("SIRAY_POLL_INTERVAL", None)
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
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(lines)
        process.stdin.close()
        reported: dict[str, float] = {}
        for line in process.stdout:
            reported[json.loads(line)["task_id"]] = time.time()
        process.wait()
        wall = time.time() - started
        tasks = {t["task_id"]: t for t in emulator.state.stats()["tasks"]}
    if process.returncode != 0 or len(reported) != jobs:
        raise SystemExit(f"the batch failed: exit {process.returncode}, {len(reported)} reported")
    created = sorted(t["created_at"] for t in tasks.values())
    finished = sorted(t["finishes_at"] for t in tasks.values())
    refills = [created[k] - finished[k - concurrency] for k in range(concurrency, len(created))]
    delays = [reported[i] - tasks[i]["finishes_at"] for i in reported]
    ideal = math.ceil(jobs / concurrency) * task_seconds
    return {
        "wall time (s)": wall,
        "ratio to the ideal": wall / ideal,
        "status requests per task": statistics.mean(t["status_requests"] for t in tasks.values()),
        "start-up to first task (s)": created[0] - started,
        "mean refill delay (s)": statistics.mean(refills) if refills else 0.0,
        "mean report delay (s)": statistics.mean(delays),
        "max report delay (s)": max(delays),
        "tail after last report (s)": wall - (max(reported.values()) - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--task-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    rounds = [
        run_once(args.jobs, args.concurrency, args.task_seconds, seed=3 + n)
        for n in range(args.rounds)
    ]
    ideal = math.ceil(args.jobs / args.concurrency) * args.task_seconds
    print(
        f"jobs {args.jobs}, concurrency {args.concurrency}, task length {args.task_seconds:g} s, "
        f"ideal {ideal:g} s, {args.rounds} round{'s' if args.rounds > 1 else ''}: "
        "median [min - max]"
    )
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(
            f"{key:<30}{statistics.median(values):>8.2f}  [{min(values):.2f} - {max(values):.2f}]"
        )


if __name__ == "__main__":
    main()
