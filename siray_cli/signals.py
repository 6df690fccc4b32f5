"""Ctrl-C held back while a paid create request is in flight.

An interrupt that lands between sending the create request and reading its answer would leave a
task the user never hears of. Inside `deferred_interrupts()`, the first Ctrl-C is remembered and
raised as soon as the block ends (the task id recorded and shown by then); a second one
interrupts at once, as before.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def deferred_interrupts(notice: str = "") -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        if notice:
            sys.stderr.write(notice + "\n")
            sys.stderr.flush()

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
