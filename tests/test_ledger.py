"""The Ledger's decision table, unit by unit: a temporary SQLite history and a fake provider, no
process and no server. The end-to-end tests (test_reruns, test_money_safety) stay the safety
net; these name each verdict, the 24 h window, hand-over by destination, and the job lock."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from siray_cli.domain import SubmittedTask, Task, TaskKind, TaskState
from siray_cli.errors import AmbiguousSubmitError, NotFoundError
from siray_cli.providers.base import Capabilities, Provider, SubmitRequest
from siray_cli.services.ledger import FOLLOWED, REJOIN_WINDOW, Ledger, fingerprint
from siray_cli.services.session import Notices
from siray_cli.storage.history import History

BODY = {"model": "m/one", "prompt": "a fox"}
KEY = fingerprint(TaskKind.IMAGE, BODY)


class FakeProvider(Provider):
    """Creates tasks `t1`, `t2`, ... (or fails as told); counts what it was asked."""

    name = "fake"
    base_url = "http://fake.test"
    catalogue_url = "http://fake.test/models"
    probe_id = "probe"

    def __init__(self, *, idempotent: bool = False) -> None:
        self.capabilities = Capabilities(supports_idempotency=idempotent)
        self.submits: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self.pause = 0.0

    def close(self) -> None:
        return None

    def build_submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmitRequest:
        return SubmitRequest("POST", self.base_url, "/tasks", body)

    def submit(
        self,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> SubmittedTask:
        self.submits.append({"body": body, "key": idempotency_key})
        time.sleep(self.pause)
        if self.fail is not None:
            raise self.fail
        return SubmittedTask(f"t{len(self.submits)}", kind, str(body["model"]))

    def get(self, task_id: str, kind: TaskKind | None = None) -> Task:
        raise NotFoundError(task_id)

    def cancel(self, task_id: str, kind: TaskKind | None = None) -> Task:
        raise NotFoundError(task_id)

    def check_task_id(self, task_id: str) -> str:
        return task_id

    def list_models(self) -> list[Any]:
        return []

    def upload(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def task(task_id: str, state: TaskState) -> Task:
    return Task(task_id, TaskKind.IMAGE, state.value, state)


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def ledger(tmp_path: Path, said: list[str]) -> Ledger:
    notices = Notices(info=said.append, always=said.append, warn=said.append)
    return Ledger(History(tmp_path / "history.sqlite3", said.append), notices, "default")


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


def submit(ledger: Ledger, provider: FakeProvider, **options: Any) -> Any:
    return ledger.submit(provider, TaskKind.IMAGE, dict(BODY), job_key=KEY, **options)


def verdict(ledger: Ledger, provider: FakeProvider, **options: Any) -> str:
    options.setdefault("handed_over_too", False)
    return ledger.prior(provider, KEY, **options).verdict


def test_a_job_never_submitted_is_to_be_submitted(ledger, provider):
    assert verdict(ledger, provider) == "submit"
    assert ledger.prior(provider, KEY, handed_over_too=False).record is None


def test_a_task_not_handed_over_is_followed_not_paid_again(ledger, provider, said):
    first = submit(ledger, provider)
    assert verdict(ledger, provider) == "running"
    again = submit(ledger, provider)
    assert (again.task_id, again.rejoined) == (first.task_id, True)
    assert len(provider.submits) == 1
    assert any("following task t1 instead of paying again" in s for s in said)


def test_a_task_that_succeeded_but_was_not_handed_over_is_done(ledger, provider):
    handle = submit(ledger, provider)
    handle.seen(task(handle.task_id, TaskState.SUCCESS))
    assert verdict(ledger, provider) == "done"


def test_a_task_that_failed_is_submitted_again(ledger, provider):
    handle = submit(ledger, provider)
    handle.seen(task(handle.task_id, TaskState.FAILURE))
    assert verdict(ledger, provider) == "submit"
    assert submit(ledger, provider).task_id == "t2"


def test_a_result_handed_over_makes_the_next_run_a_new_task(ledger, provider):
    handle = submit(ledger, provider)
    handle.seen(task(handle.task_id, TaskState.SUCCESS))
    handle.hand_over(handle.last)
    assert verdict(ledger, provider) == "submit"
    assert verdict(ledger, provider, handed_over_too=True) == "done"  # what --resume sees
    assert submit(ledger, provider).task_id == "t2"


def test_files_asked_into_a_directory_are_handed_over_only_there(ledger, provider, tmp_path):
    out = tmp_path / "out"
    handle = submit(ledger, provider, destination=out)
    done = task(handle.task_id, TaskState.SUCCESS)
    handle.seen(done)
    handle.hand_over(done)  # printed the URLs only: not where the files were asked
    assert verdict(ledger, provider) == "done"
    handle.hand_over(done, tmp_path / "elsewhere")
    assert verdict(ledger, provider) == "done"
    handle.hand_over(done, tmp_path / "." / "out")  # the same place, however spelt
    assert verdict(ledger, provider) == "submit"


def test_a_failure_is_handed_over_wherever_it_is_told(ledger, provider, tmp_path):
    handle = submit(ledger, provider, destination=tmp_path / "out")
    failed = task(handle.task_id, TaskState.FAILURE)
    handle.seen(failed)
    handle.hand_over(failed)
    record = ledger.record_for(handle)
    assert record is not None and record.delivered_at is not None


def test_attempts_older_than_a_day_are_not_followed(ledger, provider):
    handle = submit(ledger, provider)
    ledger.history._execute(
        "UPDATE tasks SET submitted_at = ? WHERE id = ?",
        (time.time() - REJOIN_WINDOW - 60, handle.row),
    )
    assert verdict(ledger, provider) == "submit"
    assert verdict(ledger, provider, handed_over_too=True) == "running"


def test_an_unanswered_submit_without_a_key_is_reported_not_guessed(ledger, provider):
    provider.fail = AmbiguousSubmitError("no answer", hint="check first")
    with pytest.raises(AmbiguousSubmitError):
        submit(ledger, provider)
    provider.fail = None
    assert verdict(ledger, provider) == "report"
    with pytest.raises(AmbiguousSubmitError, match="got no answer"):
        submit(ledger, provider)
    assert len(provider.submits) == 1
    assert verdict(ledger, provider, resubmit_uncertain=True) == "submit"
    assert submit(ledger, provider, resubmit_uncertain=True).task_id == "t2"
    assert verdict(ledger, provider) == "running"  # the unanswered attempt was settled


def test_an_unanswered_submit_with_a_key_is_resent_with_that_key_and_body(ledger):
    provider = FakeProvider(idempotent=True)
    provider.fail = AmbiguousSubmitError("no answer", hint="resend")
    with pytest.raises(AmbiguousSubmitError):
        submit(ledger, provider)
    provider.fail = None
    assert verdict(ledger, provider) == "resend"
    handle = ledger.submit(
        provider, TaskKind.IMAGE, {**BODY, "seed": 1}, job_key=KEY
    )  # a body rebuilt differently: the one sent then goes again
    first, second = provider.submits
    assert second["key"] == first["key"] is not None
    assert second["body"] == BODY
    assert handle.task_id == "t2" and verdict(ledger, provider) == "running"


def test_a_refused_submit_leaves_no_attempt(ledger, provider):
    provider.fail = NotFoundError("no such model")
    with pytest.raises(NotFoundError):
        submit(ledger, provider)
    assert ledger.history.query() == []


def test_new_skips_the_look(ledger, provider):
    submit(ledger, provider)
    assert submit(ledger, provider, new=True).task_id == "t2"


def test_two_threads_submitting_one_job_pay_once(ledger, provider):
    provider.pause = 0.2  # the first holds the job's lock while its create is in flight
    handles: list[Any] = []
    threads = [threading.Thread(target=lambda: handles.append(submit(ledger, provider)))]
    threads.append(threading.Thread(target=lambda: handles.append(submit(ledger, provider))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(provider.submits) == 1
    assert sorted(h.rejoined for h in handles) == [False, True]
    assert {h.task_id for h in handles} == {"t1"}


def test_a_job_on_another_host_or_profile_is_another_job(ledger, provider):
    submit(ledger, provider)
    elsewhere = FakeProvider()
    elsewhere.base_url = "http://other.test"
    assert verdict(ledger, elsewhere) == "submit"
    other_profile = Ledger(ledger.history, ledger.notices, "work")
    assert other_profile.prior(provider, KEY, handed_over_too=False).verdict == "submit"


def test_a_result_taken_up_by_a_later_command_leaves_the_rerun_free(ledger, provider, tmp_path):
    """`siray status ID --wait -o DIR` (the hint of a stopped `run -o DIR`) hands the result over
    as a later command: running the stopped `run` again follows the task instead of paying; once
    that rerun (the submitting command) has handed it over, the next run is a new task."""
    out = tmp_path / "out"
    handle = submit(ledger, provider, destination=out)
    done = task(handle.task_id, TaskState.SUCCESS)
    later = ledger_handle(ledger, provider, handle.task_id)
    later.seen(done)
    later.hand_over(done, out)
    assert verdict(ledger, provider) == "done"
    rerun = submit(ledger, provider, destination=out)
    assert rerun.rejoined and len(provider.submits) == 1
    rerun.hand_over(done, out)
    assert verdict(ledger, provider) == "submit"


def test_a_task_rejoined_by_another_command_is_handed_over_where_its_submitter_asked(
    ledger, provider, tmp_path
):
    """`generate` with the request of a stopped `run -o DIR` follows its task and prints the id:
    that does not put the files in DIR, so the run's rerun still follows the task."""
    submit(ledger, provider, destination=tmp_path / "out")
    printed = submit(ledger, provider)  # generate: destination None
    assert printed.rejoined
    printed.hand_over(None)
    assert verdict(ledger, provider) == "running"


