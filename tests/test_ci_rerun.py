"""A retried CI job never pays twice, even on a fresh runner (#23 item 4): CI re-runs a failed or
cancelled job on a new machine whose history is empty. Higgsfield submits carry an
Idempotency-Key derived from the CI run and the job, so the re-run gets the original requests
back; `run --batch --resume-from RESULTS.jsonl` takes up the earlier attempt's tasks for every
provider. And the example workflows in examples/ci only use flags that exist."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import uuid
from pathlib import Path
from string import Template

import click
import httpx
import pytest
import yaml
from helpers import (
    GEMINI_IMAGE,
    HF,
    HF_IMAGE,
    NO_CERTIFICATES,
    created,
    recorded_ids,
    start,
    wait_for,
    write_jobs,
)

from siray_cli.emulator.server import HIGGSFIELD_KEY
from siray_cli.services.run_identity import run_identity

ROOT = Path(__file__).resolve().parent.parent
VIDEO = "kling-video/v2.1/pro/image-to-video"  # a Higgsfield model that takes an image_url
# what the example workflows' variables hold in a job
SAMPLE = {"SHARD": "1", "SHARDS": "4", "ATTEMPT": "2", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}
RESUME = ["--resume-from", "earlier/results-1.jsonl", "--resume-from", "earlier/results-2.jsonl"]


def github(run: str | None = None, attempt: int = 1) -> dict[str, str]:
    """A GitHub Actions job's variables; a run id of its own per test (the shared emulator
    remembers every key it was sent)."""
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": run or uuid.uuid4().hex[:10],
        "GITHUB_JOB": "render",
        "GITHUB_RUN_ATTEMPT": str(attempt),
    }


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fresh_runner(home: Path) -> None:
    """What a CI re-run starts with: no history (SIRAY_DATA_DIR is empty)."""
    shutil.rmtree(home / "data", ignore_errors=True)


def interrupt_once(process, home: Path, count: int) -> str:
    """SIGTERM the batch once `count` of its tasks are recorded; its stdout (the results)."""
    wait_for(lambda: len(recorded_ids(home)) >= count, f"{count} tasks recorded")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    return stdout


# -- the re-run of a CI job on a fresh runner ----------------------------------------------------


def test_a_ci_rerun_on_a_fresh_runner_pays_for_no_line_again(
    make_emulator, tmp_path, isolated_environment
):
    server = make_emulator(task_seconds=60)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"provider": "higgsfield", "model": HF_IMAGE, "prompt": "hf one", "name": "hf1"},
        {"model": GEMINI_IMAGE, "prompt": "siray one", "name": "s1"},
        {"provider": "higgsfield", "model": HF_IMAGE, "prompt": "hf two", "name": "hf2"},
        {"model": GEMINI_IMAGE, "prompt": "siray two", "name": "s2"},
        {"provider": "higgsfield", "model": HF_IMAGE, "prompt": "hf three", "name": "hf3"},
    )
    out, results = tmp_path / "out", tmp_path / "results.jsonl"
    ci = github()
    args = ["run", "--batch", str(jobs), "--json", "-o", str(out), "--concurrency", "4"]
    first = start(server, *args, env=ci)
    results.write_text(interrupt_once(first, isolated_environment, 4))
    submitted = [r for r in records(results.read_text()) if r["type"] == "submitted"]
    assert len(submitted) == 4 and all(r["key"] and r["task_id"] for r in submitted)
    assert created(server) == 4

    fresh_runner(isolated_environment)
    again = start(server, *args, "--resume-from", str(results), env={**ci, **github(
        ci["GITHUB_RUN_ID"], attempt=2)})  # fmt: skip

    # every task of the emulator takes a minute: time passes while the re-run follows them
    def ended() -> bool:
        server.state.clock.advance(30)
        return again.poll() is not None

    wait_for(ended, "the re-run")
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert "matched by job key" in stderr
    assert created(server) == 5  # the four tasks followed; only the fifth line was paid for
    ended = [r for r in records(stdout) if r["type"] == "result"]
    assert sorted(r["name"] for r in ended) == ["hf1", "hf2", "hf3", "s1", "s2"]
    assert all(r["status"] == "SUCCESS" and r["files"] for r in ended)
    assert sorted(p.stem for p in out.iterdir()) == ["hf1", "hf2", "hf3", "s1", "s2"]
    taken_up = {r["task_id"] for r in submitted}
    assert taken_up <= {r["task_id"] for r in ended}


def test_higgsfield_lines_rerun_on_a_fresh_runner_get_their_requests_back(
    siray, make_emulator, tmp_path, isolated_environment
):
    """No results kept at all: the run's idempotency keys alone make the re-run's submits the
    original requests (GITHUB_RUN_ATTEMPT is not part of them)."""
    server = make_emulator(task_seconds=60)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"model": HF_IMAGE, "prompt": f"keyed line {n}", "name": f"k{n}"} for n in range(3)),
    )
    ci = github()
    first = start(server, "run", "--batch", str(jobs), env={**HF, **ci})
    interrupt_once(first, isolated_environment, 3)
    assert created(server) == 3

    fresh_runner(isolated_environment)
    server.state.clock.advance(120)
    rerun = {**HF, **github(ci["GITHUB_RUN_ID"], attempt=2)}
    again = siray("run", "--batch", str(jobs), "-o", str(tmp_path / "out"), env=rerun,
                  server=server)  # fmt: skip
    assert again.exit_code == 0, again
    assert created(server) == 3
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == ["k0", "k1", "k2"]

    # another run (a new workflow run, not a re-run of this one) is another request
    fresh_runner(isolated_environment)
    other = siray("run", "--batch", str(jobs), "--timeout", "0.5", env={**HF, **github()},
                  server=server)  # fmt: skip
    assert other.exit_code == 1 and created(server) == 6, other


def test_outside_ci_a_higgsfield_key_stays_random(siray, emu, isolated_environment):
    for _ in range(2):
        fresh_runner(isolated_environment)
        assert siray("run", HF_IMAGE, "no run, two requests", env=HF).exit_code == 0
    assert created(emu, "no run, two requests") == 2


def test_run_id_and_a_failed_request_submitted_again_under_the_next_key(
    siray, emu, isolated_environment
):
    run = {**HF, "SIRAY_RUN_ID": uuid.uuid4().hex}
    ok = siray("run", HF_IMAGE, "made once per run", env=run)
    fresh_runner(isolated_environment)
    again = siray("run", HF_IMAGE, "made once per run", "--json", env=run)
    assert again.exit_code == 0, again
    assert created(emu, "made once per run") == 1
    assert ok.stdout.strip() == again.json()["outputs"][0]
    # --new asks for another request, run or no run; so does --run-id with another id
    assert siray("run", HF_IMAGE, "made once per run", "--new", env=run).exit_code == 0
    other = siray("run", HF_IMAGE, "made once per run", "--run-id", "another", env=run)
    assert other.exit_code == 0 and created(emu, "made once per run") == 3

    # a definite failure in this run is not the answer for good: the re-run submits it again
    failing = "[fail] tried again in a re-run"
    assert siray("run", HF_IMAGE, failing, env=run).exit_code == 1
    fresh_runner(isolated_environment)
    retried = siray("run", HF_IMAGE, failing, env=run)
    assert retried.exit_code == 1, retried
    assert "ended FAILURE: submitting it again" in retried.stderr
    assert created(emu, failing) == 2


def test_a_line_submitted_earlier_in_the_run_with_other_parameters_is_reported(
    siray, emu, tmp_path, isolated_environment
):
    """A local file is uploaded again on the fresh runner, to a new URL: under the run's key
    that is another request, which the service refuses (422). It is said so, and never sent
    under a fresh key; following the hint (--resume-from) pays for nothing either."""
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"frame" * 100)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"model": VIDEO, "prompt": "uploaded twice", "inputs": {"image_url": str(image)},
         "name": "clip"},
    )  # fmt: skip
    ci = {**HF, **github()}
    first = siray("run", "--batch", str(jobs), "--json", env=ci)
    assert first.exit_code == 0, first
    results = tmp_path / "results.jsonl"
    results.write_text(first.stdout)

    fresh_runner(isolated_environment)
    again = siray("run", "--batch", str(jobs), "--json", env=ci)
    assert again.exit_code == 1, again
    (line,) = [r for r in records(again.stdout) if r["type"] == "error"]
    assert line["error"]["type"] == "idempotency_conflict"
    assert "submitted by an earlier attempt of this run (GitHub Actions run" in line["error"][
        "message"]  # fmt: skip
    assert "--resume-from RESULTS" in again.stderr
    assert created(emu, "uploaded twice") == 1

    fresh_runner(isolated_environment)
    followed = siray("run", "--batch", str(jobs), "--json", "--resume-from", str(results),
                     "-o", str(tmp_path / "out"), env=ci)  # fmt: skip
    assert followed.exit_code == 0, followed
    assert created(emu, "uploaded twice") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip.mp4"]

    # one `run`: exit 2, and the hint's `status ID --wait` pays for nothing
    single = ["run", VIDEO, "one upload too many", "--image", str(image)]
    made = siray(*single, "--json", env=ci).json()["task_id"]
    fresh_runner(isolated_environment)
    refused = siray(*single, env=ci)
    assert refused.exit_code == 2, refused
    (error, hint) = refused.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: submitted by an earlier attempt of this run")
    assert "siray --provider higgsfield status ID --wait" in hint
    assert siray("--provider", "higgsfield", "status", made, "--wait", env=ci).exit_code == 0
    assert created(emu, "one upload too many") == 1


# -- --resume-from: what each record of the earlier attempt does ---------------------------------


def test_a_task_the_server_does_not_know_is_reported_not_paid_again(
    siray, emu, make_emulator, tmp_path
):
    """Results of another host (a wrong --base-url, say): the line's task was paid there. It is
    reported, not resubmitted, until --resubmit-missing; following that, and running the batch
    again with every attempt's results, pays once."""
    elsewhere = make_emulator()
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "paid elsewhere", "name": "a"})
    ran = siray("run", "--batch", str(jobs), "-m", GEMINI_IMAGE, "--json", server=elsewhere)
    assert ran.exit_code == 0, ran
    first = tmp_path / "first.jsonl"
    first.write_text(ran.stdout)

    args = ["run", "--batch", str(jobs), "-m", GEMINI_IMAGE, "--json", "--resume-from", str(first)]
    missing = siray(*args)
    assert missing.exit_code == 1, missing
    (line,) = [r for r in records(missing.stdout) if r["type"] == "error"]
    assert line["error"]["type"] == "task_not_found" and line["task_id"]
    assert "--resubmit-missing" in line["error"]["message"]
    assert created(emu, "paid elsewhere") == 0

    anew = siray(*args, "--resubmit-missing")
    assert anew.exit_code == 0, anew
    second = tmp_path / "second.jsonl"
    second.write_text(anew.stdout)
    assert created(emu, "paid elsewhere") == 1
    again = siray(*args, "--resume-from", str(second), "--resubmit-missing")
    assert again.exit_code == 0, again
    assert created(emu, "paid elsewhere") == 1


