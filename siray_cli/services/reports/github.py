"""A report for GitHub Actions: a Markdown step summary (counts by state, the wall time, a table
of the lines that failed with their reasons and task ids, links to the outputs) and a workflow
command per failed line (`::error file=...,line=N::...`; `::warning` for a submit that got no
answer). Every string from a server or a batch file is escaped for where it goes: a fail reason
holding `::set-env` and line breaks stays one annotation's text, and Markdown or HTML in it
shows as text."""

from __future__ import annotations

import html
import re
import string
from typing import TYPE_CHECKING
from urllib.parse import quote

from siray_cli.services.reports import INTERRUPTED, clean_text

if TYPE_CHECKING:
    from siray_cli.services.reports import Case, Report

MAX_ROWS = 100  # rows of each table (a step summary holds 1 MiB at most)
CELL_LIMIT = 300  # characters of a cell's text
# ASCII punctuation Markdown may read, backslash-escaped; & < > are written as HTML entities
# first (so ; and & stay as they are: the entities are made of them)
_MARKDOWN = re.compile(
    "([" + re.escape(string.punctuation.translate({ord(c): None for c in "&;<>"})) + "])"
)
_WEB = re.compile(r"https?://\S+\Z", re.IGNORECASE)


def command_data(text: str) -> str:
    """A workflow command's message: no line break can end it, so nothing after it is read as
    another command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_property(text: str) -> str:
    """A workflow command's property value: also no `:` (which ends the properties) nor `,`."""
    return command_data(text).replace(":", "%3A").replace(",", "%2C")


def markdown_text(text: str, limit: int = CELL_LIMIT) -> str:
    """Text shown as it is in Markdown (a table cell too): on one line, cut to `limit`, HTML
    escaped, every Markdown punctuation character backslash-escaped (`|` included)."""
    text = " ".join(clean_text(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def markdown_link(url: str, label: str) -> str:
    """An http(s) URL as a link (every character that could end it percent-encoded); anything
    else as text."""
    if not _WEB.match(url):
        return markdown_text(url, 80)
    target = quote(url, safe="/:?#=&%+~-._!$*,;@")
    return f"[{markdown_text(label)}]({target})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n…and {len(rows) - MAX_ROWS} more")
    return [*lines, ""]


def _not_passed(report: Report) -> list[Case]:
    return [case for case in report.cases if case.outcome in ("failed", "error")]


def step_summary(report: Report) -> str:
    total = len(report.cases)
    ended = sum(1 for case in report.cases if case.kind != INTERRUPTED)
    passed, skipped = report.count("passed"), report.count("skipped")
    failed = len(_not_passed(report))
    lines = [f"### {markdown_text(report.title)}", ""]
    if report.interrupted:
        lines += [f"**Interrupted**: {ended} of {total} lines ended.", ""]
    lines += [
        f"**{passed + skipped} of {total} succeeded**"
        + (f" ({skipped} already, skipped)" if skipped else "")
        + f", {failed} did not, in {report.seconds:.1f} s",
        "",
    ]
    lines += _table(
        ["state", "lines"], [[markdown_text(s), str(n)] for s, n in report.states().items()]
    )
    if failed:
        rows = [
            [
                str(case.line) if case.line is not None else "",
                markdown_text(case.name),
                markdown_text(case.status),
                markdown_text(case.task_id or "-"),
                markdown_text(case.message),
            ]
            for case in _not_passed(report)
        ]
        lines += ["#### Did not succeed", ""]
        lines += _table(["line", "name", "state", "task", "reason"], rows)
    made = [case for case in report.cases if case.outputs]
    if made:
        rows = [
            [
                str(case.line) if case.line is not None else "",
                markdown_text(case.name),
                " ".join(markdown_link(url, str(n)) for n, url in enumerate(case.outputs, 1)),
            ]
            for case in made
        ]
        lines += ["#### Outputs", ""]
        lines += _table(["line", "name", "outputs"], rows)
    return "\n".join(lines) + "\n"


def annotations_of(report: Report) -> list[str]:
    """A workflow command per line that did not succeed (a line an interrupt stopped aside: the
    batch's own error says it): an error, or a warning for a submit that got no answer."""
    commands = []
    for case in _not_passed(report):
        if case.kind == INTERRUPTED:
            continue
        level = "warning" if case.uncertain else "error"
        where = []
        if report.source and case.line is not None:
            where += [f"file={command_property(report.source)}", f"line={case.line}"]
        where.append(f"title={command_property(f'siray: {case.name} {case.status}')}")
        task = f" (task {case.task_id})" if case.task_id else ""
        message = f"{case.name}{task}: {case.message}"
        commands.append(f"::{level} {','.join(where)}::{command_data(message)}")
    return commands
