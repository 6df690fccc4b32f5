"""The emulator's rate limit (`--rate-limit N`): at most N requests a second per key, in any
one-second window of real time (network behaviour, like the faults, is not on the task clock).
A request beyond it is answered 429 with a Retry-After of whole seconds (HTTP's delta-seconds)
until the window has room again, and is not counted: only the requests let through use the
allowance. Only API requests count, those that carry a key (Siray's `Bearer` and `API-KEY`,
Higgsfield's `Key`); file downloads, uploads to the object store and the emulator's own
`/_emulator` endpoints are never limited."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

SCHEMES = ("bearer", "api-key", "key")


def key_of(authorization: str) -> str | None:
    """The key a request is counted against, or None for a request that is not limited."""
    scheme, _, credential = authorization.strip().partition(" ")
    return credential.strip() if scheme.lower() in SCHEMES and credential.strip() else None


class RateLimit:
    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(per_second) or per_second <= 0:
            raise ValueError("the rate limit must be a positive number of requests a second")
        self.allowed = max(1, int(per_second))
        self.refused = 0
        self._clock = clock
        self._taken: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> int | None:
        """Count a request against `key`: None when it may go, else the Retry-After to send."""
        with self._lock:
            now = self._clock()
            taken = self._taken.setdefault(key, deque())
            while taken and taken[0] <= now - 1.0:
                taken.popleft()
            if len(taken) < self.allowed:
                taken.append(now)
                return None
            self.refused += 1
            return max(1, math.ceil(taken[0] + 1.0 - now))
