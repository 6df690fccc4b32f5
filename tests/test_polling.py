"""The wait loop and its schedules, on a fake clock: no test here sleeps (but for a few
hundredths of a second, where threads wake each other)."""

from __future__ import annotations

import random
import statistics
import threading
import time

import pytest

from siray_cli.domain import Task, TaskKind
from siray_cli.emulator.server import build_timeline
from siray_cli.providers.siray.parse import state_of
from siray_cli.services.polling import (
    AdaptiveSchedule,
    FixedSchedule,
    Peers,
    WaitTimedOut,
    allowance,
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


def simulate(schedule, seconds: float, tasks: int = 200, progress: bool = True):
    """Detection lags and requests per task on the emulator's own progress model (as
    benchmarks/polling.py --simulate, with a 20 ms request)."""
    lags, requests = [], []
    for seed in range(tasks):
        timeline = build_timeline(random.Random(seed), seconds, hold=False, fail_early=False)
        clock = FakeClock()
        count = 0

        def fetch(task_id: str, timeline=timeline, clock=clock) -> Task:
            nonlocal count
            count += 1
            clock.now += 0.02
            event = [e for e in timeline if e.offset <= clock.now][-1]
            shown = event.progress if progress else None
            return Task(task_id, TaskKind.IMAGE, event.status, state_of(event.status), shown)

        wait_for_tasks(
            ["t"], fetch, timeout=None, schedule=schedule, clock=clock, sleep=clock.sleep
        )
        lags.append(clock.now - timeline[-1].offset)
        requests.append(count)
    return sorted(lags), statistics.mean(requests)


def p95(lags: list[float]) -> float:
    return lags[int(0.95 * len(lags))]


@pytest.mark.parametrize("progress", [True, False], ids=["progress", "no progress"])
@pytest.mark.parametrize("seconds", [1.0, 3.0, 10.0, 30.0, 120.0])
def test_adaptive_schedule_sees_a_task_finished_within_half_a_second_and_10_percent(
    seconds, progress
):
    lags, _ = simulate(AdaptiveSchedule, seconds, progress=progress)
    budget = 0.5 + 0.1 * seconds
    assert p95(lags) <= budget
    # a misleading progress report costs at most a few allowances, never a runaway gap
    assert lags[-1] <= 2 * budget


@pytest.mark.parametrize("seconds", [10.0, 30.0, 90.0])
def test_adaptive_schedule_against_a_fixed_2s_beat(seconds):
    lags, requests = simulate(AdaptiveSchedule, seconds)
    fixed_lags, fixed_requests = simulate(lambda: FixedSchedule(2.0), seconds)
    assert p95(lags) <= p95(fixed_lags) or p95(lags) <= 0.5 + 0.1 * seconds
    # at 10 s the promise costs about 1.3 times the beat's requests (the beat misses it); from
    # about 20 s on fewer, and ever fewer as tasks get longer
    assert requests <= fixed_requests * {10.0: 1.4, 30.0: 0.85, 90.0: 0.5}[seconds]


def test_first_look_is_quick_and_the_queued_beat_grows_within_the_documented_range():
    schedule = AdaptiveSchedule()
    assert schedule.next_delay(None, 0.0) == 0.5
    queued = Task("t", TaskKind.IMAGE, "QUEUED", state_of("QUEUED"), 0)
    delays = [schedule.next_delay(queued, t) for t in (0.5, 1.0, 5.0, 30.0, 300.0)]
    assert delays == sorted(delays) and delays[0] < 1.5
    assert all(3.0 <= d <= 5.0 for d in delays[2:])


def running(progress: int | None) -> Task:
    return Task("t", TaskKind.IMAGE, "IN_PROGRESS", state_of("IN_PROGRESS"), progress)


def test_a_task_just_seen_running_is_given_as_long_again_as_it_has_run():
    schedule = AdaptiveSchedule()
    schedule.next_delay(None, 0.0)
    schedule.next_delay(Task("t", TaskKind.IMAGE, "QUEUED", state_of("QUEUED"), 0), 2.0)
    # it started between 2 s and 4 s (taken as 3 s): at least 1 s more, then the allowance
    delay = schedule.next_delay(running(0), 4.0)
    assert delay == pytest.approx(1.0 + allowance(5.0))
    # no news at the next look: the estimate has passed, so a look every allowance
    assert schedule.next_delay(running(0), 4.0 + delay) == pytest.approx(allowance(4.0 + delay))


def test_progress_narrows_the_estimate_but_assumes_the_rest_may_go_much_faster():
    schedule = AdaptiveSchedule()
    schedule.next_delay(None, 0.0)
    schedule.next_delay(running(0), 10.0)  # started between 0 and 10 s: taken as 5 s
    # 20% reached at 13 s (the middle of the last gap), after 8 s of run: at that pace 32 s are
    # left, but the rest may go 8 times faster: 4 s at least, so it may end at 17 s
    delay = schedule.next_delay(running(20), 16.0)
    assert delay == pytest.approx(1.0 + allowance(17.0))
    # nearly done: a look within the allowance
    assert schedule.next_delay(running(95), 24.0) == pytest.approx(allowance(24.0), abs=0.1)


def test_a_misleading_progress_report_stretches_a_gap_by_a_few_allowances_at_most():
    schedule = AdaptiveSchedule()
    schedule.next_delay(None, 0.0)
    schedule.next_delay(running(0), 1.0)
    schedule.next_delay(running(5), 60.0)
    # 10% after a minute of run: even at 8 times the pace, a minute more; the gap is capped
    delay = schedule.next_delay(running(10), 61.0)
    assert delay == pytest.approx(2.5 * allowance(61.0))


def test_without_progress_a_running_task_is_looked_at_every_allowance():
    schedule = AdaptiveSchedule()
    schedule.next_delay(None, 0.0)
    assert schedule.next_delay(running(None), 3.0) == pytest.approx(allowance(3.0))
    assert schedule.next_delay(running(None), 40.0) == pytest.approx(0.46 + 0.095 * 40.0)


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


def test_a_batch_task_is_looked_at_as_it_enters_its_peers_window_and_closely_within_it():
    peers = Peers()
    clock = FakeClock()
    done = Task("a", TaskKind.IMAGE, "SUCCESS", state_of("SUCCESS"), 100)
    failed = Task("f", TaskKind.IMAGE, "FAILURE", state_of("FAILURE"), 0)
    # a task that failed says nothing of how long the others take
    wait_for_tasks(
        ["f"],
        lambda task_id: failed,
        timeout=None,
        schedule=lambda: AdaptiveSchedule(peers=peers),
        clock=clock,
        sleep=clock.sleep,
    )
    assert peers.window() is None
    clock.now = 10.0
    wait_for_tasks(
        ["a"],
        lambda task_id: done,
        timeout=None,
        schedule=lambda: AdaptiveSchedule(peers=peers),
        clock=clock,
        sleep=clock.sleep,
    )
    # found done at the first look (0.5 s): it ended in (0, 0.5], and one sample is a rough
    # guess, so the window closes a quarter past it
    assert peers.window() == pytest.approx((0.25, 0.625))
    other = AdaptiveSchedule(started=20.0, peers=peers)
    assert other.next_delay(None, 20.0) == pytest.approx(0.25)  # straight to the window
    assert other.peer_look() == pytest.approx(20.25)
    assert other.next_delay(running(40), 20.25) == pytest.approx(0.1)  # closely within it
    assert other.peer_look() == pytest.approx(20.35)
    other.next_delay(running(60), 20.7)  # past the window: the task's own schedule again
    assert other.peer_look() is None
    assert AdaptiveSchedule(started=20.0).peer_look() is None  # no peers, no such look


def test_the_peers_window_opens_at_the_5th_percentile_and_earlier_when_tasks_end_before_it():
    peers = Peers()
    for since, age in [(0.5, 9.0), (0.5, 9.5), (5.0, 11.0)]:  # the first tasks: sparse looks
        peers.succeeded(age, since)
    opens, closes = peers.window()
    assert opens < 5.0 and closes >= 10.5
    for n in range(64):  # then close looks: the tasks end between 9.6 and 10.4 s
        end = 9.6 + 0.8 * n / 63
        peers.succeeded(end + 0.05, end - 0.05)
    opens, closes = peers.window()
    assert 9.6 <= opens <= 9.7 and 10.4 <= closes <= 10.5  # the coarse first ones forgotten
    # tasks found done at the window's first look, unfinished before it: they may have ended
    # any time before it opened, so it opens earlier (their intervals' middles would say later)
    for _ in range(8):
        peers.succeeded(opens + 0.05, 5.0)
    earlier, _ = peers.window()
    assert earlier < 0.8 * opens
    # and tasks ending within the window again bring it back up
    for n in range(64):
        end = 9.6 + 0.8 * n / 63
        peers.succeeded(end + 0.05, end - 0.05)
    assert 9.6 <= peers.window()[0] <= 9.7


def test_before_its_peers_window_a_task_gets_at_most_two_looks():
    peers = Peers()
    for n in range(10):
        peers.succeeded(60.0 + n * 0.1, 59.9 + n * 0.1)
    opens, _ = peers.window()
    schedule = AdaptiveSchedule(peers=peers)
    now, looks = 0.0, []
    while now < opens:
        now += schedule.next_delay(running(10) if looks else None, now)
        looks.append(now)
    assert len(looks) == 2 and looks[-1] == pytest.approx(opens)


@pytest.mark.parametrize("progress", [True, False], ids=["progress", "no progress"])
@pytest.mark.parametrize("seconds", [1.0, 10.0, 60.0])
def test_a_batch_sees_its_tasks_done_sooner_with_its_peers_window(seconds, progress):
    """Tasks of one kind, 15 % apart in length (the emulator's spread): once a few have ended,
    each is seen done within about a twentieth of its length on average, sooner than alone: short
    tasks in half the time for about as many requests, long ones for far fewer requests."""
    peers = Peers()
    lags, requests = simulate(
        lambda: AdaptiveSchedule(peers=peers), seconds, tasks=300, progress=progress
    )
    alone, alone_requests = simulate(AdaptiveSchedule, seconds, tasks=300, progress=progress)
    lag, alone_lag = statistics.mean(lags), statistics.mean(alone)
    assert lag <= 0.06 * seconds + 0.05
    assert lag < alone_lag and requests <= alone_requests + 1.0
    # short tasks are seen done far sooner; long ones for far fewer requests
    assert lag <= 0.7 * alone_lag or requests <= 0.7 * alone_requests


def test_a_sleeping_batch_waiter_wakes_when_a_peer_is_seen_done_and_on_stop():
    peers, stop = Peers(), threading.Event()
    schedule = AdaptiveSchedule(started=time.monotonic(), peers=peers)
    schedule.next_delay(None, schedule.started)
    threading.Timer(0.02, peers.succeeded, args=(0.1,)).start()
    began = time.monotonic()
    peers.nap(30.0, schedule.peer_look, stop)
    assert 0.04 <= time.monotonic() - began < 1.0
    threading.Timer(0.02, stop.set).start()
    began = time.monotonic()
    peers.nap(30.0, lambda: None, stop)
    assert time.monotonic() - began < 0.5
