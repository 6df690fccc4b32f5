"""Soak benchmark: `siray run --batch` with 500 tasks against the emulator, once clean and once
with about 10 % of requests faulted in every mode the emulator has (429 and 5xx bursts with
JSON, text and HTML bodies, dropped connections before and after the create was processed,
truncated and malformed bodies, stalled downloads), plus multipart uploads with failing parts.
Prints tasks requested and created, duplicates, lost ids, partial files and orphaned uploads,
and the faulted run's wall time against the clean one.

    python benchmarks/soak.py [--jobs 500] [--concurrency 16] [--task-seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.server import Emulator, EmulatorConfig

MODEL = "google/gemini-2.5-flash-image-t2i"
CREATE = "/v1/images/generations/async$"
STATUS = "/v1/images/generations/async/"


def faults(rate: float) -> list[Fault]:
    """About `rate` of the requests to each kind of path faulted, spread over the modes."""
    post = [
        Fault(action="drop", method="POST", path=CREATE),
        Fault(action="drop-after", method="POST", path=CREATE),
        Fault(action="status", status=503, body="html", method="POST", path=CREATE),
        Fault(action="status", status=429, retry_after=0.2, method="POST", path=CREATE),
        Fault(action="truncate", method="POST", path=CREATE),
        Fault(action="malformed", method="POST", path=CREATE),
    ]
    get = [
        Fault(action="status", status=429, retry_after=0.2, method="GET", path=STATUS),
        Fault(action="status", status=500, body="json", method="GET", path=STATUS),
        Fault(action="status", status=502, body="html", method="GET", path=STATUS),
        Fault(action="status", status=503, body="text", method="GET", path=STATUS),
        Fault(action="status", status=504, body="json", method="GET", path=STATUS),
        Fault(action="drop", method="GET", path=STATUS),
        Fault(action="truncate", method="GET", path=STATUS),
        Fault(action="malformed", method="GET", path=STATUS),
        Fault(action="delay", delay=0.3, method="GET", path=STATUS),
    ]
    files = [
        Fault(action="truncate", path="^/files/"),
        Fault(action="truncate-eof", path="^/files/"),
        Fault(action="stall", delay=3, path="^/files/"),
    ]
    redirects = [Fault(action="status", status=503, path="^/redirect/")]
    parts = [
        Fault(action="status", status=500, path="partNumber"),
        Fault(action="drop", path="partNumber"),
    ]
    rules = []
    for group in (post, get, files, redirects, parts):
        # every rule of a group matches the same requests and is tried in turn: this rate per
        # rule faults `rate` of those requests in all
        share = 1 - (1 - rate) ** (1 / len(group))
        for rule in group:
            rule.count, rule.rate = 0, share
            rules.append(rule)
    return rules


def run_batch(emulator: Emulator, home: Path, jobs: int, concurrency: int) -> dict:
    out = home / "out"
    env = {
        **os.environ,
        **emulator.environment(),
        "SIRAY_DATA_DIR": str(home / "data"),
        "SIRAY_CACHE_DIR": str(home / "cache"),
        "SIRAY_CONFIG_DIR": str(home / "config"),
        "SIRAY_READ_TIMEOUT": "1",
        "SIRAY_RETRY_BACKOFF": "0.1",
    }
    lines = "".join(
        json.dumps({"prompt": f"soak {home.name} {n}", "name": f"asset-{n:03d}"}) + "\n"
        for n in range(jobs)
    )
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "siray_cli",
            "run",
            "--batch",
            "-",
            "-m",
            MODEL,
            "--concurrency",
            str(concurrency),
            "-o",
            str(out),
            "--poll-interval",
            "1",
        ],
        input=lines,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - started
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    prompts = {f"soak {home.name} {n}" for n in range(jobs)}
    created = [t for t in emulator.state.tasks.values() if t.body.get("prompt") in prompts]
    with sqlite3.connect(home / "data" / "history.sqlite3") as db:
        recorded = {row[0] for row in db.execute("SELECT task_id FROM tasks") if row[0]}
        attempts = {
            json.loads(row[0])["prompt"]
            for row in db.execute("SELECT request FROM tasks WHERE status = 'UNCERTAIN'")
        }
    reported = {r["task_id"] for r in results if r["task_id"]}
    # lost: a task that exists, whose id nobody saw, and whose attempt was not reported either
    seen = recorded | reported
    lost = [
        t.task_id for t in created if t.task_id not in seen and t.body["prompt"] not in attempts
    ]
    bodies: dict[str, int] = {}
    for task in created:
        bodies[task.body["prompt"]] = bodies.get(task.body["prompt"], 0) + 1
    files = list(out.iterdir()) if out.exists() else []
    listed = {Path(f).name for r in results for f in r["files"]}
    partial = [f.name for f in files if f.name not in listed or f.suffix == ".part"]
    return {
        "requested": jobs,
        "created": len(created),
        "duplicates": sum(n - 1 for n in bodies.values()),
        "lost": len(lost),
        "partial": len(partial),
        "succeeded": sum(r["status"] == "SUCCESS" for r in results),
        "uncertain": len(attempts),
        "failed": sum(r["error"] is not None for r in results),
        "wall": wall,
        "exit": completed.returncode,
    }


def soak_uploads(emulator: Emulator, home: Path, count: int) -> int:
    """Multipart uploads under part failures; returns the multipart uploads left open."""
    big = home / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    env = {
        **os.environ,
        **emulator.environment(),
        "SIRAY_DATA_DIR": str(home / "data"),
        "SIRAY_CONFIG_DIR": str(home / "config"),
        "SIRAY_UPLOAD_PART_SIZE": str(5 * 2**20),
        "SIRAY_RETRY_BACKOFF": "0.1",
    }
    for _ in range(count):
        subprocess.run(
            [sys.executable, "-m", "siray_cli", "upload", str(big)],
            env=env,
            capture_output=True,
            check=False,
        )
    return len(emulator.state.store.multipart_uploads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--uploads", type=int, default=10)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, rate in (("clean", 0.0), ("faulted", args.rate)):
            config = EmulatorConfig(port=0, task_seconds=args.task_seconds, seed=11)
            with Emulator(config) as emulator:
                rules = faults(rate) if rate else []
                for rule in rules:
                    emulator.state.faults.add(rule)
                home = Path(scratch) / name
                home.mkdir()
                rows[name] = run_batch(emulator, home, args.jobs, args.concurrency)
                rows[name]["orphaned"] = soak_uploads(emulator, home, args.uploads)
                rows[name]["requests"] = sum(emulator.state.stats()["requests"].values())
                rows[name]["faults"] = sum(rule.fired for rule in rules)
    keys = [
        "requested",
        "created",
        "succeeded",
        "failed",
        "uncertain",
        "duplicates",
        "lost",
        "partial",
        "orphaned",
        "requests",
        "faults",
        "exit",
        "wall",
    ]
    print(f"{'':<12}" + "".join(f"{k:>11}" for k in rows))
    for key in keys:
        cells = "".join(
            f"{rows[k][key]:>11.1f}" if key == "wall" else f"{rows[k][key]:>11}" for k in rows
        )
        print(f"{key:<12}{cells}")
    print(
        f"faulted / clean wall time: {rows['faulted']['wall'] / rows['clean']['wall']:.2f} "
        "(target <= 1.5); targets: 0 duplicates, 0 lost, 0 partial, 0 orphaned"
    )


if __name__ == "__main__":
    main()
