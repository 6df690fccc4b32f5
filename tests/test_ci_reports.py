"""`run`'s reports for CI: a JUnit XML file (--junit) valid against the schema CI reporters read
(tests/data/junit.xsd), and on GitHub Actions a Markdown step summary and an annotation per
failed line, with every server string escaped for where it goes; written when a batch is
interrupted too."""

from __future__ import annotations

import os
import re
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from helpers import CREATE, STATUS, created, start, write_jobs
from helpers import GEMINI_IMAGE as MODEL
from hostile import HostileServer, status_document, task_created

from siray_cli.emulator.faults import Fault

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit.xsd")
HOSTILE_REASON = (
    "::set-env name=X::Y\n::error::pwned\r\n<script>alert(1)</script> a|b \\| 100% "
    "**bold** [x](javascript:alert(1)) \x1b[31mred\x00\x07 & done"
)


def junit(path: Path) -> ET.Element:
    """The report, checked against the schema; its <testsuites> root."""
    SCHEMA.validate(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return root


def suite_counts(root: ET.Element) -> dict[str, str]:
    suite = root.find("testsuite")
    assert suite is not None
    return {k: suite.get(k, "") for k in ("tests", "failures", "errors", "skipped")}


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in root.iter("testcase")}


def github(tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def annotations(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("::")]


def test_a_batch_report_counts_passed_failed_and_resumed_lines(siray, emu, tmp_path):
    owl = {"prompt": "ci owl", "name": "owl"}
    fox = {"prompt": "[fail] ci fox"}
    jobs = write_jobs(tmp_path / "jobs.jsonl", owl, fox)
    first = siray("run", "--batch", str(jobs), "-m", MODEL, "-o", str(tmp_path / "out"))
    assert first.exit_code == 1, first
    jobs = write_jobs(tmp_path / "jobs.jsonl", owl, fox, {"prompt": "ci hen", "name": "hen"})
    report = tmp_path / "reports" / "junit.xml"
    report.parent.mkdir()
    again = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "-o", str(tmp_path / "out"), "--resume",
        "--junit", str(report), env=github(tmp_path),
    )  # fmt: skip
    assert again.exit_code == 1, again
    root = junit(report)
    assert suite_counts(root) == {"tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    by_name = cases(root)
    assert set(by_name) == {"owl", "line 2", "hen"}
    assert all(case.get("classname") == MODEL for case in by_name.values())
    assert by_name["owl"].find("skipped") is not None
    assert list(by_name["hen"]) == [by_name["hen"].find("system-out")]  # passed, with its task
    failure = by_name["line 2"].find("failure")
    assert failure is not None and failure.get("type") == "task_failed"
    fox_task = max(
        (t for t in emu.state.tasks.values() if t.body.get("prompt") == fox["prompt"]),
        key=lambda t: t.created,
    ).task_id
    assert fox_task in failure.get("message", "") and "[fail]" in failure.get("message", "")
    # GitHub: the step summary counts by state and names the failed line; one annotation for it
    summary = (tmp_path / "summary.md").read_text()
    assert "| FAILURE | 1 |" in summary and "| SUCCESS | 2 |" in summary
    shown_id = fox_task.replace("_", "\\_")  # Markdown-escaped
    assert f"\n| 2 | line 2 | FAILURE | {shown_id} | emulator\\: the prompt" in summary
    assert "[1](http" in summary  # the outputs, linked
    assert annotations(again.stderr) == [
        f"::error file={jobs},line=2,title=siray%3A line 2 FAILURE::line 2 (task {fox_task}): "
        "emulator: the prompt asked for a failure ([fail])"
    ]
    # the one-line summary is the last thing on stderr, and stdout holds only the records
    assert again.stderr.splitlines()[-1].startswith(
        "batch: 2 succeeded (1 already, skipped), 1 failed"
    )
    assert all(line.startswith("{") for line in again.stdout.splitlines())


def test_hostile_fail_reasons_are_escaped_in_every_report(siray, tmp_path):
    server = HostileServer()
    server.on("POST", CREATE, task_created("image_evil"))
    server.on(
        "GET", STATUS.format("image_evil"),
        status_document("image_evil", "FAILURE", fail_reason=HOSTILE_REASON, progress=100),
    )  # fmt: skip
    jobs = write_jobs(tmp_path / "jobs, with: a comma.jsonl", {"prompt": "p", "name": "x|<i>y"})
    report = tmp_path / "junit.xml"
    with server.running():
        result = siray(
            "run", "--batch", str(jobs), "-m", MODEL, "--no-validate", "--junit", str(report),
            env={**server.env(), **github(tmp_path)},
        )  # fmt: skip
    assert result.exit_code == 1, result
    # one annotation, its message on one line: no `::set-env` nor `::error` of the server's
    found = annotations(result.stderr)
    assert len(found) == 1, result.stderr
    assert found[0].startswith(
        "::error file=" + str(jobs).replace(":", "%3A").replace(",", "%2C") + ",line=1,"
    )
    assert "::set-env name=X::Y%0A::error::pwned%0D%0A" in found[0]
    assert "100%25" in found[0] and "\x1b" not in result.stderr and "\x00" not in result.stderr
    # the summary: HTML escaped, pipes and Markdown escaped, one line per row
    summary = (tmp_path / "summary.md").read_text()
    assert "<script>" not in summary and "&lt;script&gt;" in summary
    assert "<i>" not in summary and "](javascript" not in summary and "**bold**" not in summary
    row = next(line for line in summary.splitlines() if line.startswith("| 1 |"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 6  # five cells: no pipe of the server's splits one
    assert "pwned" in row and "x\\|&lt;i&gt;y" in row
    assert "\x1b" not in summary and "\x00" not in summary and "\x07" not in summary
    # the JUnit report: the reason whole, but for the characters XML cannot hold
    failure = junit(report).find("testsuite/testcase/failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "<script>alert(1)</script> a|b" in message and "::set-env name=X::Y\n" in message
    assert "\x1b" not in message and "\x00" not in message and "[31mred & done" in message


def test_a_submit_without_an_answer_is_a_warning(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "ci dropped create", "name": "dropped"})
    emu.state.faults.add(Fault(action="drop", method="POST", path=CREATE, count=1))
    report = tmp_path / "junit.xml"
    result = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "--junit", str(report), env=github(tmp_path)
    )
    assert result.exit_code == 1, result
    [annotation] = annotations(result.stderr)
    assert annotation.startswith(f"::warning file={jobs},line=1,title=siray%3A dropped ")
    error = junit(report).find("testsuite/testcase/error")
    assert error is not None and error.get("type") == "submit_uncertain"


def test_sigint_mid_batch_still_writes_the_report(emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "sigint quick", "name": "quick"},
        {"prompt": "[hold] sigint held", "name": "held"},
        {"prompt": "sigint never", "name": "never"},
    )
    report = tmp_path / "junit.xml"
    process = start(
        emu, "run", "--batch", str(jobs), "-m", MODEL, "--concurrency", "1",
        "--junit", str(report),
    )  # fmt: skip
    assert process.stderr is not None
    while True:
        line = process.stderr.readline()
        assert line, "siray ended early"
        if "(held)" in line and "submitted" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 130, rest
    root = junit(report)
    assert suite_counts(root) == {"tests": "3", "failures": "0", "errors": "2", "skipped": "0"}
    by_name = cases(root)
    assert by_name["quick"].find("error") is None and by_name["quick"].find("failure") is None
    held, never = by_name["held"].find("error"), by_name["never"].find("error")
    assert held is not None and never is not None
    held_id = next(
        t.task_id for t in emu.state.tasks.values() if t.body["prompt"] == "[hold] sigint held"
    )
    assert held.get("type") == "interrupted" and f"task {held_id} keeps running" in held.get(
        "message", ""
    )
    assert never.get("type") == "interrupted" and never.get("message") == "not run: interrupted"


def test_a_single_run_reports_its_task(siray, tmp_path):
    report = tmp_path / "run.xml"
    ok = siray("run", MODEL, "ci single", "--junit", str(report), env=github(tmp_path))
    assert ok.exit_code == 0, ok
    root = junit(report)
    assert suite_counts(root) == {"tests": "1", "failures": "0", "errors": "0", "skipped": "0"}
    assert annotations(ok.stderr) == []
    failed = siray("run", MODEL, "[fail] ci single", "--junit", str(report), env=github(tmp_path))
    assert failed.exit_code == 1, failed
    root = junit(report)
    assert suite_counts(root)["failures"] == "1"
    (case,) = root.iter("testcase")
    assert case.get("classname") == MODEL and case.get("name") == "siray run"
    [annotation] = annotations(failed.stderr)
    assert annotation.startswith("::error title=siray%3A siray run FAILURE::siray run (task ")
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("### siray run") == 2  # appended, each run its own


def test_a_report_path_is_checked_before_anything_is_paid(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "never paid"})
    before = created(emu)
    for path in (tmp_path / "missing" / "j.xml", tmp_path):
        result = siray("run", "--batch", str(jobs), "-m", MODEL, "--junit", str(path))
        assert result.exit_code == 2, result
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 2
    single = siray("run", MODEL, "never paid", "--junit", str(tmp_path / "missing" / "j.xml"))
    assert single.exit_code == 2
    assert created(emu) == before


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW")
def test_reports_never_write_through_a_planted_symlink(siray, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "junit.xml").symlink_to(victim)
    (tmp_path / "summary.md").symlink_to(victim)
    result = siray(
        "run", MODEL, "ci symlink", "--junit", str(tmp_path / "junit.xml"), env=github(tmp_path)
    )
    assert result.exit_code == 0, result
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "junit.xml").is_symlink()  # replaced by the report itself
    junit(tmp_path / "junit.xml")
    assert "warning: cannot add to GITHUB_STEP_SUMMARY" in result.stderr
