"""Start-up stays light: `siray --version` and `--help` import no heavy module."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import subprocess
import sys

import click
import pytest
import typer
from helpers import subprocess_env

from siray_cli import docs
from siray_cli.app import COMMANDS, root_app, whole_tree

HEAVY = (
    "boto3",
    "botocore",
    "siray_cli.emulator",
    "jsonschema",
    "httpx",
    "rich.progress",
    "sqlite3",
    "siray_cli.history",
    "siray_cli.services.reports",  # CI reports: imported when one is asked for
    "xml",
)


def run_listing_modules(
    args: list[str],
    env: dict[str, str] | None = None,
    blocked: tuple[str, ...] = (),
    exit_code: int = 0,
) -> tuple[str, set[str]]:
    """Run siray's main(args) in a fresh interpreter, which must exit `exit_code`: its stdout, and
    every module it imported (`blocked` modules are made unimportable first; a module marked
    missing is not listed)."""
    code = (
        "import sys\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
        + "from siray_cli.main import run as main\n"
        f"code = main({args!r})\n"
        "sys.stderr.write('\\n'.join(sorted(k for k, v in sys.modules.items() if v)))\n"
        "raise SystemExit(code)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert completed.returncode == exit_code, completed.stderr
    return completed.stdout, set(completed.stderr.splitlines())


def imported_after(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    if env is None:
        return set(_imported_by(tuple(args)))
    return run_listing_modules(args, env)[1]


@functools.cache
def _imported_by(args: tuple[str, ...]) -> frozenset[str]:
    """What `siray ARGS` imports in this process's environment: --help and --version read no
    setting, so several tests ask the same question and one process answers it."""
    return frozenset(run_listing_modules(list(args))[1])


def test_version_imports_nothing_heavy():
    modules = imported_after(["--version"])
    assert "siray_cli.app" in modules
    assert not [m for m in modules if m.startswith(HEAVY)]


def test_help_of_a_command_imports_nothing_heavy(tmp_path):
    modules = imported_after(["run", "--help"])
    assert not [m for m in modules if m.startswith(HEAVY)]
    # nor reads the settings: no config file, and no platformdirs to find where it would be
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    modules = imported_after(["status", "--help"], env={**env, "HOME": str(tmp_path)})
    assert "platformdirs" not in modules and "tomllib" not in modules


def test_version_output():
    completed = subprocess.run(
        [sys.executable, "-m", "siray_cli", "--version"], capture_output=True, text=True, check=True
    )
    from siray_cli import __version__

    assert completed.stdout == f"siray {__version__}\n"
    assert completed.stderr == ""


# --- the lazy root: only the command that runs is imported and built -------------------------


def _help(command: click.Command, args: list[str]) -> str:
    from siray_cli.output import Output

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        command.main(args=[*args, "--help"], prog_name="siray", standalone_mode=False, obj=Output())
    return buffer.getvalue()


def _paths() -> list[list[str]]:
    return [path[1:] for path, _, _ in docs.walk(whole_tree(), ["siray"])] + [["ls"]]


def test_the_command_table_matches_the_whole_tree():
    tree = whole_tree()
    assert isinstance(tree, click.Group)
    context = click.Context(tree, info_name="siray")
    assert list(COMMANDS) == tree.list_commands(context)
    for name, entry in COMMANDS.items():
        command = tree.get_command(context, name)
        assert command is not None and not command.hidden
        assert entry.summary == command.get_short_help_str(10**4), name


@pytest.mark.parametrize("path", _paths(), ids=" ".join)
def test_help_is_identical_to_the_whole_tree(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    lazy = typer.main.get_command(root_app())
    assert _help(lazy, path) == _help(whole_tree(), path)


def test_a_mistyped_command_is_still_suggested(siray):
    result = siray("stauts")
    assert result.exit_code == 2
    assert "No such command 'stauts'. Did you mean 'status'" in result.stderr


# Each command's --help in a process of its own, forked from one interpreter that has imported
# only what every one of them imports first (siray_cli.app, and with it Typer and Click): a child
# ends with the modules a fresh interpreter would, for a fraction of the start-up.
FORKED = """
import json, os, sys
import siray_cli.app
from siray_cli.main import run
for args in json.loads(sys.argv[1]):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        code = run(args)
        os.write(write, json.dumps([code, sorted(k for k, v in sys.modules.items() if v)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        print(answer.read(), flush=True)
    os.waitpid(child, 0)
"""


@pytest.fixture(scope="module")
def help_imports() -> dict[str, set[str]]:
    """What each command's --help imported (one forked process each, see FORKED)."""
    helps = [[name, "--help"] for name in COMMANDS]
    completed = subprocess.run(
        [sys.executable, "-c", FORKED, json.dumps(helps)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answers = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [code for code, _ in answers] == [0] * len(helps), completed.stderr
    return {name: set(modules) for name, (_, modules) in zip(COMMANDS, answers, strict=True)}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_a_command_imports_no_other_command(name, help_imports):
    modules = help_imports[name]
    own = COMMANDS[name].module
    commands = {m for m in modules if m.startswith("siray_cli.commands.")}
    assert commands - {"siray_cli.commands._options", "siray_cli.commands._context"} == {own}
    assert not [m for m in modules if m.startswith(("typer.rich_utils", "rich.markdown"))]


def test_status_on_a_pipe_imports_no_rich(emu):
    from siray_cli.domain import TaskKind
    from siray_cli.providers import Connection, open_provider

    connection = Connection(api_key=emu.config.api_key, base_url=emu.url)
    with open_provider("siray", connection) as provider:
        task = provider.submit(
            TaskKind.IMAGE,
            {"model": "alibaba/z-image-turbo-t2i", "prompt": "x", "size": "1024x768"},
        )
    stdout, modules = run_listing_modules(["status", task.task_id], env=subprocess_env(emu))
    assert task.task_id in stdout
    assert not [m for m in modules if m == "rich" or m.startswith("rich.")]
    # nor httpx's own command line (httpx/_main.py: rich, pygments, click), which siray never
    # calls and `import httpx` would load (siray_cli/__init__.py keeps it out)
    assert not [m for m in modules if m.startswith(("httpx._main", "pygments"))]
    assert not [m for m in modules if m.startswith(("siray_cli.services.reports", "xml"))]
    # nor httpx-retries (which imports asyncio) while every request is answered at once...
    assert not [m for m in modules if m.startswith(("httpx_retries", "asyncio"))]
    # ...and it does retry when an attempt fails: a look that got a 503 is sent again
    from siray_cli.emulator.faults import Fault

    looks = "^/v1/images/generations/async/"
    emu.state.faults.add(Fault(status=503, method="GET", path=looks, retry_after=0.1))
    stdout, modules = run_listing_modules(["status", task.task_id], env=subprocess_env(emu))
    assert task.task_id in stdout
    assert "httpx_retries" in modules


@pytest.mark.parametrize("provider", ["siray", "higgsfield"])
def test_models_list_from_a_fresh_cache_builds_no_http_client(siray, emu, provider):
    env = {"SIRAY_PROVIDER": provider}
    assert siray("models", "list", env=env).exit_code == 0  # fills Siray's cache
    stdout, modules = run_listing_modules(["models", "list"], env=subprocess_env(emu, **env))
    assert stdout.strip()
    assert not [m for m in modules if m.startswith(("httpx", "httpcore", "siray_cli.transport"))]


# modules built only by the commands that need them: never for the root's help or a status look
ON_DEMAND = {
    # the gallery (its page, style and script): `siray gallery` and `run --batch --gallery`
    "gallery": ("siray_cli.services.gallery", "siray_cli.commands.gallery"),
    # `siray info` and `siray rerun`, and the PNG record (read, or written by a download)
    "info": (
        "siray_cli.commands.info",
        "siray_cli.commands.rerun",
        "siray_cli.commands._single",
        "siray_cli.services.provenance",
        "siray_cli.storage.provenance",
    ),
}


@pytest.mark.parametrize("command", list(ON_DEMAND))
def test_help_and_status_import_only_what_they_use(emu, siray, command):
    modules = ON_DEMAND[command]
    assert not [m for m in imported_after(["--help"]) if m.startswith(modules)]
    assert not [m for m in imported_after(["run", "--help"]) if m.startswith(modules)]
    created = siray("generate", "alibaba/z-image-turbo-t2i", "a fox", "-i", "size=1024x768")
    assert created.exit_code == 0, created
    stdout, found = run_listing_modules(["status", created.stdout.strip()], subprocess_env(emu))
    assert created.stdout.strip() in stdout
    assert not [m for m in found if m.startswith(modules)]
    # the check can fail: `siray COMMAND --help` does import its command
    assert f"siray_cli.commands.{command}" in imported_after([command, "--help"])


def test_help_and_status_import_no_preview(emu, siray, tmp_path):
    """Previews (siray_cli/preview.py, Pillow, textual-image) are imported only when an image
    is drawn: not by --help, `run --help`, a status look, nor a run on a pipe."""
    preview = ("siray_cli.preview", "PIL", "textual_image")
    assert not [m for m in imported_after(["--help"]) if m.startswith(preview)]
    assert not [m for m in imported_after(["run", "--help"]) if m.startswith(preview)]
    created = siray("generate", "alibaba/z-image-turbo-t2i", "a fox", "-i", "size=1024x768")
    assert created.exit_code == 0, created
    task_id = created.stdout.strip()
    stdout, modules = run_listing_modules(["status", task_id], subprocess_env(emu))
    assert task_id in stdout
    assert not [m for m in modules if m.startswith(preview)]
    env = subprocess_env(emu, TERM="xterm-kitty")
    args = ["run", "alibaba/z-image-turbo-t2i", "a fox", "-i", "size=1024x768"]
    assert not [m for m in run_listing_modules(args, env)[1] if m.startswith(preview)]
    # the check can fail: a preview that is drawn (always, here on a pipe) imports them
    drawn = run_listing_modules([*args, "-o", str(tmp_path / "out"), "--preview"], env)[1]
    assert {"siray_cli.preview", "PIL", "textual_image"} <= drawn


def test_a_valid_request_is_sent_without_importing_jsonschema(emu):
    """jsonschema is imported to find and word what is wrong with a request, not to find that
    nothing is (services/schema_check.py)."""
    env = subprocess_env(emu)
    args = ["generate", "alibaba/z-image-turbo-t2i", "a fox", "-i", "seed=7"]
    stdout, modules = run_listing_modules([*args, "-i", "size=1024x768"], env)
    assert stdout.startswith("image_")
    assert not [m for m in modules if m.startswith("jsonschema")]
    # the check can fail: a request with something wrong imports it, and says what
    stdout, modules = run_listing_modules([*args, "-i", "size=1x1"], env, exit_code=2)
    assert stdout == "" and "jsonschema" in modules
