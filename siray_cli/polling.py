"""Waiting for tasks: when to look next, a bound on the wait, and a callback on every answer.

The clock and sleep are parameters, so tests and benchmarks never patch time.

The default schedule follows the documentation's advice (poll every 3-5 s) after a quick first
look, and polls close to the expected finish when the server reports progress: the pace of the
progress seen so far predicts the remaining time, and siray looks again just after it, then on a
short beat until the task ends.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from siray_cli.api.models import TaskStatus

Clock = Callable[[], float]
Sleep = Callable[[float], None]

FIRST_LOOK = 1.0  # seconds after submission
STEADY = 4.0  # the documented 3-5 s beat while nothing predicts the finish
CEILING = 5.0
NEAR_BEAT = 1.0  # once the predicted finish is close or past
FLOOR = 0.5


class Schedule:
    """Decides the delay before the next look at one task."""

    def next_delay(self, status: TaskStatus | None, now: float) -> float:
        raise NotImplementedError


@dataclass
class FixedSchedule(Schedule):
    interval: float

    def next_delay(self, status: TaskStatus | None, now: float) -> float:
        return self.interval


@dataclass
class AdaptiveSchedule(Schedule):
    """A quick first look, 3-5 s while queued, and a look at the finish that progress predicts."""

    started: float | None = None  # when the waiting began
    _run_seen: float | None = None  # first time the task was seen running
    _points: list[tuple[float, int]] = field(default_factory=list)  # (time, progress) changes

    def next_delay(self, status: TaskStatus | None, now: float) -> float:
        if self.started is None:
            self.started = now
        if status is None:
            return FIRST_LOOK
        running = status.status.upper() == "IN_PROGRESS"
        if not running:
            # queued or unknown: the task cannot end before it has run, so a steady beat is enough
            elapsed = now - self.started
            return min(STEADY, max(FIRST_LOOK * 2, elapsed / 2))
        if self._run_seen is None:
            self._run_seen = now
        if status.progress is not None and (
            not self._points or status.progress != self._points[-1][1]
        ):
            self._points.append((now, status.progress))
        remaining = self._predict_remaining(now)
        if remaining is None:
            return min(STEADY, max(FIRST_LOOK, (now - self._run_seen) / 2 or FIRST_LOOK))
        if remaining <= NEAR_BEAT:
            return NEAR_BEAT if remaining < 0 else max(FLOOR, remaining)
        # look just after the predicted finish, or on the documented beat if it is far away
        return min(CEILING, remaining)

    def _predict_remaining(self, now: float) -> float | None:
        """Seconds left by the pace of progress so far (None until there is a pace)."""
        if not self._points or self._run_seen is None:
            return None
        last_time, last_progress = self._points[-1]
        if last_progress >= 100:
            return 0.0
        first_time, first_progress = self._points[0]
        if len(self._points) >= 2 and last_progress > first_progress:
            rate = (last_progress - first_progress) / max(last_time - first_time, 1e-3)
        elif last_progress > 0:
            rate = last_progress / max(last_time - self._run_seen + FIRST_LOOK, 1e-3)
        else:
            return None
        finish = last_time + (100 - last_progress) / rate
        return finish - now


def default_schedule(poll_interval: float | None) -> Callable[[], Schedule]:
    if poll_interval is not None:
        return lambda: FixedSchedule(poll_interval)
    return AdaptiveSchedule


class WaitTimedOut(Exception):  # the polling layer's own signal, not a user error
    def __init__(self, pending: list[TaskStatus | str]) -> None:
        super().__init__("timed out")
        self.pending = pending


def wait_for_tasks(
    task_ids: Sequence[str],
    fetch: Callable[[str], TaskStatus],
    *,
    timeout: float | None,
    schedule: Callable[[], Schedule] = AdaptiveSchedule,
    on_update: Callable[[TaskStatus], None] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    first_delay: float | None = None,
) -> dict[str, TaskStatus]:
    """Poll every task until it is terminal. One request per task per look; looks are spread out.

    Raises WaitTimedOut (carrying the last status of each unfinished task) when `timeout` passes.
    """
    start = clock()
    deadline = None if timeout is None else start + timeout
    schedules = {task_id: schedule() for task_id in task_ids}
    last: dict[str, TaskStatus] = {}
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
            pending: list[TaskStatus | str] = [
                last.get(other, other) for _, _, other in sorted(queue)
            ]
            raise WaitTimedOut([status, *pending])
        heapq.heappush(queue, (now + schedules[task_id].next_delay(status, now), index, task_id))
    return last
