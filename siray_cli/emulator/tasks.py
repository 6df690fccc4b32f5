"""The emulator's task model, shared by every emulated API: a task follows a timeline of events
fixed when it is created, read against the emulator's clock. Each API reports the event in force
in its own words.

Progress model: a task of nominal length T (`task_seconds`, varied ±15% per task) passes
NOT_START -> SUBMITTED -> QUEUED (after 6-12% of T) -> IN_PROGRESS (after 15-30% of T), then
reports progress in 3 to 8 uneven, coarse steps (multiples of 5, never 100 before the end) at
random moments, so neither the pace nor the finish can be read off a linear clock; SUCCESS (or
FAILURE) comes at T.

Emulator-only conventions, documented in docs/emulator.md:
- a prompt containing `[fail]` ends in FAILURE with a fail_reason;
- a prompt containing `[hold]` stays QUEUED until cancelled (for cancel and timeout tests).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

DUPLICATE_WINDOW = 600.0  # the same request twice within this many seconds counts as a duplicate
FAIL_MARKER = "[fail]"
HOLD_MARKER = "[hold]"


@dataclass
class Event:
    offset: float
    status: str
    progress: int | None


@dataclass
class Task:
    task_id: str
    kind: str
    model: str
    body: dict[str, Any]
    created: float  # the emulator clock's monotonic time
    created_wall: float  # the emulator clock's wall time
    timeline: list[Event]
    fail_reason: str = ""
    cancelled_at: float | None = None
    status_requests: int = 0

    def current(self, now: float) -> tuple[Event, float | None, float | None]:
        """The event in force now, and the start and finish offsets reached so far."""
        elapsed = now - self.created
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return (
                Event(self.cancelled_at - self.created, "CANCELLED", None),
                None,
                (self.cancelled_at - self.created),
            )
        event = self.timeline[0]
        start = finish = None
        for candidate in self.timeline:
            if candidate.offset > elapsed:
                break
            event = candidate
            if candidate.status == "IN_PROGRESS" and start is None:
                start = candidate.offset
            if candidate.status in ("SUCCESS", "FAILURE"):
                finish = candidate.offset
        return event, start, finish

    @property
    def finish_offset(self) -> float | None:
        last = self.timeline[-1]
        return last.offset if last.status in ("SUCCESS", "FAILURE") else None


def build_timeline(
    rng: random.Random, seconds: float, *, hold: bool, fail_early: bool, jitter: float = 0.15
) -> list[Event]:
    total = max(seconds, 0.05) * rng.uniform(1 - jitter, 1 + jitter)
    queued = total * rng.uniform(0.06, 0.12)
    start = total * rng.uniform(0.15, 0.30)
    events = [
        Event(0.0, "NOT_START", None),
        Event(total * 0.03, "SUBMITTED", None),
        Event(queued, "QUEUED", 0),
    ]
    if hold:
        return events
    if fail_early:
        return [*events, Event(start, "FAILURE", 0)]
    events.append(Event(start, "IN_PROGRESS", 0))
    steps = rng.randint(3, 8)
    moments = sorted(rng.uniform(start, total) for _ in range(steps))
    weights = [rng.uniform(0.2, 2.0) for _ in range(steps)]
    done = 0.0
    last = 0
    for moment, weight in zip(moments, weights, strict=True):
        done += weight
        progress = min(95, int(done / sum(weights) * 95 / 5) * 5)
        if progress > last:
            events.append(Event(moment, "IN_PROGRESS", progress))
            last = progress
    events.append(Event(total, "SUCCESS", 100))
    return events
