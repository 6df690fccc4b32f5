"""Ctrl-C: raised as KeyboardInterrupt, never forgotten, and held back while a paid create
request is in flight.

`install()` (run first thing by the console script) makes Ctrl-C remembered as well as raised.
Library code can swallow a KeyboardInterrupt: a bare `except:`, or Python 3.11 wrapping it in a
RuntimeError when it lands inside class creation during an import. `check()` at the places where
siray is about to send a request or go on waiting raises it again, so a swallowed Ctrl-C cannot
leave siray waiting forever on a task the user asked it to stop watching.

An interrupt that lands between sending the create request and reading its answer would leave a
task the user never hears of. Inside `deferred_interrupts()`, the first Ctrl-C is remembered and
raised as soon as the block ends (the task id recorded and shown by then); a second one
interrupts at once, as before.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_received = threading.Event()


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C raises KeyboardInterrupt, as by default, and is remembered (see `check`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_interrupt)
    if sys.unraisablehook is not _quiet_unraisable:
        _default_unraisable.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_unraisable


_default_unraisable: list[Callable[[Any], object]] = []


def _quiet_unraisable(unraisable: Any) -> None:
    # A Ctrl-C landing in a callback Python cannot raise from (importlib's module-lock cleanup,
    # a weakref callback) is only reported: it is remembered instead of printed as a traceback
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _received.set()
        return
    _default_unraisable[0](unraisable)


def interrupted() -> bool:
    """Whether Ctrl-C was pressed in this process."""
    return _received.is_set()


def check() -> None:
    """Raise KeyboardInterrupt on the main thread if Ctrl-C was pressed, even when whatever it
    first interrupted swallowed the exception. Other threads are told to stop by their owner."""
    if _received.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def sleep(seconds: float) -> None:
    """`time.sleep` for waits on the main thread: a Ctrl-C swallowed earlier still stops them."""
    check()
    time.sleep(seconds)
    check()


@contextmanager
def deferred_interrupts(notice: str = "") -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    check()  # pressed before: nothing is sent
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if received:
            _received.set()
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
        _received.set()
        raise KeyboardInterrupt
