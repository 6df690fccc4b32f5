"""A batch file's lines: JSON Lines or CSV read into jobs, every line built and checked before any
is paid for (all problems named at once), and each job's key, which identifies it in the
history whatever its place in the file."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from siray_cli.domain import TaskKind
from siray_cli.errors import BadLinesError, SirayError, UsageError
from siray_cli.names import safe_name
from siray_cli.services.ledger import fingerprint
from siray_cli.services.values import InputItem, check_input_value, load_json

FIELDS = ("model", "prompt", "inputs", "name", "provider")
BOM = "\ufeff"  # a byte-order mark, as editors on Windows write at the start of a file
MAX_REPORTED = 20


@dataclass
class Job:
    line: int
    model: str | None
    prompt: str | None
    inputs: dict[str, Any] = field(default_factory=dict)  # JSON Lines: typed values
    items: list[InputItem] = field(default_factory=list)  # CSV: text, typed by the schema
    name: str | None = None
    provider: str | None = None  # the line's own provider, else the one in effect


@dataclass
class PreparedJob:
    line: int
    name: str | None
    kind: TaskKind
    body: dict[str, Any]
    key: str  # identifies the job's content (and its rank among equal lines) in the history
    provider: str | None = None


def _bad(problems: list[str], what: str) -> BadLinesError:
    shown = problems[:MAX_REPORTED]
    more = f"; and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return BadLinesError(
        f"{what}: {len(problems)} bad line{'s' if len(problems) > 1 else ''}, nothing was "
        f"submitted: " + "; ".join(shown) + more,
        each_line(problems),
        hint='each line is {"model": ..., "prompt": ..., "inputs": {...}, "name": ...} '
        "(or a CSV row with a header)",
    )


def each_line(problems: list[str]) -> list[tuple[int | None, str]]:
    """ "line N: why" problems as (N, why); one that names no line as (None, it)."""
    lines: list[tuple[int | None, str]] = []
    for problem in problems:
        match = re.match(r"line (\d+): ", problem)
        if match:
            lines.append((int(match.group(1)), problem[match.end() :]))
        else:
            lines.append((None, problem))
    return lines


def read_jobs(text: str, source: str) -> list[Job]:
    """JSON Lines, or CSV with a header row (detected from the first non-blank line)."""
    jobs, problems = parse_jobs(text, source)
    if problems:
        raise _bad(problems, source)
    return jobs


def parse_jobs(text: str, source: str) -> tuple[list[Job], list[str]]:
    """The jobs that could be read, and a problem for each line that could not."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise UsageError(f"{source} holds no job")
    return (_read_jsonl if first.lstrip().startswith("{") else _read_csv)(text)


def _text_or_none(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _read_jsonl(text: str) -> tuple[list[Job], list[str]]:
    jobs, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            document = load_json(line)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            unknown = sorted(set(document) - set(FIELDS))
            if unknown:
                raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
            inputs = document.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise ValueError("inputs must be an object")
            jobs.append(
                Job(
                    number,
                    _text_or_none(document.get("model"), "model"),
                    _text_or_none(document.get("prompt"), "prompt"),
                    inputs=inputs,
                    name=_text_or_none(document.get("name"), "name"),
                    provider=_text_or_none(document.get("provider"), "provider"),
                )
            )
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                where = f"{exc.msg} at column {exc.colno}"
                problems.append(f"line {number}: not valid JSON ({where})")
            else:
                problems.append(f"line {number}: {exc}")
    return jobs, problems


def _read_csv(text: str) -> tuple[list[Job], list[str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        return [], [f"line {reader.line_num}: {exc}"]
    if not reader.fieldnames or "prompt" not in reader.fieldnames:
        return [], ["line 1: a CSV batch needs a header row with at least a prompt column"]
    jobs, problems = [], []
    for number, row in zip(_row_lines(text), rows, strict=False):
        if None in row:
            problems.append(f"line {number}: more cells than header columns")
            continue
        items = [
            InputItem(key, value)
            for key, value in row.items()
            if key not in FIELDS and key and value not in (None, "")
        ]
        try:
            for item in items:
                check_input_value(item.key, item.raw)
        except UsageError as exc:
            problems.append(f"line {number}: {exc.message}")
            continue
        jobs.append(
            Job(
                number,
                row.get("model") or None,
                row.get("prompt") or None,
                items=items,
                name=row.get("name") or None,
                provider=row.get("provider") or None,
            )
        )
    return jobs, problems


def _row_lines(text: str) -> list[int]:
    """The line number each CSV row starts on (a quoted cell may span lines; blank lines, which
    csv.DictReader skips, are not rows)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    numbers, previous = [], 0
    for row in reader:
        if row:
            numbers.append(previous + 1)
        previous = reader.line_num
    return numbers[1:]  # after the header


def _line_number(problem: str) -> int:
    match = re.match(r"line (\d+)", problem)
    return int(match.group(1)) if match else 0


def prepare_jobs(
    jobs: list[Job],
    build: Callable[[Job], tuple[TaskKind, dict[str, Any]]],
    source: str,
    unread: list[str] | None = None,
    identity: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body,
    names_files: bool = True,
) -> list[PreparedJob]:
    """Every line built and checked; any problem on any line (`unread`: those that could not
    even be read) fails the batch before a submit, all of them named at once. Each job's key is
    made from its body as `identity` gives it (the local files it names, by what they are) and
    from how many lines before it ask for the same. Names are unique where they name files
    (`names_files`: no name template does)."""
    prepared: list[PreparedJob] = []
    problems: list[str] = list(unread or [])
    names: dict[str, tuple[int, str]] = {}
    seen: dict[str, int] = {}  # a body's key -> lines with it so far
    for job in jobs:
        try:
            kind, body = build(job)
        except SirayError as exc:
            if not isinstance(exc, UsageError):
                raise
            problems.append(f"line {job.line}: {exc.message}")
            continue
        if job.name is not None and names_files:
            stem = safe_name(job.name).casefold()  # as a file name, on any file system
            if stem in names:
                first = names[stem]
                problems.append(
                    f"line {job.line}: name {job.name!r} gives the same file name as the name "
                    f"{first[1]!r} on line {first[0]}"
                    if first[1] != job.name
                    else f"line {job.line}: name {job.name!r} is already used on line {first[0]}"
                )
                continue
            names[stem] = (job.line, job.name)
        named = identity(body)
        plain = fingerprint(kind, named)
        earlier_lines = seen.get(plain, 0)
        seen[plain] = earlier_lines + 1
        key = fingerprint(kind, named, occurrence=earlier_lines) if earlier_lines else plain
        prepared.append(PreparedJob(job.line, job.name, kind, body, key, provider=job.provider))
    if problems:
        problems.sort(key=_line_number)
        raise _bad(problems, source)
    return prepared


def read_source(source: str, stdin: TextIO) -> tuple[str, str]:
    """The batch file's text (or standard input's, for `-`), and how to name it in messages."""
    if source == "-":
        return stdin.read().removeprefix(BOM), "standard input"
    try:
        return Path(source).read_text(encoding="utf-8-sig"), source
    except FileNotFoundError:
        raise UsageError(f"batch file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read batch file {source}: {exc}") from None


def label(line: int, name: str | None) -> str:
    return f"line {line}" + (f" ({name})" if name else "")


def in_shard(key: str, index: int, count: int) -> bool:
    """Whether the job of `key` is in shard `index` (1-based) of `count`: decided by its key
    alone (the line's content and its rank among equal lines), so a line stays in its shard
    wherever it moves in the file and whatever lines are added; N shards are the batch."""
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count == index - 1
