"""A report as JUnit XML, the shape Jenkins, GitLab and GitHub's test reporters read:
<testsuites> holding one <testsuite> (its counts, wall time and start), a <testcase> per line
(name, classname: the model, time) holding a <failure>, <error> or <skipped> when it did not
pass, and <system-out> with its task id, outputs and files. Made with ElementTree, which escapes
every value; the characters XML 1.0 forbids were removed when the report was built."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siray_cli.services.reports import Case, Report

ELEMENT = {"failed": "failure", "error": "error"}


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _detail(case: Case) -> str:
    """What a test case says on its own: its state, its task, why it did not pass."""
    lines = [f"state: {case.status}"]
    if case.line is not None:
        lines.append(f"line: {case.line}")
    if case.task_id:
        lines.append(f"task: {case.task_id}")
    if case.message:
        lines.append(f"reason: {case.message}")
    return "\n".join(lines)


def _message(case: Case) -> str:
    if case.task_id and case.task_id not in case.message:
        return f"task {case.task_id} ended {case.status}: {case.message}"
    return case.message


def junit_xml(report: Report) -> bytes:
    import xml.etree.ElementTree as ET
    from datetime import datetime, timezone

    counts = {
        "tests": str(len(report.cases)),
        "failures": str(report.count("failed")),
        "errors": str(report.count("error")),
        "skipped": str(report.count("skipped")),
        "time": _seconds(report.seconds),
    }
    root = ET.Element("testsuites", {"name": report.title, **counts})
    started = datetime.fromtimestamp(report.started or 0, timezone.utc)
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": report.title, **counts, "timestamp": started.strftime("%Y-%m-%dT%H:%M:%S")},
    )
    for case in report.cases:
        test = ET.SubElement(
            suite,
            "testcase",
            {"name": case.name, "classname": case.model or "siray", "time": _seconds(case.seconds)},
        )
        if case.outcome in ELEMENT:
            problem = ET.SubElement(
                test, ELEMENT[case.outcome], {"message": _message(case), "type": case.kind}
            )
            problem.text = _detail(case)
        elif case.outcome == "skipped":
            ET.SubElement(test, "skipped", {"message": case.message})
        said = [f"task: {case.task_id}"] if case.task_id else []
        said += [f"output: {url}" for url in case.outputs]
        said += [f"file: {path}" for path in case.files]
        if said:
            ET.SubElement(test, "system-out").text = "\n".join(said)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
