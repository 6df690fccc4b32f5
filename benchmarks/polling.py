"""Polling benchmark: how soon `siray` notices that a task finished, and how many status requests
it spends per task, for siray's adaptive schedule, a fixed 2 s beat (the official SDK's default)
and a fixed 0.5 s beat (the Higgsfield client's), side by side in one run.

Tasks of several lengths run on the local emulator (its uneven, coarse progress model); every task
is followed by the same code `siray status ID --wait` uses (the provider + wait_for_tasks), one
thread per task, all schedules at once. Lag = the moment the waiter returned minus the moment the
emulator's timeline finished the task. The goal: every task seen finished within 0.5 s + 10% of
its length (each row says whether its p95 and its worst lag are), and from 10 s on no more
requests per task than the fixed 2 s beat (the "vs 2s" column).

    python benchmarks/polling.py [--durations 1 3 10 30 120] [--tasks 8] [--baseline DIR]
    python benchmarks/polling.py --simulate [--tasks 2000]   # the same model on a simulated clock
    python benchmarks/polling.py --provider higgsfield [--simulate]
    python benchmarks/polling.py --spread [SECONDS] [--tasks 20000]  # what progress tells

--spread prints, for each progress value the emulator reports, the spread of the time still to
run as a multiple of the time run so far (5th, 25th, 50th, 75th, 95th percentiles). It is why the
goal's request count at 10 s is out of reach: at 50% the 5-95% range spans a factor of about 19,
at 95% a factor of about 80, so progress cannot place the end within the 1.5 s lag allowed at
10 s, and the looks must cover the range at close to the allowance: a fixed 1.5 s beat (the
slowest that meets the lag at 10 s) costs 7.0 requests there, the fixed 2 s beat 5.4 while
missing the lag. Without progress (Higgsfield) no schedule can promise the lag to every length
from 1 s and stay under the beat at 10 s: a task that ends just after a look at t is seen only at
the next look, so the looks must satisfy t' <= t + 0.5 + 0.1 t, and from the submit that is
about 12 looks by 10 s (t = 0.5, 1.05, 1.66, ... 9.27, 10.7), against 5 for the 2 s beat.

--provider higgsfield follows Higgsfield requests (no progress percentage: only the state) and
sets siray's schedule against the fixed 2 s beat, the official client's fixed 0.5 s beat and the
documentation's advice (start at 2 s, grow by 1.5 up to 10 s, with jitter).

--baseline DIR adds a row for the AdaptiveSchedule of another checkout (DIR/siray_cli/services/
polling.py, e.g. a worktree of the branch's starting commit): before and after in one run.
--simulate adds the row "siray, in a batch": the same tasks followed one after another with a
shared Peers, as the tasks of one model in `run --batch` are (its window of lengths).
--simulate replays the emulator's own timelines (emulator/tasks.py build_timeline) against a fake
clock with a 20 ms request latency: hundreds of tasks per row in a second, and the same numbers
the real run gives within noise; the real run stays the reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siray_cli.domain import Task, TaskKind
from siray_cli.emulator.server import Emulator, EmulatorConfig
from siray_cli.emulator.tasks import build_timeline
from siray_cli.providers import Connection, open_provider
from siray_cli.providers.siray.parse import state_of
from siray_cli.services.polling import (
    AdaptiveSchedule,
    FixedSchedule,
    Peers,
    Schedule,
    wait_for_tasks,
)

SCHEDULES: dict[str, Callable[[], Schedule]] = {
    "siray (adaptive)": AdaptiveSchedule,
    "fixed 2 s": lambda: FixedSchedule(2.0),
    "fixed 1.5 s": lambda: FixedSchedule(1.5),
    "fixed 0.5 s": lambda: FixedSchedule(0.5),
}
BODY = {"model": "alibaba/z-image-turbo-t2i", "prompt": "benchmark", "size": "1024x768"}
HIGGSFIELD_BODY = {"model": "bytedance/seedream/v4/text-to-image", "prompt": "benchmark"}


class DocsAdvice(Schedule):
    """Higgsfield's documented advice: 2 s, then x1.5 each look up to 10 s, with jitter."""

    def __init__(self) -> None:
        self._next = 2.0
        self._random = random.Random()

    def next_delay(self, status: Task | None, now: float) -> float:
        delay = self._next * self._random.uniform(0.9, 1.1)
        self._next = min(10.0, self._next * 1.5)
        return delay


