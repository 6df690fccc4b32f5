"""Waiting for tasks: when to look next, a bound on the wait, and a callback on every answer.

The clock and sleep are parameters, so tests and benchmarks never patch time.

The default schedule (AdaptiveSchedule) aims at one promise: a task of length T is seen finished
within about 0.5 s + 10% of T, with as few requests as that allows. A quick first look catches
one-second tasks; while a task waits in the queue, the gap grows with the wait (within the
documented 3-5 s advice); once it runs, siray estimates the earliest moment it could plausibly end
and looks within the lag allowance of that moment. Progress narrows that estimate, but reported
progress is coarse and uneven, so siray assumes the rest may go much faster than the pace so far,
and a wrong estimate can never stretch a gap past a few allowances. The server's Retry-After is
honoured below this layer, where one client's requests share an adaptive rate (transport/
pacing.py); a batch's tasks on one model tell each other when they end (Peers), so that once a
few have, the others are looked at closely where tasks of that kind end, and rarely before. A
fixed `poll_interval` replaces all of this (FixedSchedule).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from siray_cli.domain import Task

Clock = Callable[[], float]
Sleep = Callable[[float], None]

FIRST_LOOK = 0.5  # seconds after submission
QUEUED_SHARE = 2.5  # while not running: 2.5 times the time waited so far...
QUEUED_BEAT = (0.5, 5.0)  # ...within these bounds (the documented 3-5 s advice, at most)
# While running, a look comes within ALLOWANCE of the earliest moment the task could plausibly
# have ended: 0.46 s + 9.5% of the time since submission (the promise is 0.5 s + 10% of the
# length; the margin covers the request's own time).
ALLOWANCE = (0.46, 0.095)
JUST_STARTED = 1.0  # seen running, no progress yet: at least as long again as it has run
SPEED_UP = 8.0  # the rest of the work may go up to 8 times faster than the progress so far...
MOST_LEFT = 1.25  # ...and no more than 1.25 times the run so far is ever assumed to be left
STRETCH = 2.5  # however far off the estimate, a gap is at most 2.5 allowances
PEER_CHECK = 0.25  # seconds: how soon a batch's sleeping waiter notices a stop
RECENT = 64  # the peers' latest lengths the window is read from
WINDOW_SAMPLES = 3  # peers ended before their window is read from percentiles; with fewer...
FEW_SAMPLES = 1.25  # ...it closes a quarter past the latest end
EARLIER = 0.05  # a window opening too late moves earlier by this share of itself
WINDOW_SHARE = 0.1  # within the window, a look every tenth of the age it opens at...
WINDOW_GAP = 0.1  # ...and no closer than this many seconds apart
BEFORE_WINDOW = 0.5  # before the window, a gap is at most this share of the age it opens at,
BEFORE_WINDOW_GAP = 2.0  # or this many seconds


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(bounds[1], max(bounds[0], value))


def allowance(waited: float) -> float:
    """The lag allowed for a task that ends `waited` seconds after its submission."""
    return ALLOWANCE[0] + ALLOWANCE[1] * waited


class Schedule:
    """Decides the delay before the next look at one task."""

    def next_delay(self, status: Task | None, now: float) -> float:
        raise NotImplementedError

    def ended(self, status: Task, now: float) -> None:
        """The look at `now` found the task ended."""


class Peers:
    """What the tasks of one batch on one model tell each other: how long they took, from the
    submit to the end, as the window of ages in which tasks of this kind end.

    Each task found succeeded gives an interval: the age at the last look that found it
    unfinished (`since`) and the age at the look that found it done. The window opens at the 5th
    percentile of the latest RECENT lengths (each the middle of its interval) and closes at the
    98th percentile of their ends (with fewer than WINDOW_SAMPLES, a quarter past the latest).
    A task whose look before the window found it unfinished and whose first look in it found it
    done may have ended any time before the window opened: its length is known only to lie below
    the opening (its interval's middle would say later, and the window would drift later and
    later). So it counts as shorter than every other; when more than one in twenty are such, the
    5th percentile is somewhere below the opening, which moves earlier by EARLIER of itself. A
    sleeping task is woken whenever a peer ends (Peers.nap): the window may have moved."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # (length, end) of the latest tasks; length None: before the window opened
        self._seen: deque[tuple[float | None, float]] = deque(maxlen=RECENT)
        self._window: tuple[float, float] | None = None

    def succeeded(self, age: float, since: float = 0.0) -> None:
        """A peer was found succeeded `age` seconds after its submit, having been seen
        unfinished `since` seconds after it (0: never)."""
        since = min(since, age)
        with self._changed:
            before = self._window is not None and since < self._window[0] <= age
            self._seen.append((None if before else (since + age) / 2, age))
            ends = sorted(end for _, end in self._seen)
            lengths = sorted(length for length, _ in self._seen if length is not None)
            if len(ends) < WINDOW_SAMPLES:
                opens = lengths[0] if lengths else self._opening()
                self._window = (opens, ends[-1] * FEW_SAMPLES)
            else:
                # the tasks that ended before the window opened rank below every length
                place = 0.05 * (len(self._seen) - 1) - (len(self._seen) - len(lengths))
                if place >= 0:
                    opens = _at(lengths, place)
                else:  # the 5th percentile is below the opening, but where?
                    opens = self._opening() * (1 - EARLIER if before else 1)
                self._window = (opens, max(opens, _quantile(ends, 0.98)))
            self._changed.notify_all()

    def _opening(self) -> float:
        assert self._window is not None  # a task ended before the window only if there is one
        return self._window[0]

    def window(self) -> tuple[float, float] | None:
        """The ages between which tasks of this kind end; None before any has."""
        return self._window

    @property
    def trusted(self) -> bool:
        """Whether enough peers have ended for the window to spare a task looks before it."""
        return len(self._seen) >= WINDOW_SAMPLES

    def nap(
        self, seconds: float, wake_at: Callable[[], float | None], stop: threading.Event
    ) -> None:
        """Sleep `seconds`, or until the moment wake_at() gives (asked again whenever a peer
        succeeds), or until `stop` is set (noticed within PEER_CHECK)."""
        end = time.monotonic() + seconds
        with self._changed:
            while not stop.is_set():
                moment = wake_at()
                left = (end if moment is None else min(end, moment)) - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(min(left, PEER_CHECK))


