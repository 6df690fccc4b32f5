"""A submit the provider refuses for the account's concurrency limit is no failure: nothing was
created, so it is sent again (it cannot pay twice) once a slot may be free, for as long as the
command's --timeout allows, saying what it waits for and until when."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from siray_cli import signals
from siray_cli.errors import ConcurrencyLimitError, WaitTimeoutError

T = TypeVar("T")

# seconds between tries of a submit refused for the concurrency limit, in retry backoffs (0.5 s
# by default: 5 s; the retry_backoff setting scales every pause siray makes between tries)
ADMISSION_PAUSE = 10
ADMISSION_TELL = 30.0  # seconds between the lines that say it is still waiting


def when_admitted(
    submit: Callable[[], T],
    *,
    patience: float | None,
    say: Callable[[str], None],
    backoff: float,
    what: str = "the request",
    pause: Callable[[float], bool] | None = None,
    on_hold: Callable[[float, float | None], None] | None = None,
) -> T | None:
    """`submit()` again while the provider refuses it for the account's concurrency limit (a
    refusal: nothing was created, so sending it again cannot pay twice), for `patience` seconds
    at most (None: no bound), saying what it waits for and until when, then again every
    ADMISSION_TELL seconds. `pause(seconds)` waits between tries (True: stop, and None is
    returned); by default a sleep that lets a signal through. `on_hold(next_try, gives_up)`
    (monotonic times; None: no bound), before each pause, feeds a countdown on a terminal,
    which then says what the lines every ADMISSION_TELL seconds would."""
    every = ADMISSION_PAUSE * backoff
    started = time.monotonic()
    told: float | None = None
    while True:
        try:
            return submit()
        except ConcurrencyLimitError as exc:
            now = time.monotonic()
            waited = now - started
            # the last try comes at the end of the patience, not a pause before it
            gap = every if patience is None else min(every, patience - waited)
            if gap <= 0:
                raise WaitTimeoutError(
                    f"gave up after {waited:.0f}s: the provider's concurrency limit was still "
                    f"reached ({exc.message}); nothing was submitted",
                    hint="run the same command again once a task of yours has ended",
                ) from None
            if told is None:
                until = ""
                if patience is not None:
                    ends = time.localtime(time.time() + patience - waited)
                    until = f", until {time.strftime('%H:%M:%S', ends)}"
                say(
                    f"{what}: the provider's concurrency limit is reached (nothing was "
                    f"submitted); trying again every {every:g}s{until}"
                )
                told = now
            elif on_hold is None and now - told >= ADMISSION_TELL:
                say(f"{what}: still held back by the concurrency limit ({waited:.0f}s so far)")
                told = now
            if on_hold is not None:
                on_hold(now + gap, None if patience is None else started + patience)
        if pause is None:
            signals.sleep(gap)
        elif pause(gap):
            return None
