"""Local files (and standard input) named for an upload, each checked before anything is sent:
all the problems are reported at once."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from siray_cli.domain import Source
from siray_cli.errors import UsageError


class _Prefixed:
    """A stream whose first bytes were read already (to check it is not empty); it counts the
    bytes it hands out, which is the size of standard input once it is sent."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self._read(size)
        self.consumed += len(data)
        return data

    def _read(self, size: int) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size)


def check_sources(
    arguments: list[str],
    *,
    name: str | None,
    content_type: str | None,
    max_bytes: int,
    stdin: Callable[[], IO[bytes]] | None = None,
) -> list[Source]:
    """Every argument checked before anything is uploaded; all problems reported at once.
    `stdin` gives standard input's bytes, for `-`."""
    sources, problems = [], []
    for argument in arguments:
        if argument == "-":
            if not name or not content_type:
                problems.append("uploading standard input (-) needs --name and --content-type")
                continue
            if stdin is None:
                problems.append("standard input (-) cannot be uploaded here")
                continue
            stream = stdin()
            head = stream.read(1)
            if not head:
                problems.append("standard input is empty")
                continue
            sources.append(Source("-", name, content_type, stream=_Prefixed(head, stream)))
            continue
        path = Path(argument).expanduser()
        try:
            if not path.exists():
                problems.append(f"{argument}: no such file")
            elif path.is_dir():
                problems.append(f"{argument}: is a directory")
            elif not os.access(path, os.R_OK):
                problems.append(f"{argument}: not readable (permission denied)")
            elif (size := path.stat().st_size) == 0:
                problems.append(f"{argument}: is empty")
            elif size > max_bytes:
                problems.append(
                    f"{argument}: {size} bytes, over the limit of {max_bytes} "
                    "(the upload_max_size setting)"
                )
            else:
                guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                sources.append(
                    Source(
                        argument,
                        name if name and len(arguments) == 1 else path.name,
                        content_type or guessed,
                        path=path,
                        size=size,
                    )
                )
        except OSError as exc:
            problems.append(f"{argument}: {exc.strerror}")
    if problems:
        raise UsageError("; ".join(problems), hint="nothing was uploaded")
    return sources