def _in_window(opens: float, age: float) -> float:
    return min(max(WINDOW_GAP, WINDOW_SHARE * opens), allowance(age))


def _quantile(ordered: Sequence[float], share: float) -> float:
    """The `share` quantile of sorted values, interpolated between neighbours."""
    return _at(ordered, share * (len(ordered) - 1))


def _at(ordered: Sequence[float], place: float) -> float:
    """The value at a fractional index of sorted values, interpolated between neighbours."""
    low = min(int(place), len(ordered) - 1)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (place - low)


@dataclass
class FixedSchedule(Schedule):
    interval: float

    def next_delay(self, status: Task | None, now: float) -> float:
        return self.interval


@dataclass
class AdaptiveSchedule(Schedule):
    """A first look after 0.5 s; while queued, a gap of 2.5 times the wait (0.5-5 s); once
    running, a look within the allowance (0.46 s + 9.5% of the wait) of the earliest plausible
    finish, and never a gap longer than 2.5 allowances.

    The earliest plausible finish comes from an anchor: the moment the task was first seen running
    or its progress last changed (taken as the middle of the gap in which it happened), the run
    time at that moment (from the estimated start) and the progress then. With no progress yet,
    at least as long again as the run so far is left; with progress p, the rest may go 8 times
    faster than the pace so far, and never more than 1.25 times the run so far is assumed left.
    A provider that reports no progress (Higgsfield) gets no anchor: a look every allowance.
    In a batch (`peers`), the window of ages in which its peers ended places the looks instead
    (`_within`), and the batch's sleep wakes a task for them (`peer_look`, Peers.nap).

    The constants were chosen on the emulator's progress model with a simulated clock
    (benchmarks/polling.py --simulate, checked on other seeds and on linear, front-loaded,
    back-loaded and silent progress): for tasks of 1-120 s the p95 lag stays within 0.5 s + 10%
    of the length (the worst of thousands within twice that), with as many requests as a fixed
    2 s beat at 20 s and fewer from there on (0.8 times at 30 s, 0.34 at 120 s; 1.3 times as many
    at 10 s, where the beat itself misses the promise). Without progress: the worst lag within
    the promise but for a few hundredths, and fewer requests than the beat from about 27 s on
    (1.4 times at 10 s, 0.9 at 30 s).
    """

    started: float | None = None  # the submit (the first call), on the waiter's clock
    peers: Peers | None = None  # a batch's tasks on the same model
    _previous: float | None = None  # the last look
    _start: float | None = None  # the estimated moment the run started
    _anchor: tuple[float, int] = (0.0, 0)  # (moment, progress) of the latest news

    def next_delay(self, status: Task | None, now: float) -> float:
        if self.started is None:
            self.started = now
        alone = self._alone(status, now)
        if self.peers is None:
            return alone
        window = self.peers.window()
        if window is None:
            return alone
        gap = self._within(window, now - self.started, alone)
        # a window read from fewer than WINDOW_SAMPLES peers only ever adds looks
        return gap if self.peers.trusted else min(gap, alone)

    def _within(self, window: tuple[float, float], age: float, alone: float) -> float:
        """The gap when peers say where tasks of this kind end: before that window, straight
        to its start (for a long wait, in two steps: a task that fails early is not kept long);
        in it, a look every WINDOW_SHARE of the age it opens at (so a task is seen done within
        about a twentieth of its length on average); past it, the task's own schedule, but never
        a gap over the allowance (its few looks so far say little of its pace)."""
        opens, closes = window
        if age < opens:
            return min(opens - age, max(alone, BEFORE_WINDOW * opens, BEFORE_WINDOW_GAP))
        if age < closes:
            return _in_window(opens, age)
        return min(alone, allowance(age))

    def _alone(self, status: Task | None, now: float) -> float:
        """The gap from what this task alone says."""
        assert self.started is not None
        previous, self._previous = self._previous, now
        if status is None:
            return FIRST_LOOK
        waited = now - self.started
        if not status.running:
            return _clamp(QUEUED_SHARE * waited, QUEUED_BEAT)
        if status.progress is None:  # a provider without progress: time is all there is
            return allowance(waited)
        since = self.started if previous is None else previous
        progress = status.progress
        if self._start is None:  # first seen running: it started in the last gap
            if progress > 0:  # ...and then made progress, later in the same gap
                self._start = since + (now - since) / 3
                self._anchor = (since + 2 * (now - since) / 3, progress)
            else:
                self._start = (since + now) / 2
                self._anchor = (now, 0)
        elif progress > self._anchor[1]:
            self._anchor = ((since + now) / 2, progress)
        moment, seen = self._anchor
        run = moment - self._start
        left = JUST_STARTED if seen <= 0 else min(MOST_LEFT, (100 - seen) / (seen * SPEED_UP))
        earliest = max(now, moment + run * left)
        gap = earliest - now + allowance(earliest - self.started)
        return min(gap, STRETCH * allowance(waited))

    def ended(self, status: Task, now: float) -> None:
        if self.peers is not None and self.started is not None and status.succeeded:
            since = 0.0 if self._previous is None else self._previous - self.started
            self.peers.succeeded(now - self.started, since)

    def peer_look(self) -> float | None:
        """The moment its peers' window says this task is worth a look: as it enters the window
        unless looked at since, or one in-window gap after its last look in the window."""
        if self.peers is None or self.started is None:
            return None
        window = self.peers.window()
        if window is None:
            return None
        last = 0.0 if self._previous is None else self._previous - self.started
        if last >= window[1]:  # past the window: the task's own schedule
            return None
        return self.started + last + self._within(window, last, math.inf)


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
    seen: Mapping[str, Task] | None = None,
) -> dict[str, Task]:
    """Poll every task until it is terminal. One request per task per look; looks are spread out.
    `seen` holds looks made just before the wait: they count as its first (a task seen ended is
    not asked again).

    Raises WaitTimedOut (carrying the last status of each unfinished task) when `timeout` passes.
    """
    start = clock()
    deadline = None if timeout is None else start + timeout
    schedules = {task_id: schedule() for task_id in task_ids}
    last: dict[str, Task] = {}
    queue: list[tuple[float, int, str]] = []
    for index, task_id in enumerate(task_ids):
        earlier = (seen or {}).get(task_id)
        if earlier is not None:
            last[task_id] = earlier
            if earlier.is_terminal:
                continue
            delay = schedules[task_id].next_delay(earlier, start)
        elif first_delay is None:
            delay = schedules[task_id].next_delay(None, start)
        else:
            delay = first_delay
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
            schedules[task_id].ended(status, clock())
            continue
        now = clock()
        if deadline is not None and now >= deadline:
            pending: list[Task | str] = [last.get(other, other) for _, _, other in sorted(queue)]
            raise WaitTimedOut([status, *pending])
        heapq.heappush(queue, (now + schedules[task_id].next_delay(status, now), index, task_id))
    return last
