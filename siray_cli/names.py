"""File names made from text siray does not control (task ids from a server, job names from a
batch file): they can never leave their directory and fit any file system."""

from __future__ import annotations

import hashlib
import re

UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
NAME_LIMIT = 120  # characters of a file name made from a task id or a job name


def safe_name(text: str) -> str:
    """A file name that cannot leave its directory (no separators, no leading dots) and fits any
    file system: a long one is cut, with a digest of the whole so two long names stay apart."""
    name = UNSAFE.sub("_", text).lstrip(".") or "task"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name[: NAME_LIMIT - 13]}-{digest}"
