"""`siray emulator`: serve the API.md contract locally, or run a command against it."""

import errno
import functools
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.errors import UsageError

if TYPE_CHECKING:
    from siray_cli.emulator.server import EmulatorConfig

app = typer.Typer(
    help="A local emulator of the Siray API, for tests and offline scripts.",
    invoke_without_command=True,
    no_args_is_help=False,
)

FaultOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fault",
        help="Inject a fault, e.g. 'action=status,status=503,count=2' (every field: "
        "docs/emulator.md). Repeatable.",
        show_default=False,
    ),
]


def _config(values: dict[str, Any]) -> "EmulatorConfig":
    from siray_cli.emulator.catalogue import load_models
    from siray_cli.emulator.server import EMULATOR_API_KEY, EmulatorConfig

    create_shape, models_file = values["create_shape"], values["models_file"]
    if create_shape not in ("nested", "flat", "id"):
        raise UsageError(f"--create-shape {create_shape!r} is not one of nested, flat, id")
    extra = {}
    if models_file is not None:
        try:
            extra = load_models(models_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"--models {models_file}: {exc}") from None
    return EmulatorConfig(
        port=values["port"],
        task_seconds=values["task_seconds"],
        create_shape=create_shape,
        cancel_supported=not values["no_cancel"],
        api_key=values["api_key"] or EMULATOR_API_KEY,
        extra_models=extra,
        sts_token_requests=values["sts_token_requests"],
        tls=values["tls"],
        rate_limit=values.get("rate_limit"),
    )


def _check_extras(output: Any) -> None:
    """Say at once what the emulator cannot do here, rather than in the middle of a run."""
    import importlib.util

    if importlib.util.find_spec("moto") is None:
        output.warn(
            "uploads (siray upload, local files as inputs) need the emulator's S3 store: "
            "pip install 'siray-cli[emulator]'"
        )


def _start(config: "EmulatorConfig", faults: list[str] | None):  # type: ignore[no-untyped-def]
    from siray_cli.emulator.faults import Fault, FaultSpecError
    from siray_cli.emulator.server import Emulator

    try:
        parsed = [Fault.parse(spec) for spec in faults or []]
    except FaultSpecError as exc:
        raise UsageError(str(exc)) from None
    try:
        emulator = Emulator(config)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
            hint="choose another --port (0 picks a free one)",
        ) from None
    for fault in parsed:
        emulator.state.faults.add(fault)
    return emulator


PortOpt = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="Port on 127.0.0.1 (0: any free port). Default: 8787.",
        show_default=False,
    ),
]
TaskSecondsOpt = Annotated[
    float | None,
    typer.Option(
        "--task-seconds",
        min=0.05,
        envvar="SIRAY_EMULATOR_TASK_SECONDS",
        help="How long each task takes to finish. Default: 3.",
        show_default=False,
    ),
]
CreateShapeOpt = Annotated[
    str | None,
    typer.Option(
        "--create-shape",
        help="Create-response shape: nested (data.task_id, as the API documents), flat "
        "(top-level task_id) or id. Default: nested.",
        show_default=False,
    ),
]
NoCancelOpt = Annotated[
    bool | None,
    typer.Option(
        "--no-cancel",
        help="Act as a server without the cancel endpoint (404).",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key", help="The key it accepts (default: siray-emulator-key).", show_default=False
    ),
]
ModelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--models",
        help="Also serve the models in FILE (the gateway's catalogue format), "
        "e.g. to try a model newer than the emulator.",
        metavar="FILE",
        show_default=False,
    ),
]
StsOpt = Annotated[
    int | None,
    typer.Option(
        "--sts-token-requests",
        min=1,
        help="Make each upload token expire after this many S3 requests.",
        show_default=False,
    ),
]
TlsOpt = Annotated[
    bool | None,
    typer.Option(
        "--tls",
        help="Serve https with a throwaway certificate (SSL_CERT_FILE "
        "names it for the commands run against it).",
        show_default=False,
    ),
]
RateLimitOpt = Annotated[
    float | None,
    typer.Option(
        "--rate-limit",
        min=1,
        help="Answer 429 with Retry-After to API requests beyond N a second per key.",
        metavar="N",
        show_default=False,
    ),
]
DEFAULTS: dict[str, Any] = {
    "port": 8787,
    "task_seconds": 3.0,
    "create_shape": "nested",
    "no_cancel": False,
    "api_key": None,
    "models_file": None,
    "sts_token_requests": None,
    "tls": False,
    "fault": None,
    "rate_limit": None,
}


