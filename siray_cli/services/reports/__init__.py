"""Reports of a run for CI: a JUnit XML file (`--junit`) and, on GitHub Actions, a Markdown step
summary and an annotation per failed line. Built from a batch's outcome (or `run`'s one task) as
one neutral Report; junit.py and github.py render it, escaping every string a server or a batch
file gave for where it goes. Imported only when a report is asked for (start-up stays light)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siray_cli.domain import Task
    from siray_cli.services.batch import BatchOutcome
    from siray_cli.services.batch.job import JobResult

# what a report's text never holds: what XML 1.0 forbids (C0 controls but tab and line breaks,
# lone surrogates, U+FFFE/U+FFFF), DEL and C1 controls, and the invisible or reordering
# characters that make text read otherwise than it is (bidirectional controls, zero widths)
_UNSHOWABLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u061c\u200b\u200c\u200e"
    "\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
FAILED = ("task_failed", "task_cancelled", "timeout")  # the task's own end: a <failure>
INTERRUPTED = "interrupted"
UNCERTAIN = "submit_uncertain"  # AmbiguousSubmitError's type


def clean_text(text: str) -> str:
    """Text with every character a report cannot hold removed (see _UNSHOWABLE)."""
    return _UNSHOWABLE.sub("", text)


@dataclass
class Case:
    """One line of a batch (or `run`'s one task) as a report tells it. `outcome`: passed,
    failed (the task failed, was cancelled or timed out), error (anything else, such as a
    submit without an answer or a line interrupted) or skipped (done already, --resume)."""

    name: str
    model: str
    outcome: str
    status: str  # the line's final state word (SUCCESS, FAILURE, UNCERTAIN, ...)
    seconds: float
    line: int | None = None
    task_id: str | None = None
    kind: str = ""  # why it did not pass, as an error type (task_failed, timeout, ...)
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def uncertain(self) -> bool:
        """A submit that got no answer (now, or in an earlier run): it may have made a task."""
        return self.status == "UNCERTAIN" or self.kind == UNCERTAIN


@dataclass
class Report:
    title: str  # what ran: `siray run --batch jobs.jsonl`
    cases: list[Case]
    started: float  # epoch seconds
    seconds: float
    source: str | None = None  # the batch file the lines are in (None: stdin, or no batch)
    interrupted: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for case in self.cases if case.outcome == outcome)

    def states(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for case in self.cases:
            counted[case.status] = counted.get(case.status, 0) + 1
        return dict(sorted(counted.items()))


def batch_report(
    outcome: BatchOutcome, source: str, scrub: Callable[[str], str] = lambda text: text
) -> Report:
    """A batch's outcome, every planned line in it: a line without a result (an interrupted
    batch) is an error, "not run: interrupted", or "interrupted: task ... keeps running"."""
    results = {result.line: result for result in outcome.results}
    lines = outcome.lines or []
    known = {planned.line for planned in lines}
    cases = [
        _case(results[planned.line], planned.model, scrub)
        if planned.line in results
        else _interrupted(planned.line, planned.name, planned.model, outcome.running, scrub)
        for planned in lines
    ]
    cases += [_case(r, "", scrub) for r in outcome.results if r.line not in known]
    return Report(
        title=clean_text(f"siray run --batch {scrub(source)}"),
        cases=cases,
        started=outcome.started,
        seconds=outcome.seconds,
        source=None if source == "-" else clean_text(scrub(source)),
        interrupted=outcome.interrupted,
    )


def line_name(line: int, name: str | None) -> str:
    return name or f"line {line}"


def _case(result: JobResult, model: str, scrub: Callable[[str], str]) -> Case:
    def text(value: str) -> str:
        return clean_text(scrub(value))

    error = result.error or {}
    if result.resumed == "skipped":
        outcome, message = "skipped", "succeeded already: skipped (--resume)"
    elif result.ok:
        outcome, message = "passed", ""
    else:
        kind = str(error.get("type") or "error")
        outcome = "failed" if kind in FAILED else "error"
        message = str(error.get("message") or result.status)
    return Case(
        name=text(line_name(result.line, result.name)),
        model=text(model),
        outcome=outcome,
        status=text(result.status),
        seconds=result.seconds or 0.0,
        line=result.line,
        task_id=text(result.task_id) if result.task_id else None,
        kind=text(str(error.get("type") or "")),
        message=text(message),
        outputs=[text(url) for url in result.outputs],
        files=[text(path) for path in result.files],
    )


def _interrupted(
    line: int,
    name: str | None,
    model: str,
    running: Mapping[int, str],
    scrub: Callable[[str], str],
) -> Case:
    task_id = running.get(line)
    message = (
        f"interrupted: task {task_id} keeps running (resume the batch to follow it)"
        if task_id
        else "not run: interrupted"
    )
    return Case(
        name=clean_text(scrub(line_name(line, name))),
        model=clean_text(scrub(model)),
        outcome="error",
        status="RUNNING" if task_id else "NOT_RUN",
        seconds=0.0,
        line=line,
        task_id=clean_text(scrub(task_id)) if task_id else None,
        kind=INTERRUPTED,
        message=clean_text(scrub(message)),
    )


def run_report(
    model: str,
    *,
    started: float,
    seconds: float,
    task_id: str | None,
    task: Task | None,
    files: list[Path],
    error: tuple[str, str] | None,
    scrub: Callable[[str], str] = lambda text: text,
) -> Report:
    """`siray run`'s one task as a one-line report (`error`: its type and message, if any)."""

    def text(value: str) -> str:
        return clean_text(scrub(value))

    if error is None:
        outcome, kind, message = "passed", "", ""
    else:
        kind, message = error
        outcome = "failed" if kind in FAILED else "error"
    status = task.status if task is not None else ("ERROR" if error else "SUCCESS")
    took = task.took if task is not None else None
    case = Case(
        name="siray run",
        model=text(model),
        outcome=outcome,
        status=text(status),
        seconds=float(took) if took is not None else seconds,
        task_id=text(task_id) if task_id else None,
        kind=text(kind),
        message=text(message),
        outputs=[text(url) for url in (task.urls if task is not None else [])],
        files=[text(str(path)) for path in files],
    )
    return Report(f"siray run {text(model)}", [case], started, seconds)


def github_actions(variables: Mapping[str, str]) -> bool:
    return variables.get("GITHUB_ACTIONS") == "true"


def publish(
    report: Report, junit: Path | None, variables: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Write the JUnit file (if asked for) and, on GitHub Actions, append the step summary.
    Returns the workflow commands (annotations) to print on stderr, and what could not be
    written (each file is tried whatever became of the other)."""
    from siray_cli.storage.artifacts import append_to, replace_with

    problems = []
    if junit is not None:
        from siray_cli.services.reports.junit import junit_xml

        try:
            replace_with(junit, junit_xml(report))
        except OSError as exc:
            problems.append(f"cannot write the JUnit report {junit}: {exc.strerror or exc}")
    annotations: list[str] = []
    if github_actions(variables):
        from siray_cli.services.reports.github import annotations_of, step_summary

        annotations = annotations_of(report)
        summary = variables.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                append_to(Path(summary), step_summary(report))
            except OSError as exc:
                problems.append(f"cannot add to GITHUB_STEP_SUMMARY: {exc.strerror or exc}")
    return annotations, problems