def test_resume_resends_an_old_unanswered_submit_with_its_key(ledger):
    """A batch's --resume looks at every earlier attempt, however old: the submit it sends for
    an unanswered one older than the rerun window uses that attempt's key, not a new one."""
    provider = FakeProvider(idempotent=True)
    provider.fail = AmbiguousSubmitError("no answer", hint="resend")
    with pytest.raises(AmbiguousSubmitError):
        submit(ledger, provider)
    provider.fail = None
    ledger.history._execute("UPDATE tasks SET submitted_at = ?", (time.time() - 2 * REJOIN_WINDOW,))
    assert verdict(ledger, provider, handed_over_too=True) == "resend"
    submit(ledger, provider, handed_over_too=True)
    first, second = provider.submits
    assert second["key"] == first["key"] is not None
    assert [r.task_id for r in ledger.history.query()] == ["t2"]  # the attempt settled


def test_a_batch_plan_reads_every_job_as_a_rerun_of_it_alone_would(ledger):
    """Ledger.priors, a batch's one look for all its lines, gives each job the verdict, task and
    record that Ledger.prior, one job's own look, gives it: over jobs of none to three attempts
    of every kind (unanswered with and without a key, running, failed, succeeded and handed over
    or not, by its submitter or a later command, in a state whose word siray does not know, as
    a row edited by hand), fresh or older than the rerun window."""
    provider = FakeProvider(idempotent=True)
    history, draw, now = ledger.history, random.Random(5), time.time()
    kinds = (
        "unanswered",
        "unanswered, keyed",
        "running",
        "failed",
        "done",
        "handed",
        "later",
        "unknown word",
    )
    keys = []
    for n in range(80):
        key = fingerprint(TaskKind.IMAGE, {**BODY, "n": n})
        keys.append(key)
        for attempt in range(draw.randint(0, 3)):
            kind = draw.choice(kinds)
            task_id = None if kind.startswith("unanswered") else f"t{n}.{attempt}"
            row = history.record_submit(
                task_id=task_id,
                kind="image",
                model="m/one",
                request={**BODY, "n": n},
                base_url=provider.base_url,
                profile="default",
                provider=provider.name,
                job_key=key,
                idempotency_key=None if kind == "unanswered" else f"k{n}.{attempt}",
            )
            assert row is not None
            if task_id is not None and kind != "running":
                state = TaskState.FAILURE if kind == "failed" else TaskState.SUCCESS
                history.update(row, task(task_id, state))
            if kind in ("handed", "later"):
                history.deliver(row, "submitter" if kind == "handed" else kind)
            if kind == "unknown word":
                history._execute("UPDATE tasks SET state = 'PAUSED' WHERE id = ?", (row,))
            age = draw.choice((0.0, 3600.0, 2 * REJOIN_WINDOW))
            history._execute(
                "UPDATE tasks SET submitted_at = ? WHERE id = ?", (now - age + attempt, row)
            )
    seen = set()
    for handed_over_too in (False, True):
        for resubmit_uncertain in (False, True):
            options = {"handed_over_too": handed_over_too, "resubmit_uncertain": resubmit_uncertain}
            plan = ledger.priors(provider, keys, **options)
            assert ledger.priors(provider, keys + keys[::3], **options) == plan  # a key twice
            for key in keys:
                alone, together = ledger.prior(provider, key, **options), plan[key]
                assert (together.verdict, together.task_id) == (alone.verdict, alone.task_id)
                if together.verdict in FOLLOWED:  # its record is read when its line runs
                    assert together.record is None
                else:
                    rows = [p.record.row if p.record else None for p in (together, alone)]
                    assert rows[0] == rows[1], (key, options)
                seen.add(together.verdict)
    assert seen == {"done", "running", "resend", "report", "submit"}


