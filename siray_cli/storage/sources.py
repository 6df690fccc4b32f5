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


SNIFF_BYTES = 8192  # what the `filetype` signatures read at most


def _name_and_type(
    name: str | None, content_type: str | None, head: bytes
) -> tuple[str | None, str | None]:
    """Standard input's object name and Content-Type: as given, else the one from the other
    (a name's extension, a type's usual extension), else from its first bytes (a signature, or
    UTF-8 text); the name defaults to `stdin` with the type's extension."""
    extension = None
    if content_type is None and name:
        content_type = mimetypes.guess_type(name)[0]
    if content_type is None:
        import filetype  # signatures of images, video and audio: only when `-` is uploaded

        kind = filetype.guess(head)
        if kind is not None:
            content_type, extension = kind.mime, kind.extension
        elif _is_text(head):
            content_type, extension = "text/plain", "txt"
    if name is None and content_type is not None:
        if extension is None:
            guessed = mimetypes.guess_extension(content_type.split(";")[0].strip())
            extension = guessed.lstrip(".") if guessed else None
        name = f"stdin.{extension}" if extension else "stdin"
    return name, content_type


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sniffed bytes is text
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


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
            if stdin is None:
                problems.append("standard input (-) cannot be uploaded here")
                continue
            stream = stdin()
            head = stream.read(SNIFF_BYTES)
            if not head:
                problems.append("standard input is empty")
                continue
            named, typed = _name_and_type(name, content_type, head)
            if named is None or typed is None:
                problems.append(
                    "siray cannot tell what standard input (-) holds: give --name (its extension "
                    "tells the type) or --content-type"
                )
                continue
            sources.append(Source("-", named, typed, stream=_Prefixed(head, stream)))
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
