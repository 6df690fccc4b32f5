"""Interrupt storm: `siray run` on a task that never finishes, sent SIGINT at a random moment
(uniform over the first `--window` seconds: interpreter start, imports, catalogue, the create
request held open by the emulator for 0.4 s, waiting), many times over.

Prints, per source tree, how each run ended: exit 130 and quiet, killed before siray's own code
ran (Python still starting: nothing to be done there), a traceback or another exit code, a hang
(still running 15 s after the interrupt), and for the tasks created, how many were never shown
on stderr or never recorded in the history (lost). `--baseline DIR` runs an older checkout
(`git worktree add /tmp/old COMMIT`) in the same storm, side by side.

    python benchmarks/interrupts.py [--runs 150] [--window 1.2] [--parallel 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.server import Emulator, EmulatorConfig

MODEL = "google/gemini-2.5-flash-image-t2i"
CREATE = "/v1/images/generations/async$"
HANG = 15.0
SHOW = "--show" in sys.argv


def one_run(emu: Emulator, tree: Path, delay: float, prompt: str) -> tuple[str, bool]:
    """(outcome, task lost) for one interrupted run."""
    home = Path(tempfile.mkdtemp(prefix="siray-storm-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    env.update(emu.environment())
    for name in ("CONFIG", "DATA", "CACHE"):
        env[f"SIRAY_{name}_DIR"] = str(home / name.lower())
    process = subprocess.Popen(
        [sys.executable, "-m", "siray_cli", "run", MODEL, prompt],
        cwd=tree,  # `python -m` puts the tree's own siray_cli first
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        outcome = "hang"
    else:
        if process.returncode == 130 and "Traceback" not in err:
            outcome = "exit 130, quiet"
        elif "siray_cli" not in err and process.returncode in (-2, 1):
            outcome = "before siray started"
        else:
            outcome = (
                f"exit {process.returncode}, traceback"
                if "Traceback" in err
                else (f"exit {process.returncode}")
            )
    created = [t.task_id for t in emu.state.tasks.values() if t.body.get("prompt") == prompt]
    recorded: set[str] = set()
    database = home / "data" / "history.sqlite3"
    if database.exists():
        with sqlite3.connect(database) as db:
            recorded = {row[0] for row in db.execute("SELECT task_id FROM tasks")}
    lost = any(t not in err + out or t not in recorded for t in created)
    if SHOW and outcome not in ("exit 130, quiet", "before siray started"):
        print(f"--- {tree.name}, SIGINT at {delay:.3f} s: {outcome}", file=sys.stderr)
        print(err[-1500:], file=sys.stderr)
    return outcome, lost


def storm(emu: Emulator, tree: Path, delays: list[float], parallel: int) -> tuple[Counter, int]:
    def run(index: int) -> tuple[str, bool]:
        return one_run(emu, tree, delays[index], f"[hold] storm {tree.name} {index}")

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(run, range(len(delays))))
    return Counter(outcome for outcome, _ in results), sum(lost for _, lost in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--window", type=float, default=1.2)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="an older checkout to compare with")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="print what each unclean run said")
    args = parser.parse_args()
    emu = Emulator(EmulatorConfig(port=0, task_seconds=3)).start()
    # every create is held open 0.4 s, so a good share of interrupts land while it is in flight
    emu.state.faults.add(Fault(action="delay", delay=0.4, method="POST", path=CREATE, count=0))
    rng = random.Random(args.seed)
    delays = [rng.uniform(0, args.window) for _ in range(args.runs)]
    trees = [Path(__file__).resolve().parent.parent]
    if args.baseline:
        trees.append(args.baseline.resolve())
    results = {}
    for tree in trees:
        started = time.monotonic()
        results[tree] = (*storm(emu, tree, delays, args.parallel), time.monotonic() - started)
    emu.stop()
    outcomes = sorted({o for counts, _, _ in results.values() for o in counts})
    names = ["this tree" if t == trees[0] else f"baseline {t}" for t in trees]
    print(f"{args.runs} runs, SIGINT uniform over {args.window:g} s, {args.parallel} at a time")
    print(f"{'outcome':<30}" + "".join(f"{n:>24}" for n in names))
    for outcome in outcomes:
        print(f"{outcome:<30}" + "".join(f"{results[t][0][outcome]:>24}" for t in trees))
    print(f"{'task ids lost':<30}" + "".join(f"{results[t][1]:>24}" for t in trees))
    print(f"{'wall time (s)':<30}" + "".join(f"{results[t][2]:>24.1f}" for t in trees))


if __name__ == "__main__":
    main()