OPTIONS: dict[str, Any] = {  # the emulator's options, the same on the group, `exec` and `start`
    "port": PortOpt,
    "task_seconds": TaskSecondsOpt,
    "create_shape": CreateShapeOpt,
    "no_cancel": NoCancelOpt,
    "api_key": KeyOpt,
    "models_file": ModelsOpt,
    "sts_token_requests": StsOpt,
    "tls": TlsOpt,
    "fault": FaultOpt,
    "rate_limit": RateLimitOpt,
}


def _with_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the emulator's options (OPTIONS): Typer sees them in its signature, and
    the command gets those given (not None) as one dict, `options`."""

    @functools.wraps(command)
    def with_options(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in OPTIONS}
        options = {name: value for name, value in given.items() if value is not None}
        return command(*args, options=options, **kwargs)

    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "options"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in OPTIONS.items()
    ]
    with_options.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    with_options.__annotations__ = {
        name: kind for name, kind in with_options.__annotations__.items() if name != "options"
    }
    return with_options


@app.callback()
@_with_options
def emulator(
    ctx: typer.Context,
    options: dict[str, Any],
) -> None:
    """Serve the Siray API contract on 127.0.0.1 in the foreground (Ctrl-C stops it)."""
    values = {**DEFAULTS, **options}
    ctx.obj = values  # `exec` reads them, and may override them
    if ctx.invoked_subcommand is not None:
        return
    _check_extras(get_context(ctx).output)
    output = get_context(ctx).output
    config = _config(values)
    config.log = output.info
    server = _start(config, values["fault"])
    # the tasks of the commands pointed at it live and die with it (see `exec`)
    history = tempfile.TemporaryDirectory(prefix="siray-emulator-history-")
    output.data_lines(_exports({**server.environment(), "SIRAY_DATA_DIR": history.name}))
    output.info(f"siray emulator listening on {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        output.info("emulator stopped")
    finally:
        server.stop()
        history.cleanup()


def _exports(environment: dict[str, str]) -> list[str]:
    """`export NAME=VALUE` lines for a shell's eval, each value quoted as the shell reads it."""
    import shlex

    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def _values(ctx: typer.Context, given: dict[str, Any]) -> dict[str, Any]:
    """The emulator's options given to the group (`siray emulator --port 0 exec`), then to the
    subcommand (which win)."""
    parent = ctx.parent.obj if ctx.parent is not None else None
    return {**(parent if isinstance(parent, dict) else DEFAULTS), **given}


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
@_with_options
def exec_(
    ctx: typer.Context,
    command: Annotated[
        list[str], typer.Argument(help="The command to run, after --.", metavar="-- CMD [ARGS]...")
    ],
    options: dict[str, Any],
) -> int:
    """Run CMD against an emulator on a free port, then stop the emulator.

    CMD runs with SIRAY_BASE_URL, SIRAY_GATEWAY_URL and SIRAY_API_KEY pointing at the emulator;
    siray exits with CMD's status.

    CMD's tasks are recorded in a history of their own (SIRAY_DATA_DIR, a temporary directory
    removed at the end): they end with the emulator, and never stay pending in yours.

    The emulator's options may come before or after `exec` (after wins), always before `--`.
    """
    given = options
    values = _values(ctx, given)
    if "port" not in given and values["port"] == DEFAULTS["port"]:
        values["port"] = 0  # a free port, unless one was asked for
    _check_extras(get_context(ctx).output)
    server = _start(_config(values), values["fault"])
    environment = dict(os.environ)
    environment.update(server.environment())
    # CMD's tasks live and die with this emulator: they are recorded in a history of their own,
    # removed with it, so a task left pending here never counts as pending in the user's
    # history (where `status --all-pending` would ask a server gone for good, forever)
    history = tempfile.TemporaryDirectory(prefix="siray-emulator-history-")
    environment["SIRAY_DATA_DIR"] = history.name
    try:
        with server, history:
            return _run_as_a_shell_would(command, environment, get_context(ctx).output)
    finally:
        sys.stdout.flush()


