"""Advisory file locks in the data directory's private `locks` folder: one mechanism for the lock
a job's submit holds (so two processes never both pay for it) and the one a batch run holds (so
two runs of the same file never race). A lock is released when its descriptor closes, so a
process that dies releases its locks with it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from siray_cli.storage.private import data_dir, private_dir

PAUSE = 0.05  # seconds between tries for a lock another process holds


class LockBusy(Exception):
    """The lock is held by another process (`holder`: the pid it wrote, when it wrote one)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def lock_path(name: str) -> Path:
    """A lock file in the data directory's private `locks` folder (the directories made 0700)."""
    return private_dir(private_dir(data_dir()) / "locks") / name


@contextmanager
def flock(
    name: str,
    *,
    wait: bool,
    on_wait: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    write_pid: bool = False,
) -> Iterator[None]:
    """Hold the lock `name`. With `wait`, try again every PAUSE seconds (`on_wait` is called once,
    when the lock is first found taken; `sleep` lets a signal through); without, raise LockBusy.
    With `write_pid`, the holder's pid is written in the file for the next one to name."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks here
        yield
        return
    descriptor = os.open(lock_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        told = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
                    raise LockBusy(holder) from None
                if not told and on_wait is not None:
                    on_wait()
                told = True
                sleep(PAUSE)
        if write_pid:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # and with it the lock
