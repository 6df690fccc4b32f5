"""`siray gallery`: one self-contained HTML page of tasks from the history (or from a batch's
results), to look at what was made from a browser, a `file://` link or a CI artifact.

The selection is read here (the history, results files); the page itself is a pure function of
the cards (page.py); writing it is one atomic replace. Nothing here prints."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siray_cli.errors import UsageError
from siray_cli.services.gallery.page import Card, Item, render_page

if TYPE_CHECKING:
    from siray_cli.services.session import Session
    from siray_cli.storage.records import Record

__all__ = [
    "Card",
    "Gallery",
    "Selection",
    "batch_page",
    "make_gallery",
    "render_page",
    "select_cards",
    "write_page",
]

UNCERTAIN = "UNCERTAIN"  # a submit whose answer never came (no task id): history's word
MAX_BAD_SHOWN = 5


@dataclass(frozen=True)
class Selection:
    """Which tasks a gallery shows: the ids given and the lines of results files (else the
    history), narrowed by the filters, at most `last` of them (newest first)."""

    task_ids: Sequence[str] = ()
    batches: Sequence[Path] = ()
    last: int | None = None
    since: float | None = None
    model: str | None = None
    states: Sequence[str] | None = None

    @property
    def from_history(self) -> bool:
        return not self.task_ids and not self.batches


@dataclass
class Gallery:
    """What `select_cards` found, and whether `last` cut it short."""

    cards: list[Card] = field(default_factory=list)
    cut_short: bool = False


def make_gallery(
    session: Session, selection: Selection, path: Path, clean: Callable[[str], str]
) -> Gallery:
    """The page of the tasks selected, written at `path`; `clean` scrubs every text shown (the
    credentials in effect are made known to it first: a page is shared, and holds no key)."""
    gallery = select_cards(session, selection)
    register_credentials(session)
    write_page(gallery.cards, path, clean)
    return gallery


def register_credentials(session: Session) -> None:
    """Each provider's credential, read so that the session's scrubbing knows it (a server that
    echoed a key into a failure reason, say, must not put it on a shared page)."""
    from siray_cli.errors import SirayError
    from siray_cli.providers import PROVIDERS

    for name in PROVIDERS:
        try:
            session.settings.for_provider(name).api_key  # noqa: B018 (reading it registers it)
        except SirayError:  # unusable: still registered before it was refused
            continue


def select_cards(session: Session, selection: Selection) -> Gallery:
    history = session.history
    if selection.from_history:
        found = history.query(
            limit=None if selection.last is None else selection.last + 1,
            states=selection.states,
            model=selection.model,
            since=selection.since,
        )
        cards = [card_of(record) for record in found]
    else:
        unknown = [t for t in dict.fromkeys(selection.task_ids) if history.find(t) is None]
        if unknown:
            raise UsageError(
                f"not in the history: {', '.join(unknown)}",
                hint="`siray history` lists the tasks siray knows",
            )
        records = [_record(history.find(t)) for t in dict.fromkeys(selection.task_ids)]
        cards = [card_of(record) for record in records]
        for path in selection.batches:
            cards += cards_of_results(session, read_results(path))
        cards = _unique(card for card in cards if _matches(card, selection))
        cards.sort(key=lambda card: -(card.submitted_at or 0.0))
    cut_short = selection.last is not None and len(cards) > selection.last
    return Gallery(cards[: selection.last] if cut_short else cards, cut_short)


def _record(record: Record | None) -> Record:
    assert record is not None  # checked above: every id is in the history
    return record


def _unique(cards: Iterable[Card]) -> list[Card]:
    """One card per task (a task in two results files, or given twice); lines that never got
    a task id are each their own."""
    seen: set[str] = set()
    kept = []
    for card in cards:
        if card.task_id is not None:
            if card.task_id in seen:
                continue
            seen.add(card.task_id)
        kept.append(card)
    return kept


def _matches(card: Card, selection: Selection) -> bool:
    if selection.model and selection.model.casefold() not in card.model.casefold():
        return False
    if selection.since is not None and (card.submitted_at or 0.0) < selection.since:
        return False
    return selection.states is None or card.state in selection.states


def card_of(record: Record) -> Card:
    """A task of the history as the page shows it: the request without its prompt and model is
    the task's inputs (data URLs already replaced by their size when it was recorded)."""
    request = record.request if isinstance(record.request, dict) else {}
    prompt = request.get("prompt")
    return Card(
        task_id=record.task_id,
        model=record.model,
        provider=record.provider,
        kind=record.kind,
        prompt=prompt if isinstance(prompt, str) else "",
        inputs={k: v for k, v in request.items() if k not in ("prompt", "model")},
        status=record.status if record.task_id else UNCERTAIN,
        state=record.state.value if record.task_id else UNCERTAIN,
        fail_reason=record.fail_reason,
        submitted_at=record.submitted_at,
        finished_at=record.finished_at,
        items=items(record.outputs, record.files),
        name=record.batch_name,
    )


