"""Files siray writes for other programs to read (a JUnit report, GitHub's step summary): they
hold no secret, so they take the usual permissions, but a symlink planted at their path is never
followed, and a report is never seen half-written."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from siray_cli.errors import UsageError


def check_report_path(path: Path, flag: str) -> Path:
    """A report's path, checked before anything is paid for: its directory exists and can be
    written, and it is not a directory itself."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory", hint="give the report file's path")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the directory {parent} is not writable")
    return path


def replace_with(path: Path, data: bytes) -> None:
    """`data` as the file at `path`: written to a new file beside it, then renamed over it (a
    symlink at `path` is replaced, never written through)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, flags, 0o666)  # the umask decides, as for any file
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def append_to(path: Path, text: str) -> None:
    """`text` added at the end of the file at `path` (created if missing), which is refused if
    it is a symlink (O_NOFOLLOW) rather than followed."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o666)
    with os.fdopen(descriptor, "a", encoding="utf-8") as sink:
        sink.write(text)
