"""The output sink on an Environment built by the test (no process): data to stdout, people to
stderr, live displays only on a terminal, and the one error report in both modes."""

from __future__ import annotations

import io
import json

import pytest

from siray_cli.environment import Environment
from siray_cli.errors import NotCancelledError, UsageError
from siray_cli.output import Output
from siray_cli.services.inputs import StdinOnce


def sink(**terminals: bool) -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    variables = {"TERM": (terminals.pop("dumb", False) and "dumb") or "xterm"}
    environment = Environment(stdout=out, stderr=err, variables=variables, terminals=terminals)
    return Output(environment=environment), out, err


def test_live_displays_only_on_a_terminal_that_is_not_dumb():
    assert sink(stderr=True)[0].interactive
    assert not sink(stderr=False)[0].interactive
    assert not sink(stderr=True, dumb=True)[0].interactive
    quiet, _, _ = sink(stderr=True)
    quiet.quiet = True
    assert not quiet.interactive


def test_an_error_is_one_line_for_people_and_one_object_for_scripts():
    refused = NotCancelledError("task t1 had already ended\x1b[2J", hint="nothing to do")
    output, out, err = sink()
    output.add_secret("sk-SECRET-0123456789")
    output.report(refused)
    assert err.getvalue() == "error: task t1 had already ended\\x1b[2J\nhint: nothing to do\n"
    assert out.getvalue() == ""

    output.json_mode = True
    output.report(refused, "t1")
    assert json.loads(out.getvalue()) == {
        "error": {
            "type": "not_cancelled",
            "message": "task t1 had already ended\x1b[2J",
            "status_code": None,
            "task_id": "t1",
        }
    }


def test_standard_input_is_read_once_from_the_environment():
    stdin = StdinOnce(io.StringIO("a prompt from a pipe"))
    assert stdin.read("the prompt") == "a prompt from a pipe"
    with pytest.raises(UsageError, match="already used for the prompt"):
        stdin.read("the inputs")