def items(outputs: Sequence[str], files: Sequence[str]) -> list[Item]:
    """Each output with its saved file (files are named in the order of the outputs), the file
    kept only while it is on disk."""
    from itertools import zip_longest

    paired = []
    for url, file in zip_longest(outputs, files):
        on_disk = os.path.abspath(file) if file and Path(file).is_file() else None
        if url or on_disk:
            paired.append(Item(url or None, on_disk))
    return paired


# -- results files (what `run --batch --json` writes) ------------------------------------------

JOB_TYPES = ("result", "error")  # the records of one line; summary, interrupted... say no task


def read_results(path: Path) -> list[dict[str, Any]]:
    """The job records of a results file: JSON Lines of `run --batch` (`type` result or error;
    lines of older versions have no type). Any other line is refused, naming it (exit 2)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read results file {path}: {why}") from None
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(f"line {number}: not JSON")
            continue
        if not isinstance(record, dict):
            bad.append(f"line {number}: not a JSON object")
        elif record.get("type", "result") not in JOB_TYPES:
            continue
        elif not isinstance(record.get("task_id"), str | None) or not _lists_of_text(record):
            bad.append(f"line {number}: not a batch result (task_id, outputs, files)")
        else:
            records.append(record)
    if bad:
        more = f"; and {len(bad) - MAX_BAD_SHOWN} more" if len(bad) > MAX_BAD_SHOWN else ""
        raise UsageError(
            f"results file {path}: " + "; ".join(bad[:MAX_BAD_SHOWN]) + more,
            hint="give the JSON Lines that `siray run --batch FILE --json` prints",
        )
    return records


def _lists_of_text(record: dict[str, Any]) -> bool:
    return all(
        isinstance(value, list) and all(isinstance(item, str) for item in value)
        for value in (record.get("outputs", []), record.get("files", []))
    )


def cards_of_results(session: Session, records: Iterable[dict[str, Any]]) -> list[Card]:
    """A card per batch line: its task as the history knows it, else what the line says."""
    cards = []
    for record in records:
        task_id = record.get("task_id")
        known = session.history.find(task_id) if task_id else None
        cards.append(card_of(known) if known is not None else _card_of_line(record))
    return cards


def _card_of_line(record: dict[str, Any]) -> Card:
    error = record.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    status = str(record.get("status") or ("ERROR" if error else "UNKNOWN"))
    name = record.get("name")
    return Card(
        task_id=record.get("task_id"),
        model=str(record.get("model") or ""),
        provider=str(record.get("provider") or ""),
        kind="",
        prompt=str(record.get("prompt") or ""),
        inputs={},
        status=status,
        state=status.upper(),
        fail_reason=str(message or ""),
        submitted_at=None,
        finished_at=None,
        items=items(record.get("outputs") or [], record.get("files") or []),
        name=name if isinstance(name, str) else None,
    )


# -- the page on disk ----------------------------------------------------------------------------


def write_page(
    cards: Sequence[Card], path: Path, clean: Callable[[str], str] = lambda text: text
) -> Path:
    """The page written at `path` (its directory made), in one atomic replace: a reader never
    sees half a page. `clean` is applied to every text shown (the session's secrets scrubbed)."""
    import time

    try:
        if path.is_dir():
            raise UsageError(f"{path} is a directory", hint="give -o a file name, gallery.html")
        path.parent.mkdir(parents=True, exist_ok=True)
        page = render_page(cards, path, made_at=time.time(), clean=clean)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(page)
            os.chmod(temporary, 0o644)  # a page to share, as a browser or CI upload reads it
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def batch_page(
    session: Session,
    results: Iterable[dict[str, Any]],
    directory: Path,
    clean: Callable[[str], str],
) -> Path:
    """`run --batch -o DIR --gallery`: DIR/index.html of the lines that ended (their JSON
    records); `clean` as make_gallery's."""
    cards = _unique(cards_of_results(session, results))
    cards.sort(key=lambda card: -(card.submitted_at or 0.0))
    register_credentials(session)
    return write_page(cards, directory / "index.html", clean)