def test_a_task_from_before_destinations_were_kept_is_handed_over_only_by_saved_files(tmp_path):
    """Schema 4 knew nothing of where a task's files were asked: a task not handed over when
    the history is upgraded is not taken as handed over by printing its outputs."""
    import sqlite3

    from siray_cli.storage.migrations import MIGRATIONS

    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        for _, script in MIGRATIONS[:4]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 4")
        db.execute(
            "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url, profile,"
            " status, updated_at, job_key, provider, state) VALUES ('old', 'image', 'm/one',"
            " '{}', ?, ?, 'default', 'SUCCESS', ?, ?, 'fake', 'SUCCESS')",
            (time.time(), FakeProvider.base_url, time.time(), KEY),
        )
    ledger = Ledger(History(path, print), Notices(), "default")
    provider = FakeProvider()
    handle = ledger_handle(ledger, provider, "old")
    handle.hand_over(task("old", TaskState.SUCCESS))  # printed
    assert verdict(ledger, provider) == "done"
    handle.hand_over(task("old", TaskState.SUCCESS), tmp_path / "anywhere")
    assert verdict(ledger, provider, handed_over_too=False) == "done"  # by a later command
    rerun = submit(ledger, provider)
    assert rerun.rejoined and provider.submits == []


def ledger_handle(ledger: Ledger, provider: FakeProvider, task_id: str) -> Any:
    """A handle as `status` or `download` makes one: from the history, taken up later."""
    from siray_cli.services.handle import TaskHandle

    record = ledger.history.find(task_id)
    return TaskHandle(task_id, provider, ledger, record=record, resuming=True)
