"""Batch benchmark: `siray run --batch` with 100 jobs and --concurrency 16 against the emulator,
every task exactly the same length. Prints the wall time next to the ideal
(ceil(jobs / concurrency) x task length), their ratio (target <= 1.1), status requests per task,
and the mean delay between a task finishing in the emulator and siray reporting it on stdout.

    python benchmarks/batch.py [--jobs 100] [--concurrency 16] [--task-seconds 10]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--task-seconds", type=float, default=10.0)
    args = parser.parse_args()

    config = EmulatorConfig(port=0, task_seconds=args.task_seconds, task_jitter=0.0, seed=3)
    lines = "".join(
        json.dumps(
            {"prompt": f"asset {n}", "name": f"asset-{n:03d}", "inputs": {"size": "1024x768"}}
        )
        + "\n"
        for n in range(args.jobs)
    )
    with Emulator(config) as emulator, tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            **emulator.environment(),
            "SIRAY_DATA_DIR": f"{home}/data",
            "SIRAY_CACHE_DIR": f"{home}/cache",
            "SIRAY_CONFIG_DIR": f"{home}/config",
        }
        command = [
            sys.executable,
            "-m",
            "siray_cli",
            "run",
            "--batch",
            "-",
            "-m",
            "alibaba/z-image-turbo-t2i",
            "--concurrency",
            str(args.concurrency),
        ]
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

    ideal = math.ceil(args.jobs / args.concurrency) * args.task_seconds
    delays = [reported[i] - tasks[i]["finishes_at"] for i in reported]
    requests = [tasks[i]["status_requests"] for i in reported]
    print(
        f"jobs {args.jobs}, concurrency {args.concurrency}, task length {args.task_seconds:g} s"
        f" (exit {process.returncode}, {len(reported)} reported, {len(tasks)} created)"
    )
    print(f"{'wall time (s)':<34}{wall:>8.1f}")
    print(f"{'ideal: ceil(jobs/concurrency) x len':<34}{ideal:>8.1f}")
    print(f"{'ratio (target <= 1.1)':<34}{wall / ideal:>8.3f}")
    print(f"{'status requests per task':<34}{statistics.mean(requests):>8.2f}")
    print(f"{'mean report delay (s)':<34}{statistics.mean(delays):>8.2f}")
    print(f"{'max report delay (s)':<34}{max(delays):>8.2f}")


if __name__ == "__main__":
    main()
