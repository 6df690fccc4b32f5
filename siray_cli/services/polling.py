"""Waiting for tasks: when to look next, a bound on the wait, and a callback on every answer.

The clock and sleep are parameters, so tests and benchmarks never patch time.

The default schedule looks quickly at first and then at a pace that grows with the time the task
has taken: a task still queued after t seconds is likely to need about as long again, so short
tasks are seen finished within a fraction of a second and long ones cost few requests. The gap
between looks never exceeds 0.5 s + 40% of the time waited so far, so a task that ends earlier than
predicted is still seen soon. When the server reports progress, the pace of the progress seen so
far predicts the remaining time: siray looks again just before it, then on a short beat. The
server's Retry-After is honoured below this layer (transport.py), and a batch shares one rate
limit (RateLimiter).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from siray_cli.providers.base import Task

Clock = Callable[[], float]
Sleep = Callable[[float], None]

FIRST_LOOK = 0.6  # seconds after submission
QUEUED_SHARE = 2.0  # while not running: wait twice the time waited so far...
QUEUED_BEAT = (0.5, 4.0)  # ...within these bounds (the documented 3-5 s advice, at most)
STARTING_SHARE = 0.5  # running, no progress yet: half the time waited so far
CEILING = 3.0  # while running, never look less often than this
FLOOR = 0.5  # nor more often than this
LAG_BASE, LAG_SHARE = 0.5, 0.4  # while running, a gap is at most 0.5 s + 40% of the time waited
AIM = 0.7  # look before the predicted finish: progress is coarse and uneven
OVERDUE_BEAT = (0.5, 1.0)  # once the prediction has passed: a short beat, growing with run time
OVERDUE_SHARE = 0.08
START_ALLOWANCE = 2.0  # the task started some time before siray first saw it running


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(bounds[1], max(bounds[0], value))


class Schedule:
    """Decides the delay before the next look at one task."""

    def next_delay(self, status: Task | None, now: float) -> float:
        raise NotImplementedError


@dataclass
class FixedSchedule(Schedule):
    interval: float

    def next_delay(self, status: Task | None, now: float) -> float:
        return self.interval


@dataclass
class AdaptiveSchedule(Schedule):
    """A quick first look; while queued, a gap that doubles the time waited (0.5-4 s); once
    running, a look just before the finish that the pace of progress predicts, and a short beat
    once that moment has passed; every gap while running is at most 0.5 s + 40% of the time
    waited.

    The constants were chosen on the emulator's progress model with a simulated clock
    (benchmarks/polling.py --simulate): for task lengths of 1-120 s the mean detection lag stays
    within 0.5 s + 10% of the length, and from 30 s on with fewer requests than a fixed 2 s beat
    (about 9% more at 10 s); benchmarks/polling.py measures it for real.
    """

    started: float | None = None
    _run_seen: float | None = None  # first time the task was seen running
    _latest: tuple[float, int] | None = None  # (first time seen, progress) of the latest value

    def next_delay(self, status: Task | None, now: float) -> float:
        if self.started is None:
            self.started = now
        if status is None:
            return FIRST_LOOK
        waited = now - self.started
        if not status.running:
            return _clamp(QUEUED_SHARE * waited, QUEUED_BEAT)
        if self._run_seen is None:
            self._run_seen = now
        cap = LAG_BASE + LAG_SHARE * waited
        progress = status.progress or 0
        if progress <= 0:
            return min(cap, _clamp(STARTING_SHARE * waited, QUEUED_BEAT))
        if self._latest is None or self._latest[1] != progress:
            self._latest = (now, progress)
        seen_at, _ = self._latest
        allowance = min(START_ALLOWANCE, self._run_seen - self.started)
        run_length = (seen_at - self._run_seen + allowance) * 100 / progress
        remaining = self._run_seen + run_length - now
        if remaining > 0:
            return min(cap, _clamp(remaining * AIM, (FLOOR, CEILING)))
        return min(cap, _clamp(OVERDUE_SHARE * (now - self._run_seen), OVERDUE_BEAT))


class RateLimiter:
    """At most `rate` calls a second across threads (a batch's status polls, all together)."""

    def __init__(self, rate: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def default_schedule(poll_interval: float | None) -> Callable[[], Schedule]:
    if poll_interval is not None:
        return lambda: FixedSchedule(poll_interval)
    return AdaptiveSchedule


class WaitTimedOut(Exception):  # the polling layer's own signal, not a user error
    def __init__(self, pending: list[Task | str]) -> None:
        super().__init__("timed out")
        self.pending = pending


def wait_for_tasks(
    task_ids: Sequence[str],
    fetch: Callable[[str], Task],
    *,
    timeout: float | None,
    schedule: Callable[[], Schedule] = AdaptiveSchedule,
    on_update: Callable[[Task], None] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    first_delay: float | None = None,
) -> dict[str, Task]:
    """Poll every task until it is terminal. One request per task per look; looks are spread out.

    Raises WaitTimedOut (carrying the last status of each unfinished task) when `timeout` passes.
    """
    start = clock()
    deadline = None if timeout is None else start + timeout
    schedules = {task_id: schedule() for task_id in task_ids}
    last: dict[str, Task] = {}
    queue: list[tuple[float, int, str]] = []
    for index, task_id in enumerate(task_ids):
        delay = schedules[task_id].next_delay(None, start) if first_delay is None else first_delay
        heapq.heappush(queue, (start + delay, index, task_id))
    while queue:
        due, index, task_id = heapq.heappop(queue)
        now = clock()
        if deadline is not None and due > deadline:
            if now < deadline:
                sleep(deadline - now)
            due = deadline
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        status = fetch(task_id)
        last[task_id] = status
        if on_update is not None:
            on_update(status)
        if status.is_terminal:
            continue
        now = clock()
        if deadline is not None and now >= deadline:
            pending: list[Task | str] = [last.get(other, other) for _, _, other in sorted(queue)]
            raise WaitTimedOut([status, *pending])
        heapq.heappush(queue, (now + schedules[task_id].next_delay(status, now), index, task_id))
    return last
