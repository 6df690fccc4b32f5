"""The one output sink: data to stdout, everything for humans to stderr, --json, TTY detection,
tables and documents.

Every line that leaves siray passes through `scrub`, so a secret that reached a message by accident
(an API key echoed by a server, say) is still never shown; table cells, which hold text from
servers, also pass through `sanitize`, so no control character or escape sequence reaches a
terminal and no markup is interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from siray_cli.environment import Environment
from siray_cli.scrub import Secrets

if TYPE_CHECKING:
    from rich.console import Console

    from siray_cli.errors import SirayError

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
MESSAGE_LIMIT = 500  # characters of an error message shown (after scrubbing)
# what a line of data may link to: a web or file URL of printable ASCII, nothing that could end
# the hyperlink's escape sequence early (a path's URL is percent-encoded by Path.as_uri)
_LINKABLE = re.compile(r"(?:https?|file)://[!-~]+")


def image_protocol(variables: Mapping[str, str]) -> str | None:
    """How the terminal siray runs in draws images, as its variables tell: "kitty" (the Kitty
    graphics protocol: kitty, Ghostty), "sixel" (iTerm2, WezTerm, foot, mlterm), or None (not
    known to draw any). Inside tmux or screen, None: they pass no image through unless
    configured to. Told by variables only, never by asking the terminal: its answer would be
    read from standard input, where it could swallow keystrokes typed ahead or hang a pipe."""
    term = variables.get("TERM", "")
    program = variables.get("TERM_PROGRAM", "")
    if variables.get("TMUX") or variables.get("STY") or term.startswith(("screen", "tmux")):
        return None
    if term in ("xterm-kitty", "xterm-ghostty") or variables.get("KITTY_WINDOW_ID"):
        return "kitty"
    if program == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or term.startswith(("foot", "mlterm", "wezterm")):
        return "sixel"
    return None


def in_ci(variables: Mapping[str, str]) -> bool:
    """Whether a CI service runs siray (they all set CI, to true or 1)."""
    return variables.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def middle_cut(text: str, width: int) -> str:
    """`text` in `width` characters at most: its middle gives way to an ellipsis, the end (a
    file's name) keeping twice the room of the start."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def sanitize(text: str) -> str:
    """Text made safe for a terminal line: each control character shown as an escape, so a
    server's string can neither move the cursor nor forge a line of siray's."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def duration(seconds: int | None) -> str:
    """A length of time as people read it: 42s, 3m 5s, 2h 10m."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Output:
    def __init__(
        self, *, quiet: bool = False, debug: bool = False, environment: Environment | None = None
    ) -> None:
        self.quiet = quiet
        self.debug_enabled = debug
        self.json_mode = False
        self.environment = environment or Environment()
        self.secrets = Secrets()
        self._console: Console | None = None
        self._reader_gone = False
        # how hints spell siray (Session.command_prefix), once the invocation's settings are known,
        # and the commands whose meaning depends on the provider, host or profile
        self.prefix: Callable[[], str] | None = None
        self.commands: Sequence[str] = ()

    @property
    def stdout(self) -> TextIO:
        return self.environment.stdout

    @property
    def stderr(self) -> TextIO:
        return self.environment.stderr

    @property
    def stdout_is_tty(self) -> bool:
        return self.environment.isatty("stdout")

    @property
    def stderr_is_tty(self) -> bool:
        return self.environment.isatty("stderr")

    @property
    def interactive(self) -> bool:
        """Live displays only on a terminal, and never with --quiet."""
        dumb = self.environment.variables.get("TERM") == "dumb"
        return self.stderr_is_tty and not self.quiet and not dumb

    def preview_protocol(self, mode: str) -> str | None:
        """How `run` previews its images (see image_protocol), or None for no preview. `mode`
        is the preview setting: "never"; "always" (the terminal's protocol, else Sixel, on any
        stream); "auto": only on stderr's terminal when its support is known, never in CI,
        with --json or with -q."""
        if mode == "never":
            return None
        variables = self.environment.variables
        found = image_protocol(variables)
        if mode == "always":
            return found or "sixel"
        if self.json_mode or not self.interactive or in_ci(variables):
            return None
        return found

    def add_secret(self, secret: str | None) -> None:
        """A secret never shown (see scrub.Secrets)."""
        self.secrets.add(secret)

    def scrub(self, text: str) -> str:
        """Every secret, and every piece of one of 8 characters or more, replaced by ***."""
        return self.secrets.scrub(text)

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

    def data_link(self, line: str, target: str) -> None:
        """One line of data that is also a link to `target` (OSC 8, which terminals that draw
        images all follow; the text is the same, so a copy or a pipe reads the line as it is).
        Off a terminal, or for a target that is no plain URL, the line alone."""
        shown = sanitize(self.scrub(line))
        linkable = _LINKABLE.fullmatch(target) and self.scrub(target) == target
        if self._reader_gone or not self.stdout_is_tty or not linkable:
            self.data(line)
            return
        from rich.style import Style
        from rich.text import Text

        try:
            self.stdout_console().print(Text(shown, style=Style(link=target)), soft_wrap=True)
        except BrokenPipeError:
            self._reader_gone = True

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

    def report(
        self,
        exc: SirayError,
        task_id: str | None = None,
        *,
        document: bool = True,
        line: bool = True,
    ) -> None:
        """The one way an error is told: its message and hint on stderr (unless `line` is off:
        the command said it in its own words) and, with --json, its error object on stdout,
        unless the command puts `error_object` in its own document (`document=False`)."""
        if line:
            self._write(self.stderr, f"error: {cut(self.scrub(exc.message))}")
            if exc.hint:
                self._write(self.stderr, f"hint: {cut(self.scrub(self.respell(exc.hint)))}")
        if self.json_mode and document:
            if exc.records is not None:  # the command's own documents tell it
                for record in exc.records:
                    self.emit_json(record)
                return
            self.emit_json({"error": self.error_object(exc, task_id)})

    def respell(self, hint: str) -> str:
        """The hint with each siray command in it spelled with the root flags that chose this
        invocation's provider, host and profile, so that following it reaches the same ones."""
        if self.prefix is None:
            return hint
        try:
            prefix = self.prefix()
        except Exception:  # settings that cannot be read: the hint as it is, rather than none
            return hint
        if " " not in prefix or not self.commands:  # no root flags to add
            return hint
        # a siray command of those (not one already spelled with root flags) in the hint
        command = re.compile(
            rf"(?<![\w/.-])siray (?=(?:{'|'.join(map(re.escape, self.commands))})\b)"
        )
        return command.sub(lambda _: f"{prefix} ", hint)

    def error_object(self, exc: SirayError, task_id: str | None = None) -> dict[str, Any]:
        """The error object of the output contract: type, message, status, task id."""
        return {
            "type": exc.error_type,
            "message": cut(self.scrub(exc.message)),
            "status_code": exc.status_code,
            "task_id": exc.task_id or task_id,
        }

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
        squeeze: str | None = None,
        prose: Sequence[str] = (),
    ) -> None:
        """Rows as a rich table on a terminal, tab-separated lines on a pipe, and with --json
        `document` (or the rows as objects keyed by column). Every cell is scrubbed and
        sanitized; tabs and line breaks inside a cell become spaces on a pipe. On a terminal no
        cell wraps: the column `squeeze` (a path or URL) gives up its middle to fit the width,
        the `prose` columns wrap between words, and any other cell too wide is cut at its end
        (pipes and --json keep every value whole)."""
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

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            if column in prose:
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, no_wrap=True, overflow="ellipsis")
        cells = [[self.scrub(sanitize(cell)) for cell in row] for row in rows]
        if squeeze is not None:
            index = list(columns).index(squeeze)
            others = sum(
                max(len(name), *(len(row[at]) for row in cells))
                for at, name in enumerate(columns)
                if at != index
            )
            room = max(12, self.stdout_console().width - others - 2 * (len(columns) - 1))
            for row in cells:
                row[index] = middle_cut(row[index], room)
        for row in cells:
            table.add_row(*(Text(cell) for cell in row))
        if self._reader_gone:
            return
        try:
            self.stdout_console().print(table)
        except BrokenPipeError:
            self._reader_gone = True
