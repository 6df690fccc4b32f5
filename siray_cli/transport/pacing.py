"""How fast one client sends: an adaptive request rate shared by every thread that uses the
client (a batch's submits and status looks, all together).

At most `rate` requests go in any one-second window; a burst up to that goes at once (the looks
of tasks submitted together are due together, and spacing them out would only make the last of
them late). The rate starts at a ceiling (SIRAY_MAX_RATE) and adapts to what the server says, the
way TCP adapts its window (slow start, then additive increase, multiplicative decrease):

- a throttle (429, or 503) brings the rate down to DECREASE times the number of requests the
  server let through in the last second; the answers to one burst (a second) are one signal,
  each refusal only making that count more exact, never compounding the decrease. That number
  is where the server's limit lies (`known`), for KNOWN_FOR seconds after the last throttle;
- below `known` (or with none known: a stray 503 is soon forgotten), the rate doubles every
  second; from `known` on it only creeps up, by CREEP of it a second, probing for a limit that
  was raised;
- a lone request refused (no other request of this client out), and its retries, in a second
  that let at most one other through (a single run: its create, then its looks), show no rate
  to come down to: the rate would be the floor, one a second, whatever Retry-After the server
  sent. The retry layer spaces those retries by the server's Retry-After, or its backoff. (A
  batch's looks are often out one at a time too, each answered in milliseconds: a second that
  let several through does teach the rate.) Many requests refused with nothing let through (a
  server refusing everything, however slowly it answers) bring the rate down to FLOOR;
- a Retry-After is honoured exactly: the request that got it is sent again only after that long
  (the retry layer). One longer than the one-second window the rate governs (a server that
  says "come back later") holds every request of this client until then; a shorter one is the
  window's own business, which the lowered rate already minds.

Clock and sleep are parameters, so tests drive it on a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from siray_cli.transport.bounds import deadline_state, retry_after

CEILING = 150.0  # requests a second: 64 tasks in flight need about 100 (SIRAY_MAX_RATE)
FLOOR = 1.0
DECREASE = 0.9
CREEP = 0.02  # from the known limit on, the rate grows by this share of it a second...
LEAST_CREEP = 0.5  # ...and by this many requests a second at least
KNOWN_FOR = 10.0  # seconds after the last throttle the limit it showed is trusted
THROTTLES = (429, 503)
WINDOW = 1.0


@dataclass(order=True)
class _Ticket:
    rank: int  # 0: a create, 1: anything else
    number: int  # arrival order within a rank
    turn: threading.Event = field(default_factory=threading.Event, compare=False)


class AdaptiveRate:
    def __init__(
        self,
        ceiling: float = CEILING,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = max(FLOOR, ceiling)
        self.rate = self.ceiling
        self.throttles = 0  # how many times the server objected (one per burst)
        self._clock, self._sleep = clock, sleep
        self._known: float | None = None  # the rate let through when the server last objected
        self._sent: deque[float] = deque()  # the moments given out, in order
        self._refused: deque[float] = deque()  # the moments throttles came back
        self._not_before = 0.0
        self._grown_at = clock()
        self._throttled_at = -math.inf
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []  # the requests waiting, first in line first
        self._numbers = itertools.count()
        self._in_flight = 0  # requests given their moment and not yet answered (note)

    def acquire(self, first: bool = False) -> None:
        """Wait for this client's next free moment. Requests go in order of arrival, except that
        those marked `first` (creates: each starts a task, where a look only notices one has
        ended) go before any other waiting. A request still waiting when its overall deadline
        comes goes then: it would give up then anyway, and says why."""
        ticket = _Ticket(0 if first else 1, next(self._numbers))
        with self._lock:
            heapq.heappush(self._queue, ticket)
        outer = getattr(deadline_state, "at", None)
        while True:
            with self._lock:
                now = self._clock()
                free = self._free_at(now)
                top = self._queue[0] is ticket
                late = outer is not None and time.monotonic() >= outer
                if (top and free <= now) or late:
                    self._queue.remove(ticket)
                    heapq.heapify(self._queue)
                    self._sent.append(now)
                    self._in_flight += 1
                    if self._queue:  # the next in line looks at the window itself
                        self._queue[0].turn.set()
                    return
            if top:
                delay = free - now
                if outer is not None:
                    delay = min(delay, max(0.0, outer - time.monotonic()))
                self._sleep(delay)
            else:
                ticket.turn.wait(None if outer is None else max(0.0, outer - time.monotonic()))
                ticket.turn.clear()

    def _free_at(self, now: float) -> float:
        """The first moment from `now` on at which one more request may go."""
        self._grow(now)
        while self._sent and self._sent[0] <= now - WINDOW:
            self._sent.popleft()
        limit = max(1, int(self.rate * WINDOW))
        free = max(now, self._not_before)
        if len(self._sent) >= limit:
            free = max(free, self._sent[-limit] + WINDOW)
        return free

    def note(self, response: httpx.Response | None) -> None:
        """A request given its moment by `acquire` has ended, with this answer (None: with no
        answer). A throttle slows every request of this client down."""
        with self._lock:
            alone = self._in_flight <= 1  # no other request of this client was out
            self._in_flight = max(0, self._in_flight - 1)
        if response is None or response.status_code not in THROTTLES:
            return
        wait = retry_after(response)
        with self._lock:
            now = self._clock()
            if wait is not None and wait > WINDOW:
                self._not_before = max(self._not_before, now + wait)
            self._refused.append(now)
            while self._refused and self._refused[0] <= now - WINDOW:
                self._refused.popleft()
            if now - self._throttled_at >= WINDOW:  # a new burst refused: a new signal
                self._throttled_at = now
                self.throttles += 1
            # each refusal of the same burst makes the count of those let through more exact
            sent = sum(1 for moment in self._sent if now - WINDOW < moment <= now)
            through = sent - len(self._refused)
            if alone and through <= 1:  # a lone request and its retries: the module's notes
                return
            self._known = max(FLOOR, float(through))
            self.rate = max(FLOOR, min(self.rate, DECREASE * self._known))
            self._grown_at = now

    def _grow(self, now: float) -> None:
        elapsed, self._grown_at = now - self._grown_at, now
        if elapsed <= 0 or self.rate >= self.ceiling:
            return
        known = self._known
        if known is not None and now - self._throttled_at > KNOWN_FOR:
            known = self._known = None
        if known is None or self.rate < known:  # slow start: back to the known level quickly
            self.rate = min(known or self.ceiling, self.rate * 2**elapsed)
        else:
            self.rate += max(LEAST_CREEP, CREEP * known) * elapsed
        self.rate = min(self.ceiling, self.rate)


class PacingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, pace: AdaptiveRate) -> None:
        self._inner = inner
        self.pace = pace

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.pace.acquire(first=request.method == "POST")
        response = None
        try:
            response = self._inner.handle_request(request)
        finally:
            self.pace.note(response)
        return response

    def close(self) -> None:
        self._inner.close()
