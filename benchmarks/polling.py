"""Polling benchmark: how soon `siray` notices that a task finished, and how many status requests
it spends per task, for siray's adaptive schedule, a fixed 2 s beat (the official SDK's default)
and a fixed 0.5 s beat (the Higgsfield client's), side by side in one run.

Tasks of several lengths run on the local emulator (its uneven, coarse progress model); every task
is followed by the same code `siray status ID --wait` uses (the provider + wait_for_tasks), one
thread per task, all schedules at once. Lag = the moment the waiter returned minus the moment the
emulator's timeline finished the task.

    python benchmarks/polling.py [--durations 10 30 60] [--tasks 8]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from siray_cli.emulator.server import Emulator, EmulatorConfig
from siray_cli.providers import Connection, open_provider
from siray_cli.providers.base import TaskKind
from siray_cli.services.polling import AdaptiveSchedule, FixedSchedule, Schedule, wait_for_tasks

SCHEDULES: dict[str, Callable[[], Schedule]] = {
    "siray (adaptive)": AdaptiveSchedule,
    "fixed 2 s": lambda: FixedSchedule(2.0),
    "fixed 0.5 s": lambda: FixedSchedule(0.5),
}
BODY = {"model": "alibaba/z-image-turbo-t2i", "prompt": "benchmark", "size": "1024x768"}


def follow(emulator: Emulator, schedule: Callable[[], Schedule], done: dict[str, float]) -> None:
    connection = Connection(api_key=emulator.config.api_key, base_url=emulator.url)
    with open_provider("siray", connection) as provider:
        task = provider.submit(TaskKind.IMAGE, BODY)
        wait_for_tasks([task.task_id], provider.get, timeout=600, schedule=schedule)
        done[task.task_id] = time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 30.0, 60.0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks per schedule and duration")
    args = parser.parse_args()

    emulators = {
        d: Emulator(EmulatorConfig(port=0, task_seconds=d, seed=1)).start() for d in args.durations
    }
    done: dict[tuple[float, str], dict[str, float]] = {}
    threads = []
    for duration, emulator in emulators.items():
        for name, schedule in SCHEDULES.items():
            finished = done[(duration, name)] = {}
            for _ in range(args.tasks):
                thread = threading.Thread(target=follow, args=(emulator, schedule, finished))
                thread.start()
                threads.append(thread)
    started = time.monotonic()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started

    print(
        f"{'task length':>11}  {'schedule':<17} {'mean lag (s)':>12} {'max lag (s)':>11} "
        f"{'requests/task':>13}"
    )
    for duration, emulator in emulators.items():
        tasks = {t["task_id"]: t for t in emulator.state.stats()["tasks"]}
        for name in SCHEDULES:
            finished = done[(duration, name)]
            lags = [finished[i] - tasks[i]["finishes_at"] for i in finished]
            requests = [tasks[i]["status_requests"] for i in finished]
            print(
                f"{duration:>10.0f}s  {name:<17} {statistics.mean(lags):>12.2f} "
                f"{max(lags):>11.2f} {statistics.mean(requests):>13.1f}"
            )
        emulator.stop()
    print(f"({args.tasks} tasks per row, all rows at once; {wall:.0f} s wall)")


if __name__ == "__main__":
    main()