HIGGSFIELD_SCHEDULES: dict[str, Callable[[], Schedule]] = {
    "siray (adaptive)": AdaptiveSchedule,
    "fixed 2 s": lambda: FixedSchedule(2.0),
    "fixed 1.5 s": lambda: FixedSchedule(1.5),
    "docs 2 s -> 10 s": DocsAdvice,
    "fixed 0.5 s": lambda: FixedSchedule(0.5),
}


class _Baseline(Schedule):
    """Another checkout's schedule, behind this checkout's Schedule interface."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def next_delay(self, status: Task | None, now: float) -> float:
        delay: float = self._inner.next_delay(status, now)
        return delay


def baseline_schedule(checkout: Path) -> Callable[[], Schedule]:
    path = checkout / "siray_cli" / "services" / "polling.py"
    spec = importlib.util.spec_from_file_location("baseline_polling", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return lambda: _Baseline(module.AdaptiveSchedule())


def follow(
    emulator: Emulator, schedule: Callable[[], Schedule], done: dict[str, float], provider: str
) -> None:
    key = emulator.config.api_key if provider == "siray" else emulator.config.higgsfield_key
    connection = Connection(api_key=key, base_url=emulator.url)
    body = BODY if provider == "siray" else HIGGSFIELD_BODY
    with open_provider(provider, connection) as provider_:
        task = provider_.submit(TaskKind.IMAGE, body)
        wait_for_tasks([task.task_id], provider_.get, timeout=600, schedule=schedule)
        done[task.task_id] = time.time()


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def simulate(
    schedule: Callable[[], Schedule],
    seconds: float,
    tasks: int,
    latency: float = 0.02,
    progress: bool = True,
) -> tuple[list[float], list[int]]:
    lags, requests = [], []
    for seed in range(tasks):
        timeline = build_timeline(random.Random(seed), seconds, hold=False, fail_early=False)
        clock = _FakeClock()
        count = 0

        def fetch(task_id: str, timeline=timeline, clock=clock) -> Task:  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            clock.now += latency
            event = [e for e in timeline if e.offset <= clock.now][-1]
            shown = event.progress if progress else None
            return Task(task_id, TaskKind.IMAGE, event.status, state_of(event.status), shown)

        wait_for_tasks(
            ["t"], fetch, timeout=None, schedule=schedule, clock=clock, sleep=clock.sleep
        )
        lags.append(clock.now - timeline[-1].offset)
        requests.append(count)
    return lags, requests


def spread(seconds: float, tasks: int) -> None:
    """For each progress value: percentiles of (time left) / (time run so far), at a moment drawn
    at random from each emulator timeline's run."""
    draw = random.Random(5)
    ratios: dict[int, list[float]] = {}
    for seed in range(tasks):
        timeline = build_timeline(random.Random(seed), seconds, hold=False, fail_early=False)
        start = next(e.offset for e in timeline if e.status == "IN_PROGRESS")
        end = timeline[-1].offset
        moment = draw.uniform(start, end)
        shown = [e.progress for e in timeline if e.offset <= moment][-1] or 0
        ratios.setdefault(shown, []).append((end - moment) / (moment - start))
    shares = (0.05, 0.25, 0.5, 0.75, 0.95)
    print(
        f"{'progress':>8} {'seen':>6} "
        + " ".join(f"{f'p{share * 100:.0f}':>7}" for share in shares)
        + f" {'p95/p5':>7}"
    )
    for shown, values in sorted(ratios.items()):
        cuts = [percentile(values, share) for share in shares]
        print(
            f"{shown:>7}% {len(values):>6} "
            + " ".join(f"{cut:>7.2f}" for cut in cuts)
            + f" {cuts[-1] / cuts[0]:>7.0f}"
        )
    print(
        f"({tasks} emulator timelines of {seconds:.0f} s; time left over time run so far, at a "
        "random moment of the run, by the progress shown then)"
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def row(
    duration: float, name: str, lags: list[float], requests: list[int], beat: float | None
) -> str:
    """One schedule at one task length: lag mean, median, p95 and max, whether p95 and max are
    within the budget, requests per task, and their ratio to the fixed 2 s beat's."""
    budget = 0.5 + 0.1 * duration
    p95, worst = percentile(lags, 0.95), max(lags)
    per_task = statistics.mean(requests)
    ratio = f"{per_task / beat:>6.2f}" if beat else f"{'-':>6}"
    return (
        f"{duration:>6.0f}s  {name:<17} {statistics.mean(lags):>6.2f} "
        f"{statistics.median(lags):>6.2f} {p95:>6.2f} {worst:>6.2f} {budget:>7.2f} "
        f"{'yes' if p95 <= budget else 'NO':>4} {'yes' if worst <= budget else 'NO':>4} "
        f"{per_task:>8.1f} {ratio}"
    )


HEADER = (
    f"{'length':>7}  {'schedule':<17} {'mean':>6} {'median':>6} {'p95':>6} {'max':>6} "
    f"{'budget':>7} {'p95?':>4} {'max?':>4} {'req/task':>8} {'vs 2s':>6}"
)
NOTE = (
    "lag in seconds from the emulator finishing a task to the waiter returning; budget 0.5 s + "
    "10% of the length;\np95? / max?: whether the p95 / the worst lag is within it; vs 2s: "
    "requests per task over the fixed 2 s beat's"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0, 120.0])
    parser.add_argument("--tasks", type=int, default=None, help="tasks per schedule and duration")
    parser.add_argument("--baseline", type=Path, help="a checkout whose AdaptiveSchedule to add")
    parser.add_argument("--simulate", action="store_true", help="a simulated clock, no server")
    parser.add_argument("--provider", choices=("siray", "higgsfield"), default="siray")
    parser.add_argument(
        "--spread",
        type=float,
        nargs="?",
        const=10.0,
        metavar="SECONDS",
        help="what progress says of the time left, for tasks of SECONDS (10)",
    )
    args = parser.parse_args()
    if args.spread:
        spread(args.spread, args.tasks or 20000)
        return
    schedules = dict(SCHEDULES if args.provider == "siray" else HIGGSFIELD_SCHEDULES)
    if args.baseline:
        schedules = {"before (adaptive)": baseline_schedule(args.baseline), **schedules}

    if args.simulate:
        tasks = args.tasks or 2000
        print(HEADER)
        progress = args.provider == "siray"
        for duration in args.durations:
            peers = Peers()  # the tasks of one batch on one model, one after another
            batch = {"siray, in a batch": lambda peers=peers: AdaptiveSchedule(peers=peers)}
            results = {
                name: simulate(schedule, duration, tasks, progress=progress)
                for name, schedule in {**schedules, **batch}.items()
            }
            beat = statistics.mean(results["fixed 2 s"][1])
            for name, (lags, requests) in results.items():
                print(row(duration, name, lags, requests, beat))
        print(f"({args.provider}: {tasks} simulated tasks per row)\n{NOTE}")
        return

    tasks = args.tasks or 8
    emulators = {
        d: Emulator(EmulatorConfig(port=0, task_seconds=d, seed=1)).start() for d in args.durations
    }
    done: dict[tuple[float, str], dict[str, float]] = {}
    threads = []
    for duration, emulator in emulators.items():
        for name, schedule in schedules.items():
            finished = done[(duration, name)] = {}
            for _ in range(tasks):
                thread = threading.Thread(
                    target=follow, args=(emulator, schedule, finished, args.provider)
                )
                thread.start()
                threads.append(thread)
    started = time.monotonic()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started

    print(HEADER)
    for duration, emulator in emulators.items():
        stats = {t["task_id"]: t for t in emulator.state.stats()["tasks"]}
        measured = {}
        for name in schedules:
            finished = done[(duration, name)]
            lags = [finished[i] - stats[i]["finishes_at"] for i in finished]
            measured[name] = (lags, [stats[i]["status_requests"] for i in finished])
        beat = statistics.mean(measured["fixed 2 s"][1])
        for name, (lags, requests) in measured.items():
            print(row(duration, name, lags, requests, beat))
        emulator.stop()
    print(f"({args.provider}: {tasks} tasks per row, all rows at once; {wall:.0f} s wall)\n{NOTE}")


if __name__ == "__main__":
    main()
