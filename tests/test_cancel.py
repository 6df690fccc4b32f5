"""`siray cancel`, per the contract's assumed endpoint, including a server that has none."""

from __future__ import annotations

import json

from helpers import Z_IMAGE as MODEL


def submit(siray, prompt: str, **kw) -> str:
    result = siray("generate", MODEL, prompt, "-i", "size=1024x768", **kw)
    assert result.exit_code == 0, result
    return result.stdout.strip()


def test_cancel_a_queued_task(siray):
    task_id = submit(siray, "[hold]")
    result = siray("cancel", task_id)
    assert result.exit_code == 0, result
    assert result.stdout == f"{task_id}\tCANCELLED\n"
    status = siray("status", task_id, "--json").json()
    assert status["status"] == "CANCELLED"
    # waiting on a cancelled task ends at once, with exit 1
    assert siray("status", task_id, "--wait").exit_code == 1


def test_cancel_a_running_task_is_refused(siray):
    task_id = submit(siray, "x")
    assert siray("status", task_id, "--wait", "--poll-interval", "0.2").exit_code == 0
    result = siray("cancel", task_id, "--json")
    # as for Higgsfield: the task cannot be stopped any more, exit 5 (not a usage error)
    assert result.exit_code == 5, result
    error = json.loads(result.lines[-1])["error"]
    assert error["task_id"] == task_id and error["status_code"] == 400
    assert error["type"] == "cancel_refused"
    # the server's reason, said once (it names the task: siray adds nothing around it)
    assert error["message"] == f"task {task_id} is SUCCESS and can no longer be cancelled"


def test_server_without_cancel_says_so_and_exits_5(siray, make_emulator):
    server = make_emulator(cancel_supported=False)
    task_id = submit(siray, "[hold]", server=server)
    result = siray("cancel", task_id, server=server)
    assert result.exit_code == 5, result
    assert "does not support cancelling" in result.stderr
    assert f"task {task_id} keeps running" in result.stderr


def test_cancel_unknown_task(siray):
    result = siray("cancel", "image_nope")
    assert result.exit_code == 2
    assert "no task image_nope" in result.stderr
