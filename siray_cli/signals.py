"""Ctrl-C, SIGTERM and SIGHUP: raised as KeyboardInterrupt, never forgotten, and held back while a
paid create request is in flight. CI runners stop jobs with SIGTERM, and a closed terminal sends
SIGHUP: each is handled as Ctrl-C is, and siray then exits 128 + the signal's number (130, 143,
129), as a shell reports a process the signal ended.

`install()` (run first thing by the console script) makes each of them remembered as well as
raised.
Library code can swallow a KeyboardInterrupt: a bare `except:`, or Python 3.11 wrapping it in a
RuntimeError when it lands inside class creation during an import. `check()` at the places where
siray is about to send a request or go on waiting raises it again, so a swallowed Ctrl-C cannot
leave siray waiting forever on a task the user asked it to stop watching.

An interrupt that lands between sending the create request and reading its answer would leave a
task the user never hears of. Inside `deferred_interrupts()`, the first Ctrl-C is remembered and
raised as soon as the block ends (the task id recorded and shown by then); a second one
interrupts at once, as before, and so does a held one after HOLD_LIMIT seconds (a stuck request
must not outlast a CI runner's patience: the attempt is journalled before it is sent).
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
_first: list[int] = []  # the first signal received
HANDLED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
HOLD_LIMIT = 10.0  # seconds a held signal waits for the create request's answer
HOLD_NOTICE = "interrupt received: stopping once the task id is known (again to force)"


def _remember(signum: int) -> None:
    if not _first:
        _first.append(signum)
    _received.set()


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _remember(signum)
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt and are remembered (see `check`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        signal.signal(signum, _on_interrupt)
    if sys.unraisablehook is not _quiet_unraisable:
        _default_unraisable.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_unraisable


_default_unraisable: list[Callable[[Any], object]] = []


def _quiet_unraisable(unraisable: Any) -> None:
    # A Ctrl-C landing in a callback Python cannot raise from (importlib's module-lock cleanup,
    # a weakref callback) is only reported: it is remembered instead of printed as a traceback
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _remember(signal.SIGINT)
        return
    _default_unraisable[0](unraisable)


def interrupted() -> bool:
    """Whether Ctrl-C was pressed (or SIGTERM or SIGHUP received) in this process."""
    return _received.is_set()


def exit_code() -> int:
    """128 + the number of the signal that stopped siray: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (_first[0] if _first else signal.SIGINT)


def name() -> str:
    """How to say what stopped siray: "interrupted", or "terminated (SIGTERM)"..."""
    if not _first or _first[0] == signal.SIGINT:
        return "interrupted"
    return f"terminated ({signal.Signals(_first[0]).name})"


def check() -> None:
    """Raise KeyboardInterrupt on the main thread if Ctrl-C was pressed, even when whatever it
    first interrupted swallowed the exception. Other threads are told to stop by their owner."""
    if _received.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


# The kernel may hand a signal sent to the process to any of its threads that does not block
# it. Python then runs the handler on the main thread, but only once that thread runs Python
# code again: a main thread blocked in one long wait (a lock, a sleep) would not see the signal
# until the wait ends on its own. Waits on the main thread are made of slices this long at most.
SLICE = 0.1


def sleep(seconds: float) -> None:
    """`time.sleep` for waits on the main thread: a Ctrl-C swallowed earlier still stops them,
    and one the kernel handed to another thread stops them within SLICE seconds."""
    check()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, SLICE))
    check()


@contextmanager
def deferred_interrupts(say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Inside the block, the first signal is held (`say` tells the user so) until the block
    ends; a second one, or HOLD_LIMIT seconds, forces it through."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    check()  # pressed before: nothing is sent
    received: list[int] = []
    force = threading.Event()

    def hold(signum: int, frame: FrameType | None) -> None:
        if received:
            _remember(received[0])
            raise KeyboardInterrupt
        received.append(signum)
        if say is not None:
            say(HOLD_NOTICE)
        main = threading.main_thread().ident
        threading.Thread(target=_force_later, args=(force, main, signum), daemon=True).start()

    previous = {signum: signal.signal(signum, hold) for signum in HANDLED}
    try:
        yield
    finally:
        force.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        _remember(received[0])
        raise KeyboardInterrupt


def _force_later(done: threading.Event, thread: int | None, signum: int) -> None:
    """A held signal delivered again after HOLD_LIMIT seconds, unless the block ended first."""
    if not done.wait(HOLD_LIMIT) and thread is not None:
        signal.pthread_kill(thread, signum)
