"""Chaos benchmark: batches of `siray run --batch FILE -o DIR --resume` against the emulator, in
rounds, while siray is sent SIGTERM, SIGKILL and SIGINT at random moments (sometimes twice, to
force a held create), the emulator injects faults (5xx, dropped connections before and after the
create, cut and malformed bodies, 429 with Retry-After, delays, stalled downloads) and the output
directory, a small tmpfs, is filled up (and emptied again between rounds). Every round resumes
where the last ones stopped; once the chaos share of the budget is spent, calm rounds finish the
work, and a last calm `--resume` of every file must create nothing.

A job that `--resume` reports UNCERTAIN is settled as a careful user would: the emulator's task
list is searched for its prompt (once the emulator has answered every request under way); a job
whose task is there is left alone (its id found by hand, nothing paid twice), and only jobs that
certainly created no task are run again, from a file of their own, with --resubmit-uncertain.

Prints jobs, create requests seen by the server, tasks created, duplicates (a prompt that created
more than one task), lost ids (a created task whose id is in neither the history nor any output,
and whose attempt siray never reported UNCERTAIN either), partial files, orphaned UNCERTAIN rows,
tracebacks and hangs, and how many signals, faults and disk-fulls were injected.

    python benchmarks/chaos.py [--jobs 240] [--seconds 300] [--batch-size 20] [--parallel 2]
                               [--concurrency 8] [--seed 1] [--tmpfs-mib 16] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.server import Emulator, EmulatorConfig

MODEL = "google/gemini-2.5-flash-image-t2i"
CREATE = "/v1/images/generations/async$"
STATUS = "/v1/images/generations/async/"
FILLER = "chaos-filler.bin"  # the file that fills the tmpfs; never siray's
PNG_HEAD, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
HANG = 45.0  # seconds a signalled siray may take to exit: a 10 s held create, 15 s of grace
ROUND_LIMIT = 150.0  # seconds an unsignalled run may take before it counts as a hang
CHAOS_SHARE = 0.7  # of the budget; the rest is calm rounds that finish the work
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


def fault_menu(rng: random.Random) -> list[Fault]:
    """A few rules for one round, drawn from every mode the emulator has, each at its own rate."""
    five = (500, 502, 503, 504)
    bodies = ("json", "text", "html")
    menu = [
        {"action": "status", "status": rng.choice(five), "body": rng.choice(bodies)},
        {"action": "drop"},
        {"action": "drop-after"},
        {"action": "truncate"},
        {"action": "malformed"},
        {"action": "status", "status": 429, "retry_after": round(rng.uniform(0.2, 1.5), 1)},
        {"action": "delay", "delay": round(rng.uniform(0.2, 1.5), 2)},
    ]
    rules = [Fault(method="POST", path=CREATE, **spec) for spec in menu]
    rules += [
        Fault(method="GET", path=STATUS, **spec) for spec in menu if spec["action"] != "drop-after"
    ]
    rules += [
        Fault(action="truncate", path="^/files/"),
        Fault(action="truncate-eof", path="^/files/"),
        Fault(action="stall", delay=2.0, path="^/files/"),
        Fault(action="status", status=503, path="^/redirect/"),
    ]
    chosen = rng.sample(rules, rng.randint(1, 4))
    for rule in chosen:
        rule.count, rule.rate = 0, round(rng.uniform(0.05, 0.25), 3)
    return chosen


def describe(rule: Fault) -> str:
    where = "create" if "async$" in rule.path else rule.path.strip("^/").rstrip("/") or "all"
    where = "status" if rule.path == STATUS else where
    what = f"{rule.status}" if rule.action == "status" else rule.action
    return f"{what} on {where}"


@dataclass
class Plan:
    """What happens to one siray process: a signal `at` seconds in, maybe again `again` later."""

    signal: str | None = None
    at: float = 0.0
    again: float | None = None


@dataclass
class Run:
    batch: str
    plan: Plan
    sent: list[str] = field(default_factory=list)
    exit: int | None = None
    hang: bool = False
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


@dataclass
class Tally:
    signals: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    disk_fulls: int = 0
    rounds: int = 0
    chaos_rounds: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    tracebacks: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    checked: int = 0  # UNCERTAIN jobs looked up on the server's task list
    found: dict[int, list[str]] = field(default_factory=dict)  # job -> ids found by hand
    resubmitted: int = 0  # jobs proven to have created nothing, run with --resubmit-uncertain
    text: list[str] = field(default_factory=list)  # everything siray printed, for lost ids
    stuck: Counter[int] = field(default_factory=Counter)  # job -> rounds it ended in an error


def mount_tmpfs(directory: Path, mib: int) -> str | None:
    """Mount a small tmpfs on `directory`; None when it worked, else why not."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def fill(directory: Path, rng: random.Random) -> int:
    """Fill the file system of `directory`, leaving 0-64 KiB free (less than a few outputs)."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    size = max(0, free - rng.randint(0, 64 * 1024))
    descriptor = os.open(directory / FILLER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(descriptor, 0, size)
    except OSError:
        pass  # as full as it gets
    finally:
        os.close(descriptor)
    return size


def run_siray(env: dict[str, str], command: list[str], batch: Path, plan: Plan) -> Run:
    run = Run(batch.name, plan)
    started = time.monotonic()
    process = subprocess.Popen(
        [*command[:5], str(batch), *command[5:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # a signal for this process only, not for the benchmark
    )
    out, err = "", ""
    try:
        if plan.signal is None:
            out, err = process.communicate(timeout=ROUND_LIMIT)
        else:
            try:
                out, err = process.communicate(timeout=plan.at)
            except subprocess.TimeoutExpired:
                process.send_signal(SIGNALS[plan.signal])
                run.sent.append(plan.signal)
                try:
                    wait = HANG if plan.again is None else plan.again
                    out, err = process.communicate(timeout=wait)
                except subprocess.TimeoutExpired:
                    if plan.again is None:
                        raise
                    process.send_signal(SIGNALS[plan.signal])
                    run.sent.append(plan.signal)
                    out, err = process.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        run.hang = True
        process.kill()
        out, err = process.communicate()
    run.exit, run.stdout, run.stderr = process.returncode, out, err
    run.seconds = time.monotonic() - started
    return run


def results(run: Run) -> list[dict]:
    """The JSON lines siray printed (a line cut by SIGKILL is left out)."""
    found = []
    for line in run.stdout.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


class Chaos:
    def __init__(self, args: argparse.Namespace, emulator: Emulator, home: Path) -> None:
        self.args, self.emulator, self.home = args, emulator, home
        self.rng = random.Random(args.seed)
        self.out = home / "out"
        self.data = home / "data"
        self.tag = f"{args.seed}-{self.rng.randrange(16**6):06x}"
        self.prompts = [f"chaos {self.tag} job {n}" for n in range(args.jobs)]
        self.lines = [
            json.dumps({"prompt": prompt, "name": f"job-{n:04d}"})
            for n, prompt in enumerate(self.prompts)
        ]
        size = args.batch_size
        self.batches: list[tuple[Path, list[int]]] = []
        for first in range(0, args.jobs, size):
            members = list(range(first, min(first + size, args.jobs)))
            path = home / f"batch-{first // size:02d}.jsonl"
            path.write_text("".join(self.lines[n] + "\n" for n in members))
            self.batches.append((path, members))
        self.done: set[int] = set()
        self.resubmit: list[int] = []
        self.tally = Tally()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")},
            **emulator.environment(),
            "SIRAY_DATA_DIR": str(self.data),
            "SIRAY_CONFIG_DIR": str(home / "config"),
            "SIRAY_CACHE_DIR": str(home / "cache"),
            "SIRAY_READ_TIMEOUT": "1",
            "SIRAY_RETRY_BACKOFF": "0.1",
            "NO_PROXY": "127.0.0.1",
        }
        self.command = [sys.executable, "-m", "siray_cli", "run", "--batch"]
        self.command += ["-m", MODEL, "-o", str(self.out), "--resume", "--poll-interval", "1"]
        self.command += ["--concurrency", str(args.concurrency)]
        self.tmpfs = False
        self.next_batch = 0

    # one round --------------------------------------------------------------------------------
    def plan(self, chaos: bool) -> Plan:
        if not chaos or self.rng.random() < 0.25:
            return Plan()
        kind = self.rng.choices(list(SIGNALS), weights=(4, 4, 3))[0]
        again = None
        if kind != "SIGKILL" and self.rng.random() < 0.3:
            again = self.rng.uniform(0.05, 1.0)  # a second signal forces a held create
        return Plan(kind, self.rng.uniform(0.3, self.args.signal_window), again)

    def pick(self) -> list[tuple[Path, list[int]]]:
        if self.resubmit:  # alone: no other run may touch these jobs meanwhile
            path = self.home / f"resubmit-{self.tally.rounds:03d}.jsonl"
            path.write_text("".join(self.lines[n] + "\n" for n in self.resubmit))
            picked = [(path, list(self.resubmit))]
            self.resubmit = []
            return picked
        picked = []
        for _ in range(len(self.batches)):
            path, members = self.batches[self.next_batch]
            self.next_batch = (self.next_batch + 1) % len(self.batches)
            if any(n not in self.done for n in members):
                picked.append((path, members))
            if len(picked) == self.args.parallel:
                break
        return picked

    def one_round(self, chaos: bool) -> None:
        tally = self.tally
        picked = self.pick()
        resubmitting = picked[0][0].name.startswith("resubmit")
        rules = fault_menu(self.rng) if chaos else []
        for rule in rules:
            self.emulator.state.faults.add(rule)
        if chaos and self.tmpfs and self.rng.random() < self.args.disk_full:
            fill(self.out, self.rng)
            tally.disk_fulls += 1
        plans = [self.plan(chaos) for _ in picked]
        runs: list[Run] = [Run("", Plan())] * len(picked)

        def go(index: int) -> None:
            path, _ = picked[index]
            env = self.env
            command = self.command + (["--resubmit-uncertain"] if resubmitting else [])
            runs[index] = run_siray(env, command, path, plans[index])

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(picked))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # the round is over: faults off, room made again, every request under way answered
        self.emulator.state.faults.clear()
        (self.out / FILLER).unlink(missing_ok=True)
        time.sleep(0.3)
        self.emulator.state.wait_answered(timeout=10)
        tally.rounds += 1
        tally.chaos_rounds += chaos
        for rule in rules:
            if rule.fired:
                tally.faults[describe(rule)] += rule.fired
        for run, (path, _) in zip(runs, picked, strict=True):
            where = f"round {tally.rounds} ({path.name}, {run.plan.signal or 'no signal'}"
            where += f" at {run.plan.at:.2f} s{' twice' if len(run.sent) > 1 else ''})"
            self.log(tally.rounds, run, rules)
            tally.signals.update(run.sent)
            tally.text += [run.stdout, run.stderr]
            tally.exits[str(run.exit) + (" (hang)" if run.hang else "")] += 1
            if run.hang:
                tally.hangs.append(where)
            if "Traceback" in run.stderr:
                tally.tracebacks.append(f"{where}: {run.stderr[-1200:]}")
            self.settle(results(run))

    def log(self, number: int, run: Run, rules: list[Fault]) -> None:
        if self.args.logs is None:
            return
        self.args.logs.mkdir(parents=True, exist_ok=True)
        name = f"round-{number:03d}-{run.batch.removesuffix('.jsonl')}"
        plan = f"{run.plan.signal} at {run.plan.at:.3f} s, sent {run.sent}, exit {run.exit}\n"
        plan += "".join(f"fault: {rule}\n" for rule in rules)
        (self.args.logs / f"{name}.txt").write_text(
            plan + "--- stdout\n" + run.stdout + "--- stderr\n" + run.stderr
        )

    def settle(self, reported: list[dict]) -> None:
        """Done jobs noted; UNCERTAIN ones looked up on the server, as a careful user would."""
        known = self.recorded_ids()
        by_prompt: dict[str, list[str]] = {}
        for task in list(self.emulator.state.tasks.values()):
            by_prompt.setdefault(str(task.body.get("prompt")), []).append(task.task_id)
        for result in reported:
            job = int(result["name"].removeprefix("job-"))
            if result["status"] == "SUCCESS" and result["error"] is None:
                if result["files"] and all(Path(f).is_file() for f in result["files"]):
                    self.done.add(job)
                continue
            if result["status"] != "UNCERTAIN":
                self.tally.stuck[job] += 1
                continue
            if job in self.done or job in self.tally.found:
                continue
            self.tally.checked += 1
            ids = by_prompt.get(self.prompts[job], [])
            if ids:  # the task exists: its id is found by hand and it is never paid for twice
                self.tally.found[job] = [i for i in ids if i not in known] or ids
                self.done.add(job)
            elif job not in self.resubmit:
                self.resubmit.append(job)
                self.tally.resubmitted += 1

    def final_resume(self) -> int:
        """Every file once more, calm: every job is done, so nothing may be created."""
        before = len(self.emulator.state.tasks)
        for path, _ in self.batches:
            run = run_siray(self.env, self.command, path, Plan())
            self.tally.text += [run.stdout, run.stderr]
            if "Traceback" in run.stderr:
                self.tally.tracebacks.append(f"the final resume of {path.name}: {run.stderr}")
            if run.hang:
                self.tally.hangs.append(f"the final resume of {path.name}")
        return len(self.emulator.state.tasks) - before

    # the figures ------------------------------------------------------------------------------
    def history(self) -> list[sqlite3.Row]:
        database = self.data / "history.sqlite3"
        if not database.exists():
            return []
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            return list(db.execute("SELECT task_id, status, request, files FROM tasks"))

    def recorded_ids(self) -> set[str]:
        return {row["task_id"] for row in self.history() if row["task_id"]}

    def partial_files(self, listed: set[str]) -> list[str]:
        bad = []
        for path in sorted(self.out.iterdir()) if self.out.exists() else []:
            if path.name == FILLER:
                continue
            if path.suffix == ".part" or path.name not in listed:
                bad.append(path.name)
                continue
            body = path.read_bytes()
            if not (body.startswith(PNG_HEAD) and body.endswith(PNG_END)):
                bad.append(f"{path.name} (truncated)")
        return bad

    def figures(self, final_creates: int, wall: float) -> list[tuple[str, object, str]]:
        tally, state = self.tally, self.emulator.state
        rows = self.history()
        ours = set(self.prompts)
        created = [t for t in state.tasks.values() if t.body.get("prompt") in ours]
        per_prompt = Counter(str(t.body["prompt"]) for t in created)
        creates = sum(
            n
            for key, n in state.stats()["requests"].items()
            if key.startswith("POST ") and "generations" in key
        )
        recorded = {row["task_id"] for row in rows if row["task_id"]}
        said = "\n".join(tally.text)
        uncertain_rows = [row for row in rows if row["task_id"] is None]
        flagged = {json.loads(row["request"]).get("prompt") for row in uncertain_rows}
        unknown = [t for t in created if t.task_id not in recorded and t.task_id not in said]
        lost = [t for t in unknown if t.body["prompt"] not in flagged]
        succeeded = {
            json.loads(row["request"]).get("prompt") for row in rows if row["status"] == "SUCCESS"
        }
        found_prompts = {self.prompts[n] for n in tally.found}
        orphaned = [
            row
            for row in uncertain_rows
            if json.loads(row["request"]).get("prompt") not in succeeded | found_prompts
        ]
        listed = {Path(f).name for row in rows for f in json.loads(row["files"] or "[]")}
        partial = self.partial_files(listed)
        faults = ", ".join(f"{what} {n}" for what, n in tally.faults.most_common()) or "none"
        signals = ", ".join(f"{what} {n}" for what, n in sorted(tally.signals.items())) or "none"
        exits = ", ".join(f"{code}: {n}" for code, n in sorted(tally.exits.items()))
        return [
            ("jobs", self.args.jobs, ""),
            ("jobs done", len(self.done), f"of {self.args.jobs}"),
            ("rounds", tally.rounds, f"{tally.chaos_rounds} with chaos"),
            ("create requests", creates, "seen by the server"),
            ("tasks created", len(created), ""),
            ("duplicates", sum(n - 1 for n in per_prompt.values()), "target 0"),
            ("lost", len(lost), "target 0"),
            ("ids only on server", len(unknown), "attempt reported UNCERTAIN, found by hand"),
            (
                "partial files",
                len(partial),
                "target 0" + (f": {', '.join(partial[:8])}" if partial else ""),
            ),
            ("orphaned UNCERTAIN", len(orphaned), f"of {len(uncertain_rows)} UNCERTAIN rows left"),
            ("UNCERTAIN checked", tally.checked, "jobs looked up on the server's task list"),
            ("  task found", len(tally.found), "left alone, not paid twice"),
            ("  resubmitted", tally.resubmitted, "no task: --resubmit-uncertain"),
            ("final resume creates", final_creates, "target 0"),
            ("tracebacks", len(tally.tracebacks), "target 0"),
            ("hangs", len(tally.hangs), "target 0"),
            ("signals", sum(tally.signals.values()), signals),
            ("faults fired", sum(tally.faults.values()), faults),
            ("disk fulls", tally.disk_fulls, "" if self.tmpfs else "off: no tmpfs"),
            ("exit codes", sum(tally.exits.values()), exits),
            ("wall time (s)", round(wall, 1), f"budget {self.args.seconds:g} s"),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=240)
    parser.add_argument("--seconds", type=float, default=300.0, help="time budget")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="batch files run at once")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    parser.add_argument("--signal-window", type=float, default=8.0)
    parser.add_argument("--disk-full", type=float, default=0.3, help="share of chaos rounds")
    parser.add_argument("--tmpfs-mib", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="keep what siray printed in each round here")
    args = parser.parse_args()
    started = time.monotonic()
    budget = started + args.seconds
    config = EmulatorConfig(port=0, task_seconds=args.task_seconds, seed=args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="siray-chaos-"))
    notes = []
    try:
        with Emulator(config) as emulator:
            chaos = Chaos(args, emulator, scratch)
            problem = mount_tmpfs(chaos.out, args.tmpfs_mib)
            chaos.tmpfs = problem is None
            if problem:
                notes.append(f"no tmpfs ({problem}): no disk-full chaos in this run")
            while len(chaos.done) < args.jobs and time.monotonic() < budget:
                calm_from = started + args.seconds * CHAOS_SHARE
                chaos.one_round(time.monotonic() < calm_from)
            final = chaos.final_resume() if len(chaos.done) == args.jobs else 0
            if len(chaos.done) < args.jobs:
                notes.append(f"budget spent with {args.jobs - len(chaos.done)} jobs not done")
            rows = chaos.figures(final, time.monotonic() - started)
            stuck = [n for n, times in chaos.tally.stuck.items() if n not in chaos.done]
    finally:
        if (scratch / "out").is_mount():
            subprocess.run(["umount", str(scratch / "out")], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"chaos: {args.jobs} jobs in files of {args.batch_size}, {args.parallel} at a time, "
        f"concurrency {args.concurrency}, seed {args.seed}, budget {args.seconds:g} s "
        f"({CHAOS_SHARE:.0%} chaos), tasks of {args.task_seconds:g} s"
    )
    for name, value, comment in rows:
        print(f"{name:<22}{value!s:>8}  {comment}")
    for note in notes:
        print(f"note: {note}")
    if stuck:
        print(f"jobs that kept failing: {', '.join(f'job-{n:04d}' for n in sorted(stuck)[:20])}")
    for where in chaos.tally.hangs:
        print(f"hang: {where}")
    for trace in chaos.tally.tracebacks:
        print(f"traceback in {trace}")


if __name__ == "__main__":
    main()
