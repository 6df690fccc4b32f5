"""Fixtures, and where a test goes.

Every test drives the real `siray` entry point against the real emulator over loopback HTTP (or
a small fake server), with config, data and cache directories in a temporary place and no
SIRAY_* variables leaking in from the machine. The fixtures are here: `siray` (run `siray ARGS`
in-process on pipes), `emu` (the shared emulator, faults cleared), `make_emulator` (one of your
own, with other settings), `isolated_environment` (the temporary home, returned as its path).

Helpers are not here: tests/helpers.py holds what several modules use, once (running siray in a
process or on a terminal, `wait_for`, `write_jobs`, `created`, `rows`, the shared model names
and routes); tests/hostile.py is the fake server that misbehaves on purpose; tests/zygote.py
the fork server that helpers.spawn starts each `python -m siray_cli` process from (a real
process, forked once siray is imported; TESTS_FRESH_PROCESSES=1 starts each from nothing).
Import from those, never from another test module. A helper one module needs stays in that module.

Where a new test goes. A test of what one command does goes in that command's module:

    test_run.py            siray run (one task: submit, wait, download, every way it ends)
    test_batch.py          siray run --batch (and --resume)
    test_ci_reports.py     run's reports for CI: --junit, GitHub Actions' step summary and
                           annotations (batches, interrupted ones, a single run)
    test_generate.py       siray generate (inputs in every form, the bare id)
    test_status.py         siray status (and --wait)
    test_cancel.py         siray cancel
    test_upload.py         siray upload, and local files as inputs (the S3 store)
    test_models.py         siray models, the catalogue cache, schema-driven inputs
    test_history.py        siray history, and the history database under every command
    test_provenance.py     siray info and siray rerun: the record a saved PNG carries, files
                           known to the history by SHA-256, a request sent again as a new task
    test_gallery.py        siray gallery and run --batch --gallery: the page as written, and
                           in a real browser (headless chromium, from file://)
    test_preview.py        run's inline previews (Kitty protocol, Sixel) on a pseudo-terminal,
                           hostile images, and --open / siray open (a fake xdg-open)
    test_auth_config.py    siray auth and siray config (profiles, precedence, the key's safety)
    test_emulator.py       siray emulator, and the emulator's fidelity to the API contract
    test_completion.py     shell completion (the protocol and the real bash, zsh and fish)
    test_docs.py           generated man pages, completions and help topics never drift

    siray download and siray estimate have no module yet: download's tests so far are in
    test_first_hour.py; a new test of either starts test_download.py / test_estimate.py.
    `siray ls` is `siray history`'s alias (test_history.py).

A test of a property that holds across commands goes in the module of that property:

    test_money_safety.py   no paid task lost or paid twice: signals, SIGKILL mid-create,
                           batch jobs failing oddly, resumes that verify
    test_reruns.py         a command rerun (by CI, after a kill or timeout) follows the task
                           the earlier run started instead of paying again
    test_ci_rerun.py       a CI job re-run on a fresh runner (no history) pays for nothing
                           again: run-derived idempotency keys, --resume-from, the examples/ci
                           workflows' commands
    test_ledger.py         the Ledger's decision table, as unit tests (a temporary history
                           and a fake provider, no emulator): follow, submit or report
    test_names.py          names of saved files: --name-template and the name_template
                           setting (run, status, download, batches), hostile values, clashes
    test_faults.py         injected faults (dropped, truncated, refused requests; Ctrl-C at a
                           random moment): no duplicate, no lost id, no partial file, no secret
    test_errors.py         every exit code and error shape, and which retries are safe
    test_hostile_servers.py  a hostile or broken server (tests/hostile.py) can neither hang,
                           flood, forge output nor make siray print a secret
    test_polling.py        the wait loop's schedules, on a fake clock (no emulator)
    test_inputs.py         parsers of what users type and what the API answers (unit and
                           property tests, no emulator)
    test_startup.py        start-up stays light: what --version and --help import
    test_first_hour.py     a newcomer's first hour: what the README and --help promise works
    test_readme.py         the README's shell examples run as written
    test_architecture.py   the package's layering, read from the source

Modules whose name does not say what they hold:

    test_higgsfield.py         every command against the Higgsfield provider (--provider
                               higgsfield): a provider's test goes here, not in the command's
    test_higgsfield_client.py  the official Higgsfield client runs against the emulator
                               (the emulator's fidelity, like test_emulator.py)
    test_review_fixes.py       fixes from one review, grouped by the review rather than by
                               property: retries sharing one deadline, downloads inflated
                               without bound, the config file's size cap, keys no header can
                               carry, a Higgsfield cancel, a refused loopback connection. A new
                               test of one of those belongs in the module of its property
                               (errors, hostile servers, auth/config, higgsfield), not here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    POLL_INTERVAL,
    TASK_SECONDS,
    Result,
    emulator_env,
    emulator_stats,
    run_in_terminal,
    siray_command,
    siray_in_process,
    subprocess_env,
)

from siray_cli.emulator.server import EMULATOR_API_KEY, Emulator, EmulatorConfig


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile siray_cli's bytecode once, as a wheel install has it: with PYTHONDONTWRITEBYTECODE
    set (as on CI machines), every `siray` subprocess would otherwise compile ~70 modules again
    (about 0.1 s of CPU each time, a few hundred times per run)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller did it before starting the workers
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parent.parent / "siray_cli", quiet=2)
    _rewrite_test_modules(session.config)


def _rewrite_test_modules(config: pytest.Config) -> None:
    """Rewrite the test modules' asserts once, into the files pytest caches them in: with
    PYTHONDONTWRITEBYTECODE set, pytest caches none, and each worker would rewrite every module
    again (~3 s of CPU each). These are pytest's own functions, private ones: a pytest that has
    renamed them leaves the rewriting to each worker, as before."""
    try:
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
            if not source.name.startswith("test_") and source.name != "conftest.py":
                continue
            cache = rewrite.get_cache_dir(source)
            pyc = cache / (source.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(source, pyc) is not None:
                continue  # rewritten already, and still current
            cache.mkdir(exist_ok=True)
            source_hash, code = rewrite._rewrite_test(source, config)
            rewrite._write_pyc(state, code, source_hash, pyc)
    except (ImportError, AttributeError, KeyError, TypeError, OSError):
        return


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SIRAY_"):
            monkeypatch.delenv(name)
    # run on CI, siray would derive its idempotency keys from the CI run (run_identity.py): the
    # same request in two tests would be one
    for name in ("GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)
    # nor would it draw a preview (CI is set by every CI system, and by .ci/run): a test that
    # wants CI's behaviour sets it
    monkeypatch.delenv("CI", raising=False)
    home = tmp_path / "home"
    for name, sub in (
        ("SIRAY_CONFIG_DIR", "config"),
        ("SIRAY_DATA_DIR", "data"),
        ("SIRAY_CACHE_DIR", "cache"),
        ("SIRAY_STATE_DIR", "state"),
    ):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # a test run on GitHub Actions must not write its reports into the real job's summary
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # retries keep their count and order, but back off in milliseconds instead of seconds
    monkeypatch.setenv("SIRAY_RETRY_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(port=0, task_seconds=TASK_SECONDS, seed=7)) as server:
        yield server


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, with no faults left over from another test, and no request of one
    still being answered (a create a fault delays, whose siray was killed): it would create
    its task while the next test counts the tasks."""
    emulator.state.faults.clear()
    yield emulator
    emulator.state.faults.clear()
    emulator.state.wait_answered(timeout=10)


@pytest.fixture
def make_emulator() -> Iterator[Any]:
    started: list[Emulator] = []

    def make(**settings: Any) -> Emulator:
        settings.setdefault("task_seconds", TASK_SECONDS)
        server = Emulator(EmulatorConfig(port=0, **settings)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def siray(emu: Emulator) -> Any:
    """Run `siray ARGS` in-process on pipes (not a terminal) against the shared emulator."""

    def invoke(
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        server: Emulator | None = None,
    ) -> Result:
        full_env: dict[str, str | None] = dict(emulator_env(server or emu))
        full_env.update(env or {})
        return siray_in_process(*args, env=full_env, input=input)

    return invoke


# still importable from here for a module written before helpers.py; new code imports helpers
__all__ = [
    "EMULATOR_API_KEY",
    "POLL_INTERVAL",
    "TASK_SECONDS",
    "Result",
    "emulator_stats",
    "run_in_terminal",
    "siray_command",
    "subprocess_env",
]
