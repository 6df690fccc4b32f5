"""The wait loop and its schedules, on a fake clock: no test here sleeps."""

from __future__ import annotations

import random
import statistics

import pytest

from siray_cli.emulator.server import build_timeline
from siray_cli.providers.base import Task, TaskKind
from siray_cli.providers.siray.parse import state_of
from siray_cli.services.polling import (
    AdaptiveSchedule,
    FixedSchedule,
    WaitTimedOut,
    wait_for_tasks,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def simulated_task(clock: FakeClock, duration: float, steps: list[tuple[float, int]]):
    """A task that runs from 20% of its duration and reports coarse progress."""
    polls: list[float] = []

    def fetch(task_id: str) -> Task:
        polls.append(clock.now)
        t = clock.now
        if t >= duration:
            return Task(task_id, TaskKind.IMAGE, "SUCCESS", state_of("SUCCESS"), 100)
        if t < duration * 0.2:
            return Task(task_id, TaskKind.IMAGE, "QUEUED", state_of("QUEUED"), 0)
        progress = max([p for at, p in steps if at <= t], default=0)
        return Task(task_id, TaskKind.IMAGE, "IN_PROGRESS", state_of("IN_PROGRESS"), progress)

    return fetch, polls


def simulate(schedule, seconds: float, tasks: int = 150) -> tuple[float, float]:
    """Mean detection lag and requests per task on the emulator's own progress model."""
    lags, requests = [], []
    for seed in range(tasks):
        timeline = build_timeline(random.Random(seed), seconds, hold=False, fail_early=False)
        clock = FakeClock()
        count = 0

        def fetch(task_id: str, timeline=timeline, clock=clock) -> Task:
            nonlocal count
            count += 1
            event = [e for e in timeline if e.offset <= clock.now][-1]
            return Task(
                task_id, TaskKind.IMAGE, event.status, state_of(event.status), event.progress
            )

        wait_for_tasks(
            ["t"], fetch, timeout=None, schedule=schedule, clock=clock, sleep=clock.sleep
        )
        lags.append(clock.now - timeline[-1].offset)
        requests.append(count)
    return statistics.mean(lags), statistics.mean(requests)


@pytest.mark.parametrize("seconds", [1.0, 3.0, 10.0, 30.0, 120.0])
def test_adaptive_schedule_sees_a_task_finished_within_half_a_second_and_10_percent(seconds):
    lag, _ = simulate(AdaptiveSchedule, seconds)
    assert lag <= 0.5 + 0.1 * seconds


@pytest.mark.parametrize("seconds", [10.0, 30.0, 90.0])
def test_adaptive_schedule_beats_a_fixed_2s_beat(seconds):
    lag, requests = simulate(AdaptiveSchedule, seconds)
    fixed_lag, fixed_requests = simulate(lambda: FixedSchedule(2.0), seconds)
    assert lag <= fixed_lag
    # the quick looks that catch a 1 s task cost a 10 s task about half a request more
    assert requests <= fixed_requests * (1.1 if seconds <= 10 else 0.95)


def test_first_look_is_quick_and_the_queued_beat_grows_within_the_documented_range():
    schedule = AdaptiveSchedule()
    assert schedule.next_delay(None, 0.0) == 0.6
    queued = Task("t", TaskKind.IMAGE, "QUEUED", state_of("QUEUED"), 0)
    delays = [schedule.next_delay(queued, t) for t in (0.6, 1.0, 5.0, 30.0, 300.0)]
    assert delays == sorted(delays) and delays[0] < 1.5
    assert all(3.0 <= d <= 4.0 for d in delays[2:])


def test_fixed_schedule():
    clock = FakeClock()
    fetch, polls = simulated_task(clock, 10.0, [(5, 50)])
    wait_for_tasks(
        ["t"],
        fetch,
        timeout=None,
        schedule=lambda: FixedSchedule(2.0),
        clock=clock,
        sleep=clock.sleep,
    )
    assert polls == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_timeout_raises_with_the_last_status():
    clock = FakeClock()
    fetch, polls = simulated_task(clock, 1000.0, [])
    with pytest.raises(WaitTimedOut) as caught:
        wait_for_tasks(["t"], fetch, timeout=12.0, clock=clock, sleep=clock.sleep)
    (last,) = caught.value.pending
    assert isinstance(last, Task) and last.status == "QUEUED"
    assert clock.now == pytest.approx(12.0)
    assert polls[-1] == pytest.approx(12.0)  # a last look at the deadline


def test_several_tasks_one_request_each_per_look():
    clock = FakeClock()
    fetch_a, polls_a = simulated_task(clock, 6.0, [(3, 50)])
    fetch_b, polls_b = simulated_task(clock, 12.0, [(5, 50)])
    fetchers = {"a": fetch_a, "b": fetch_b}
    seen: list[str] = []

    def fetch(task_id: str) -> Task:
        seen.append(task_id)
        return fetchers[task_id](task_id)

    final = wait_for_tasks(["a", "b"], fetch, timeout=None, clock=clock, sleep=clock.sleep)
    assert all(s.succeeded for s in final.values())
    assert seen.count("a") == len(polls_a) and seen.count("b") == len(polls_b)
    assert polls_a[-1] < polls_b[-1]
