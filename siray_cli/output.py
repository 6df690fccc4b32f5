"""The one output sink: data to stdout, everything for humans to stderr, --json, TTY detection,
tables and documents.

Every line that leaves siray passes through `scrub`, so a secret that reached a message by accident
(an API key echoed by a server, say) is still never shown; table cells, which hold text from
servers, also pass through `sanitize`, so no control character or escape sequence reaches a
terminal and no markup is interpreted.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from siray_cli.errors import SirayError

REDACTED = "***"
# C0 and C1 control characters and DEL (a tab aside): escape sequences, carriage returns, forged
# line breaks. A tab is harmless on a terminal, and separates the fields of data lines. Also the
# bidirectional controls (embeddings, overrides, isolates, marks), which reorder what a terminal
# shows, and invisible characters that hide text (zero-width space and non-joiner, word joiner,
# byte-order mark); the zero-width joiner stays, as emoji sequences are made of it.
_CONTROL = re.compile(
    r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b\u200c\u200e\u200f"
    r"\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
# what json.dumps(ensure_ascii=False) leaves raw but a terminal may act on
_JSON_RAW = re.compile(r"[\x7f-\x9f\u2028\u2029]")
PARTIAL = 8  # the shortest piece of a secret that is scrubbed on its own
MESSAGE_LIMIT = 500  # characters of an error message shown (after scrubbing)


def sanitize(text: str) -> str:
    """Text made safe for a terminal line: each control character shown as an escape, so a
    server's string can neither move the cursor nor forge a line of siray's."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _Pieces:
    """A secret, and every prefix and suffix of it of PARTIAL characters or more (a server or
    proxy that echoes a key may cut it). Each prefix starts with the secret's first PARTIAL
    characters and each suffix ends with its last ones, so finding those anchors and growing each
    match as far as the secret allows finds every piece, in time linear in the secret's length;
    a regular expression of every piece would grow with its square (a temporary S3 token of a
    few hundred characters made one of over 100,000, compiled at each upload)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.head = secret[:PARTIAL]
        self.tail = secret[-PARTIAL:]

    def spans(self, text: str) -> list[tuple[int, int]]:
        secret, found = self.secret, []
        at = text.find(self.head)
        while at != -1:
            end = at + PARTIAL
            while end < len(text) and end - at < len(secret) and text[end] == secret[end - at]:
                end += 1
            found.append((at, end))
            at = text.find(self.head, at + 1)
        at = text.find(self.tail)
        while at != -1:
            end, start = at + PARTIAL, at
            while (
                start > 0
                and end - start < len(secret)
                and (text[start - 1] == secret[len(secret) - (end - start) - 1])
            ):
                start -= 1
            found.append((start, end))
            at = text.find(self.tail, at + 1)
        return found

    def scrub(self, text: str) -> str:
        if len(self.secret) <= PARTIAL:
            return text.replace(self.secret, REDACTED)
        spans = sorted(self.spans(text))
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in spans:
            if start < last:  # overlaps the span before: one *** covers both
                last = max(last, end)
                continue
            pieces += [text[last:start], REDACTED]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)


class _Whole:
    """A secret scrubbed only as a whole (the id:secret credential, whose id may show)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def scrub(self, text: str) -> str:
        return text.replace(self.secret, REDACTED)


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Output:
    def __init__(self, *, quiet: bool = False, debug: bool = False) -> None:
        self.quiet = quiet
        self.debug_enabled = debug
        self.json_mode = False
        self._secrets: dict[str, _Pieces | _Whole] = {}
        self._console: Console | None = None
        self._reader_gone = False

    # streams are looked up at call time: test runners swap sys.stdout and sys.stderr
    @property
    def stdout(self) -> TextIO:
        return sys.stdout

    @property
    def stderr(self) -> TextIO:
        return sys.stderr

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def stdout_is_tty(self) -> bool:
        return self._isatty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        return self._isatty(self.stderr)

    @property
    def interactive(self) -> bool:
        """Live displays only on a terminal, and never with --quiet."""
        return self.stderr_is_tty and not self.quiet and os.environ.get("TERM") != "dumb"

    def add_secret(self, secret: str | None) -> None:
        """A secret never shown. Of an id:secret credential the id may be shown: the whole is
        scrubbed as a whole, and the secret part by its pieces too."""
        if not secret or len(secret) < 4 or secret in self._secrets:
            return
        if ":" in secret:
            private = secret.partition(":")[2]
            self._secrets[secret] = _Whole(secret)
            if len(private) >= 4 and private not in self._secrets:
                self._secrets[private] = _Pieces(private)  # all of it: a ':' in it is its own
            return
        self._secrets[secret] = _Pieces(secret)

    def scrub(self, text: str) -> str:
        """Every secret, and every piece of one of 8 characters or more, replaced by ***."""
        for secret in self._secrets.values():
            text = secret.scrub(text)
        return text

    def _write(self, stream: TextIO, text: str) -> None:
        """One line: scrubbed of secrets, then of control characters."""
        stream.write(sanitize(self.scrub(text)) + "\n")
        stream.flush()

    # data: stdout
    def data(self, line: str) -> None:
        """One line of data; once the reader has gone (`| head`), data is dropped quietly."""
        if self._reader_gone:
            return
        try:
            self._write(self.stdout, line)
        except BrokenPipeError:
            self._reader_gone = True

    @property
    def reader_gone(self) -> bool:
        return self._reader_gone

    def secret_data(self, secret: str) -> None:
        """The one unscrubbed line: `siray auth token` printing the key for a pipe."""
        self.stdout.write(secret + "\n")
        self.stdout.flush()

    def data_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.data(line)

    def emit_json(self, document: Any) -> None:
        """One JSON document on one line, exact: control characters are JSON escapes."""
        if self._reader_gone:
            return
        import json

        text = json.dumps(document, ensure_ascii=False)
        text = _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", self.scrub(text))
        try:
            self.stdout.write(text + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            self._reader_gone = True

    # humans: stderr
    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(self.stderr, message)

    def always(self, message: str) -> None:
        """A message that must be seen even with --quiet (a task id, how to resume)."""
        self._write(self.stderr, message)

    def warn(self, message: str) -> None:
        self._write(self.stderr, f"warning: {message}")

    def trace(self, message: str) -> None:
        if self.debug_enabled:
            self._write(self.stderr, f"debug: {message}")

    def error(
        self,
        message: str,
        *,
        hint: str | None = None,
        error_type: str = "error",
        status_code: int | None = None,
        task_id: str | None = None,
        document: bool = True,
    ) -> None:
        """The error and its hint on stderr; with --json, its JSON object on stdout too, unless
        the command puts it in its own document (`document=False`)."""
        message = cut(self.scrub(message))
        self._write(self.stderr, f"error: {message}")
        if hint:
            self._write(self.stderr, f"hint: {cut(self.scrub(hint))}")
        if self.json_mode and document:
            self.error_json(
                message, error_type=error_type, status_code=status_code, task_id=task_id
            )

    def error_json(
        self,
        message: str,
        *,
        error_type: str,
        status_code: int | None = None,
        task_id: str | None = None,
    ) -> None:
        """The error object of the output contract on stdout: type, message, status, task id."""
        self.emit_json({"error": self._error(message, error_type, status_code, task_id)})

    def _error(
        self, message: str, error_type: str, status_code: int | None, task_id: str | None
    ) -> dict[str, Any]:
        return {
            "type": error_type,
            "message": self.scrub(message),
            "status_code": status_code,
            "task_id": task_id,
        }

    def report(self, exc: SirayError, task_id: str | None = None, *, document: bool = True) -> None:
        """A typed error as its one-line message (and, with --json, its JSON object, unless the
        command puts `error_object` in its own document: `document=False`)."""
        self.error(
            exc.message,
            hint=exc.hint,
            error_type=exc.error_type,
            status_code=exc.status_code,
            task_id=exc.task_id or task_id,
            document=document,
        )

    def error_object(self, exc: SirayError, task_id: str | None = None) -> dict[str, Any]:
        """The error object of the output contract, for a command's own JSON document."""
        return self._error(exc.message, exc.error_type, exc.status_code, exc.task_id or task_id)

    def console(self) -> Console:
        """A rich console on stderr, for live displays on a terminal (rich honours NO_COLOR)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stderr, highlight=False)
        return self._console

    def stdout_console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stdout, highlight=False)

    # documents and tables: one call renders them in every mode
    def result(self, document: Any) -> None:
        """One JSON document on stdout (the whole answer of a command under --json)."""
        self.emit_json(document)

    def table(
        self,
        rows: Sequence[Sequence[str]],
        columns: Sequence[str],
        *,
        document: Any = None,
    ) -> None:
        """Rows as a rich table on a terminal, tab-separated lines on a pipe, and with --json
        `document` (or the rows as objects keyed by column). Every cell is scrubbed and
        sanitized; tabs and line breaks inside a cell become spaces on a pipe."""
        if self.json_mode:
            if document is None:
                document = [dict(zip(columns, row, strict=True)) for row in rows]
            self.emit_json(document)
            return
        if not self.stdout_is_tty:
            self.data_lines(
                "\t".join(" ".join(sanitize(cell).split()) if cell else cell for cell in row)
                for row in rows
            )
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(self.scrub(sanitize(cell))) for cell in row))
        if self._reader_gone:
            return
        try:
            self.stdout_console().print(table)
        except BrokenPipeError:
            self._reader_gone = True
