"""Live progress on a terminal (rich, on stderr); one plain line per change everywhere else.

CI logs stay readable: off a terminal nothing animates, and each state change is one line.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from siray_cli.domain import Task
from siray_cli.output import Output, sanitize

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def shown(text: str) -> str:
    """Text from a server (or a batch file) in a rich cell: control characters escaped, and
    markup (`[bold]`, `[/]`) shown as written, never interpreted."""
    from rich.markup import escape

    return escape(sanitize(text))


def task_columns(bar: Any) -> list[Any]:
    """The columns of a task's row, the same for `run`, `status --wait` and a batch: spinner,
    name, state, bar (pulsing while the provider tells no progress), `45%` (or `3/10` for a
    batch's overall row), and the task's age: since its submit, for a task rejoined too."""
    import math
    import time

    from rich.progress import ProgressColumn, SpinnerColumn, TextColumn
    from rich.text import Text

    class Amount(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            if task.fields.get("count"):
                return Text(f"{int(task.completed)}/{int(task.total)}")
            return Text(f"{task.percentage:>3.0f}%")

    class State(ProgressColumn):
        """The state word; for a submit held back by the concurrency limit, a countdown to its
        next try and to when the wait gives up (drawn anew at each refresh). Never wrapped."""

        def __init__(self) -> None:
            from rich.table import Column

            super().__init__(table_column=Column(no_wrap=True))

        def render(self, task: Any) -> Text:
            text = Text.from_markup(f"[bold]{task.fields['state']}[/]")
            next_try = task.fields.get("next_try")
            if next_try is not None:
                text.append(f" · try in {max(0, math.ceil(next_try - time.monotonic()))}s")
                gives_up = task.fields.get("gives_up")
                if gives_up is not None:
                    left = max(0, int(gives_up - time.monotonic()))
                    text.append(f" · gives up in {left // 60}:{left % 60:02d}")
            return text

    class Age(ProgressColumn):
        def render(self, task: Any) -> Text:
            since = task.fields.get("since")
            seconds = time.time() - since if since else (task.elapsed or 0)
            minutes, secs = divmod(int(max(0.0, seconds)), 60)
            hours, minutes = divmod(minutes, 60)
            return Text(f"{hours}:{minutes:02d}:{secs:02d}", style="progress.elapsed")

    return [
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        State(),
        bar(),
        Amount(),
        Age(),
    ]


def row_update(status: Task) -> dict[str, Any]:
    """A row's new bar and state: full on success, the provider's percentage while it tells
    one, else a pulsing bar (Higgsfield tells none: an empty bar at 0% said nothing)."""
    state = shown(status.status)
    if status.is_terminal and not status.succeeded:
        state = f"[red]{state}[/]"
    if status.succeeded:
        return {"total": 100, "completed": 100, "state": state}
    if status.progress is None:
        return {"total": 100 if status.is_terminal else None, "state": state}
    return {"total": 100, "completed": status.progress, "state": state}


def describe(status: Task) -> str:
    """A state change as one line (a failure's reason is told once, by the final report)."""
    text = status.status
    if status.progress is not None and not status.is_terminal:
        text += f" {status.progress}%"
    return text


class TaskDisplay:
    """Shows the state of the tasks being waited for."""

    def __enter__(self) -> TaskDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def update(self, status: Task) -> None:
        raise NotImplementedError

    def note(self, message: str) -> None:
        """A line for people while the display runs (a file saved as its task ended)."""
        raise NotImplementedError


class LineTaskDisplay(TaskDisplay):
    """One line on stderr when a task's status or progress changes."""

    def __init__(self, output: Output) -> None:
        self._output = output
        self._seen: dict[str, tuple[str, int | None]] = {}

    def update(self, status: Task) -> None:
        key = (status.status, status.progress)
        if self._seen.get(status.task_id) == key:
            return
        self._seen[status.task_id] = key
        self._output.info(f"{status.task_id}: {describe(status)}")

    def note(self, message: str) -> None:
        self._output.info(message)


class RichTaskDisplay(TaskDisplay):
    """Spinner, status word, bar with percent, elapsed time: one row per task."""

    def __init__(
        self, output: Output, task_ids: list[str], since: dict[str, float] | None = None
    ) -> None:
        from rich.progress import BarColumn, Progress

        self._output = output
        self._progress: Progress = Progress(
            *task_columns(BarColumn), console=output.console(), transient=False
        )
        self._rows: dict[str, TaskID] = {
            task_id: self._progress.add_task(
                shown(task_id), total=None, state="SUBMITTED", since=(since or {}).get(task_id)
            )
            for task_id in task_ids
        }

    def __enter__(self) -> RichTaskDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def update(self, status: Task) -> None:
        row = self._rows.get(status.task_id)
        if row is None:
            row = self._rows[status.task_id] = self._progress.add_task(
                shown(status.task_id), total=None, state="", since=None
            )
        self._progress.update(row, **row_update(status))
        if status.is_terminal:
            self._progress.stop_task(row)

    def note(self, message: str) -> None:
        from rich.text import Text

        self._progress.console.print(Text(self._output.scrub(message)))  # above the rows


def task_display(
    output: Output, task_ids: list[str], since: dict[str, float] | None = None
) -> TaskDisplay:
    """`since`: when each task was submitted (epoch seconds), where it is known, for its age."""
    if output.interactive:
        return RichTaskDisplay(output, task_ids, since)
    return LineTaskDisplay(output)


_Display = TypeVar("_Display", bound="_OptionalLive")

HELD = "HELD"  # a submit the provider's concurrency limit refused: nothing was created


class HoldCountdown:
    """While `run` or `generate` waits out the provider's concurrency limit, a live row on a
    terminal: the time to the next try and to when the wait gives up; gone once admitted.
    `on_hold` is None off a terminal (lines every 30 s say it there)."""

    def __init__(self, output: Output, what: str = "request") -> None:
        self._output = output
        self._what = what
        self._progress: Progress | None = None
        self._row: TaskID | None = None
        self.on_hold = self._on_hold if output.interactive else None

    def _on_hold(self, next_try: float, gives_up: float | None) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, Progress

            spinner, name, state, _bar, _amount, age = task_columns(BarColumn)
            self._progress = Progress(  # no bar: nothing is under way yet
                spinner, name, state, age, console=self._output.console(), transient=True
            )
            self._row = self._progress.add_task(
                shown(self._what), total=None, state=HELD, since=None
            )
            self._progress.start()
        assert self._row is not None
        self._progress.update(self._row, next_try=next_try, gives_up=gives_up)

    def __enter__(self) -> HoldCountdown:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _speed_column(base: Any) -> Any:
    """Rich's transfer speed, blank (rather than "?") until there is one to show."""

    class Speed(base):  # type: ignore[misc]
        def render(self, task: Any) -> Any:
            from rich.text import Text

            return super().render(task) if task.speed is not None else Text("")

    return Speed()


class _OptionalLive:
    """A display whose rich Progress exists only on a terminal."""

    _progress: Progress | None

    def __enter__(self: _Display) -> _Display:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


class TransferDisplay(_OptionalLive):
    """Byte progress of transfers: a bar per file on a terminal, a line per file off it."""

    def __init__(self, output: Output) -> None:
        self._output = output
        self._progress: Progress | None = None
        if output.interactive:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                _speed_column(TransferSpeedColumn),
                TimeRemainingColumn(),
                console=output.console(),
            )

    def row(self) -> TransferRow:
        return TransferRow(self._output, self._progress)

    def total(self, name: str, size: int | None) -> TransferRow:
        """A row that adds up the others (several files at once)."""
        row = TransferRow(self._output, self._progress)
        row.start(name, size)
        return row


class TransferRow:
    """One file's bar, added when its size is known."""

    def __init__(
        self, output: Output, progress: Progress | None, parent: TransferRow | None = None
    ) -> None:
        self._output = output
        self._progress = progress
        self._task: TaskID | None = None
        self._parent = parent

    def child(self) -> TransferRow:
        return TransferRow(self._output, self._progress, parent=self)

    def start(self, name: str, total: int | None) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(shown(name), total=total)

    def advance(self, count: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)
        if self._parent is not None:
            self._parent.advance(count)

    def done(self, message: str) -> None:
        if self._progress is None:
            self._output.info(message)


class BatchDisplay(_OptionalLive):
    """A batch: an overall bar (done, failed, running of total) and a live row per running task
    on a terminal; one line per change on stderr elsewhere. Called from worker threads."""

    def __init__(self, output: Output, total: int) -> None:
        import threading

        self._output = output
        self._total = total
        self._lock = threading.Lock()
        self._done = self._failed = self._running = 0
        self._seen: dict[str, tuple[str, int | None]] = {}
        self._progress: Progress | None = None
        self._rows: dict[str, TaskID] = {}
        self.counts_down = output.interactive
        if output.interactive:
            from rich.progress import BarColumn, Progress

            self._progress = Progress(*task_columns(BarColumn), console=output.console())
            self._overall = self._progress.add_task(
                "batch", total=total, state=self._counts(), count=True, since=None
            )

    def _counts(self) -> str:
        return f"done {self._done} · failed {self._failed} · running {self._running}"

    def started(
        self, label: str, task_id: str, since: float | None = None, rejoined: bool = False
    ) -> None:
        """A line's task is under way: submitted now, or an earlier attempt's task `rejoined`
        (never told as submitted: nothing was paid for it now)."""
        word = "rejoined" if rejoined else "submitted"
        with self._lock:
            self._drop_held(label)
            self._running += 1
            if self._progress is not None:
                self._rows[task_id] = self._progress.add_task(
                    shown(f"{label} {task_id}"), total=None, state=word.upper(), since=since
                )
                self._progress.update(self._overall, state=self._counts())
            else:
                self._output.info(f"{label} {task_id}: {word}")

    def held(self, label: str, next_try: float, gives_up: float | None) -> None:
        """A line's submit waits out the provider's concurrency limit: a row counting down to
        its next try (on a terminal; the runner's lines say it elsewhere)."""
        with self._lock:
            if self._progress is None:
                return
            key = f"held {label}"
            if key not in self._rows:
                self._rows[key] = self._progress.add_task(
                    shown(label), total=None, state=HELD, since=None
                )
            self._progress.update(self._rows[key], next_try=next_try, gives_up=gives_up)

    def _drop_held(self, label: str) -> None:
        row = self._rows.pop(f"held {label}", None)
        if row is not None and self._progress is not None:
            self._progress.remove_task(row)

    def update(self, label: str, status: Task) -> None:
        with self._lock:
            key = (status.status, status.progress)
            if self._seen.get(status.task_id) == key:
                return
            self._seen[status.task_id] = key
            row = self._rows.get(status.task_id)
            if self._progress is not None and row is not None:
                self._progress.update(row, **row_update(status))
            elif self._progress is None and not status.is_terminal:
                self._output.info(f"{label} {status.task_id}: {describe(status)}")

    def finished(
        self, label: str, task_id: str | None, ok: bool, summary: str, was_running: bool
    ) -> None:
        with self._lock:
            self._drop_held(label)
            self._running -= 1 if was_running else 0
            if ok:
                self._done += 1
            else:
                self._failed += 1
            if self._progress is not None:
                row = self._rows.pop(task_id or "", None)
                if row is not None:
                    self._progress.remove_task(row)
                self._progress.update(self._overall, advance=1, state=self._counts())
            else:  # on a terminal, the result line on stdout says it already
                self._output.info(" ".join(filter(None, [label, task_id])) + f": {summary}")