def _run_as_a_shell_would(command: list[str], environment: dict[str, str], output: Any) -> int:
    """Run CMD as a shell runs it: a file exec refuses (ENOEXEC: no `#!` line) that is not
    binary is a shell script, run by /bin/sh (POSIX); otherwise told as a shell tells it, with
    its codes: 127 not found, 126 found but not runnable."""
    try:
        completed = subprocess.run(command, env=environment, check=False)
    except OSError as exc:
        path = _located(command[0], environment.get("PATH"))
        if exc.errno == errno.ENOEXEC and path is not None and not _binary(path):
            script = ["/bin/sh", path, *command[1:]]
            completed = subprocess.run(script, env=environment, check=False)
        else:
            output.report(_not_run(command[0], path, exc))
            return 127 if path is None else 126
    return completed.returncode if completed.returncode >= 0 else 128 - completed.returncode


def _located(name: str, search: str | None) -> str | None:
    """The file CMD names, executable or not: a path as given, a bare name looked up on PATH
    (an executable one first, as exec does)."""
    if "/" in name:
        return name if os.path.exists(name) else None
    found = shutil.which(name, path=search)
    if found is not None:
        return found
    for directory in (search if search is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _binary(path: str) -> bool:
    """A NUL byte before the first newline, as bash decides a file is no script."""
    try:
        with open(path, "rb") as file:
            sample = file.read(80)
    except OSError:
        return True
    return b"\0" in sample.split(b"\n", 1)[0]


def _not_run(name: str, path: str | None, exc: OSError) -> UsageError:
    anywhere = "give CMD as a path, or a name on PATH, after --"
    if path is None:
        return UsageError(f"command not found: {name}", hint=anywhere)
    if os.path.isdir(path):
        return UsageError(f"command is a directory: {name}", hint=anywhere)
    if isinstance(exc, FileNotFoundError):  # the file is there: its `#!` interpreter is not
        return UsageError(
            f"cannot run {name}: the interpreter its first line (#!) names is not found",
            hint=f"fix the first line of {path}",
        )
    if isinstance(exc, PermissionError) and os.path.isfile(path):
        if not os.stat(path).st_mode & 0o111:
            return UsageError(
                f"command not executable: {name}", hint=f"chmod +x {shlex.quote(path)}"
            )
        return UsageError(f"command not executable: {name} ({exc.strerror})")
    return UsageError(f"cannot run {name}: {exc.strerror}")


@app.command("start")
@_with_options
def start(
    ctx: typer.Context,
    options: dict[str, Any],
) -> None:
    """Start an emulator in the background; print the lines to eval.

    `eval "$(siray emulator start)"` points siray at it. It returns once the emulator answers.
    Its commands' tasks are recorded in a history of its own (SIRAY_DATA_DIR), removed when it
    stops. Started already with the same options, it says so and prints the same lines; with
    others, stop it first. Its log, PID and port are kept in $SIRAY_STATE_DIR/emulator.
    """
    values = _values(ctx, options)
    from siray_cli.emulator import background

    output = get_context(ctx).output
    if values["models_file"] is not None:  # it runs elsewhere: a path that means the same there
        values["models_file"] = values["models_file"].resolve()
    _start_checks(values)
    options = json.loads(json.dumps(values, default=str))
    directory = background.home()
    with background.locked(directory):
        running, stale = background.find(directory)
        if stale is not None:
            output.warn(f"the emulator recorded as PID {stale.pid} is gone: starting another")
        if running is not None and running.options != options:
            raise UsageError(
                f"an emulator is already running on {running.url} (PID {running.pid}) with "
                "other options",
                hint='stop it first (its variables too): eval "$(siray emulator stop)"',
            )
        if running is not None:
            output.info(f"the emulator is already running on {running.url} (PID {running.pid})")
        else:
            _check_extras(output)
            command = [sys.executable, "-m", "siray_cli", *background.DAEMON]
            running = background.launch(directory, options, command, os.environ)
            output.info(f"siray emulator listening on {running.url} (PID {running.pid})")
    output.data_lines(_exports(running.environment))


def _start_checks(values: dict[str, Any]) -> None:
    """What the emulator would refuse, refused here, before anything is started."""
    from siray_cli.emulator.faults import Fault, FaultSpecError

    _config(values)
    try:
        for spec in values["fault"] or []:
            Fault.parse(spec)
    except FaultSpecError as exc:
        raise UsageError(str(exc)) from None


@app.command("daemon", hidden=True)
def daemon(ctx: typer.Context, directory: Annotated[Path, typer.Argument()]) -> None:
    """The process `siray emulator start` launches: serve until SIGTERM, from DIRECTORY's
    options, and record in DIRECTORY where it listens."""
    from siray_cli.emulator import background

    output = get_context(ctx).output
    values = background.read_options(directory)
    if values["models_file"] is not None:
        values["models_file"] = Path(values["models_file"])
    config = _config(values)
    config.log = output.info
    server = _start(config, values["fault"])
    environment = {**server.environment(), "SIRAY_DATA_DIR": str(background.history_dir(directory))}
    running = background.Running(
        os.getpid(),
        server.url,
        server.port,
        server.state.started_at,
        environment,
        background.read_options(directory),
    )
    try:
        background.record(directory, running)
        server.serve_forever()
    except KeyboardInterrupt:
        output.info("emulator stopped")
    finally:
        server.stop()
        background.forget(directory, pid=os.getpid())


@app.command("stop")
def stop(
    ctx: typer.Context,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0,
            help="Seconds to wait after SIGTERM before SIGKILL.",
        ),
    ] = 10.0,
) -> None:
    """Stop the background emulator; print the lines to eval.

    `eval "$(siray emulator stop)"` unsets the variables it exported that are still in effect
    here. Only a process proved to be that emulator is signalled (SIGTERM, then SIGKILL); none
    running is no error.
    """
    from siray_cli.emulator import background

    output = get_context(ctx).output
    stopped, stale = background.stop(background.home(), timeout)
    ended = stopped or stale
    if stopped is not None:
        output.info(f"emulator stopped (PID {stopped.pid}, {stopped.url})")
    elif stale is not None:
        output.info(f"the emulator recorded as PID {stale.pid} was gone already")
    else:
        output.info("no emulator was running")
    if ended is None:
        return
    # gone or stopped, its variables go too: else the shell points at a dead emulator
    environ = output.environment.variables
    output.data_lines(
        f"unset {name}" for name, value in ended.environment.items() if environ.get(name) == value
    )


@app.command("status")
def status(ctx: typer.Context, json_mode: JsonOpt = False) -> None:
    """Where the background emulator is: URL, PID, uptime, tasks.

    The emulator `siray emulator start` started. Exit 2 when none is running.
    """
    import time

    from siray_cli.emulator import background
    from siray_cli.errors import EmulatorNotRunningError
    from siray_cli.output import duration

    output = get_context(ctx, json_mode).output
    directory = background.home()
    running, _ = background.find(directory)
    if running is None:
        raise EmulatorNotRunningError(
            "no emulator is running", hint='start one: eval "$(siray emulator start)"'
        )
    stats = background.ask(running, "/_emulator/stats") or {}
    uptime = max(0.0, time.time() - running.started_at)
    document = {
        **running.to_json(),
        "uptime_seconds": round(uptime, 1),
        "tasks_created": stats.get("tasks_created"),
        "log": str(background.log_path(directory)),
    }
    rows = [
        ("url", running.url),
        ("pid", str(running.pid)),
        ("uptime", duration(int(uptime))),
        ("tasks", str(stats.get("tasks_created", "-"))),
        ("log", document["log"]),
    ]
    output.table(rows, ["what", "value"], document=document)