def test_lines_recorded_as_failed_are_submitted_again_and_the_rest_fetched(
    siray, emu, tmp_path, isolated_environment
):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "fine the first time", "name": "ok"},
        {"prompt": "[fail] failed the first time", "name": "bad"},
    )
    args = ["run", "--batch", str(jobs), "-m", GEMINI_IMAGE, "--json"]
    first = siray(*args)
    assert first.exit_code == 1, first
    results = tmp_path / "results.jsonl"
    results.write_text(first.stdout)
    fresh_runner(isolated_environment)
    again = siray(*args, "--resume-from", str(results), "-o", str(tmp_path / "out"))
    assert again.exit_code == 1, again  # [fail] fails again, but was tried again
    assert created(emu, "fine the first time") == 1
    assert created(emu, "[fail] failed the first time") == 2
    assert [p.stem for p in (tmp_path / "out").iterdir()] == ["ok"]


def test_results_without_keys_match_by_line_number_and_name(
    siray, emu, tmp_path, isolated_environment
):
    """Records of an older siray carry no `type` and no `key`: matched by line and name."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "an older siray's line", "name": "old"})
    ran = siray("run", "--batch", str(jobs), "-m", GEMINI_IMAGE)  # a pipe: one object a line
    assert ran.exit_code == 0, ran
    (record,) = records(ran.stdout)
    del record["type"], record["key"]
    results = tmp_path / "old.jsonl"
    results.write_text(json.dumps(record) + "\n")
    fresh_runner(isolated_environment)
    args = ["run", "--batch", str(jobs), "-m", GEMINI_IMAGE, "--resume-from", str(results)]
    again = siray(*args)
    assert again.exit_code == 0, again
    assert "matched by line number and name" in again.stderr
    assert created(emu, "an older siray's line") == 1

    results.write_text(json.dumps({**record, "name": "renamed"}) + "\n")
    other = siray(*args)
    assert other.exit_code == 2 and "matches no line of" in other.stderr, other


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("this is not json\n", "is not JSON"),
        ('{"type": "result", "name": "x"}\n', "a record without a line number"),
        ('{"type": "result", "line": 1, "key": "0123", "task_id": "t"}\n', "matches no line"),
    ],
)
def test_a_bad_results_file_is_refused_before_anything_is_paid(siray, emu, tmp_path, content, says):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "never paid for a bad results file"})
    results = tmp_path / "results.jsonl"
    if content is not None:
        results.write_text(content)
    refused = siray("run", "--batch", str(jobs), "-m", GEMINI_IMAGE, "--resume-from",
                    str(results))  # fmt: skip
    assert refused.exit_code == 2, refused
    assert says in refused.stderr and refused.stdout == ""
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) <= 2
    assert created(emu, "never paid for a bad results file") == 0


# -- the run's identity, and the emulator's keys -------------------------------------------------


def test_the_run_identity_of_each_ci_and_what_a_rerun_keeps():
    first = run_identity({**github("77"), "GITHUB_REPOSITORY": "o/r"})
    rerun = run_identity({**github("77", attempt=3), "GITHUB_REPOSITORY": "o/r"})
    assert first is not None and rerun is not None and first == rerun
    assert first.idempotency_key("higgsfield", "k") == rerun.idempotency_key("higgsfield", "k")
    assert first.idempotency_key("higgsfield", "k") != first.idempotency_key("higgsfield", "k", 1)
    assert uuid.UUID(first.idempotency_key("higgsfield", "k"))  # the form the contract advises
    assert run_identity({**github("77"), "GITHUB_JOB": "other"}) != first
    gitlab = {"GITLAB_CI": "true", "CI_PIPELINE_ID": "9", "CI_JOB_NAME": "render"}
    found = run_identity(gitlab)
    assert found is not None and found.described == "GitLab pipeline 9, job render"
    assert run_identity({**gitlab, "CI_JOB_ID": "12"}) == found  # a retry is another job id
    assert run_identity({}) is None and run_identity({"GITHUB_ACTIONS": "false"}) is None
    explicit = run_identity({**github("77"), "SIRAY_RUN_ID": "mine"})
    assert explicit is not None and explicit.identity == "explicit:mine"
    flagged = run_identity({"SIRAY_RUN_ID": "mine"}, "flag")
    assert flagged is not None and flagged.identity == "explicit:flag"


def test_the_emulator_keeps_idempotency_keys_as_the_contract_says(emu):
    def submit(body: dict, key: str | bytes, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{emu.url}/{HF_IMAGE}",
            json=body,
            headers={"Authorization": f"Key {HIGGSFIELD_KEY}", "Idempotency-Key": key, **headers},
            verify=NO_CERTIFICATES,
        )

    key = uuid.uuid4().hex
    body = {"prompt": "the contract's keys", "seed": 1}
    original = submit(body, key).json()["request_id"]
    reordered = submit({"seed": 1, "prompt": "the contract's keys"}, key)
    assert reordered.status_code == 200 and reordered.json()["request_id"] == original
    assert submit({**body, "negative_prompt": None}, key).status_code == 422  # explicit null
    assert submit({**body, "seed": 2}, key).status_code == 422
    assert submit(body, key, **{"Hf-Expires-After": "7200"}).status_code == 422
    assert created(emu, "the contract's keys") == 1

    refused = uuid.uuid4().hex  # refused before acceptance: the key is not used up
    assert submit({"seed": 1}, refused).status_code == 422
    assert submit(body, refused).json()["request_id"] != original
    assert submit(body, ("é" + refused).encode()).status_code == 422  # visible ASCII only
    assert submit(body, uuid.uuid4().hex, **{"Hf-Expires-After": "60"}).status_code == 422


# -- the example workflows -----------------------------------------------------------------------


def siray_commands(script: str) -> list[list[str]]:
    """The `siray ...` commands of a shell script (continued lines joined; shell variables and
    substitutions kept as words)."""
    commands = []
    joined = script.replace("\\\n", " ")
    for line in joined.splitlines():
        for part in line.split("&&"):
            if part.strip().startswith("siray "):
                words = shlex.split(part.split(" > ")[0].split(" | ")[0], comments=True)
                commands.append(words[1:])
    return commands


def steps(document: object) -> list[str]:
    """Every `run:` and `script:` text of a workflow, wherever it is."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("run", "script", "before_script", "after_script"):
                found += [value] if isinstance(value, str) else [str(v) for v in value or []]
            else:
                found += steps(value)
    elif isinstance(document, list):
        for item in document:
            found += steps(item)
    return found


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_example_workflows_use_only_flags_that_exist(name):
    from siray_cli.docs import command_tree

    workflow = yaml.safe_load((ROOT / "examples" / "ci" / name).read_text())
    commands = [c for script in steps(workflow) for c in siray_commands(script)]
    runs = [c for c in commands if c[:1] == ["run"]]
    assert runs and all("--shard" in c and "$RESUME" in c for c in runs)
    root = command_tree()
    assert isinstance(root, click.Group)
    for command_words in commands:
        # shell variables as a job has them ($RESUME: the flags of the earlier results found)
        words = []
        for word in command_words:
            words += RESUME if word == "$RESUME" else [Template(word).safe_substitute(SAMPLE)]
        assert parses(root, words), words


def parses(root: click.Group, words: list[str]) -> bool:
    """Whether `siray WORDS` parses (its flags exist, their values are valid), by siray's own
    parser, without running it."""
    context = root.make_context("siray", [], resilient_parsing=True)
    command = root.get_command(context, words[0])
    if command is None:
        return False
    try:
        command.make_context(words[0], list(words[1:]), parent=context)
    except click.UsageError:
        return False
    return True


def test_the_workflow_check_tells_a_flag_that_does_not_exist():
    from siray_cli.docs import command_tree

    root = command_tree()
    assert isinstance(root, click.Group)
    good = ["run", "--batch", "jobs.jsonl", "--shard", "1/4", *RESUME, "--resubmit-missing"]
    assert parses(root, good)
    assert not parses(root, [*good, "--resume-form", "x.jsonl"])
    assert not parses(root, ["run", "--batch"])  # a flag without its value
    assert not parses(root, ["runn", "--batch", "jobs.jsonl"])
