"""`siray emulator`: serve the API.md contract locally, or run a command against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.cli import get_context
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
        help="Inject a fault, e.g. 'action=status,status=503,body=html,path=^/v1/,count=2' "
        "(see README: Emulator). Repeatable.",
        show_default=False,
    ),
]


def _config(
    port: int,
    task_seconds: float,
    create_shape: str,
    no_cancel: bool,
    api_key: str | None,
    models_file: Path | None,
    *,
    sts_token_requests: int | None,
    tls: bool,
) -> EmulatorConfig:
    from siray_cli.emulator.catalogue import load_models
    from siray_cli.emulator.server import EMULATOR_API_KEY, EmulatorConfig

    if create_shape not in ("nested", "flat", "id"):
        raise UsageError(f"--create-shape {create_shape!r} is not one of nested, flat, id")
    extra = {}
    if models_file is not None:
        try:
            extra = load_models(models_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"--models {models_file}: {exc}") from None
    return EmulatorConfig(
        port=port,
        task_seconds=task_seconds,
        create_shape=create_shape,
        cancel_supported=not no_cancel,
        api_key=api_key or EMULATOR_API_KEY,
        extra_models=extra,
        sts_token_requests=sts_token_requests,
        tls=tls,
    )


def _start(config: EmulatorConfig, faults: list[str] | None):  # type: ignore[no-untyped-def]
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


@app.callback()
def emulator(
    ctx: typer.Context,
    port: int = typer.Option(
        8787, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."
    ),
    task_seconds: float = typer.Option(
        3.0, "--task-seconds", min=0.05, help="How long each task takes to finish."
    ),
    create_shape: str = typer.Option(
        "nested",
        "--create-shape",
        help="Create-response shape: nested (data.task_id, as "
        "API.md), flat (top-level task_id) or id.",
    ),
    no_cancel: bool = typer.Option(
        False, "--no-cancel", help="Act as a server without the cancel endpoint (404)."
    ),
    api_key: str | None = typer.Option(
        None, "--key", help="The key it accepts (default: siray-emulator-key).", show_default=False
    ),
    models_file: Annotated[
        Path | None,
        typer.Option(
            "--models",
            help="Also serve the models in FILE (the gateway's catalogue format), "
            "e.g. to try a model newer than the emulator.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    sts_token_requests: Annotated[
        int | None,
        typer.Option(
            "--sts-token-requests",
            min=1,
            help="Make each upload token expire after this many S3 requests.",
            show_default=False,
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve https with a throwaway certificate (SSL_CERT_FILE "
            "names it for the commands run against it).",
        ),
    ] = False,
    fault: FaultOpt = None,
) -> None:
    """Serve the Siray API contract on 127.0.0.1 in the foreground (Ctrl-C stops it)."""
    ctx.obj = {
        "config": _config(
            port,
            task_seconds,
            create_shape,
            no_cancel,
            api_key,
            models_file,
            sts_token_requests=sts_token_requests,
            tls=tls,
        ),
        "faults": fault,
    }
    if ctx.invoked_subcommand is not None:
        return
    output = get_context(ctx).output
    config = ctx.obj["config"]
    config.log = output.info
    server = _start(config, fault)
    for name, value in server.environment().items():
        output.data(f"export {name}={value}")
    output.info(f"siray emulator listening on {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        output.info("emulator stopped")
    finally:
        server.stop()


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    command: Annotated[
        list[str], typer.Argument(help="The command to run, after --.", metavar="-- CMD [ARGS]...")
    ],
) -> int:
    """Start the emulator on a free port, run CMD with SIRAY_BASE_URL, SIRAY_GATEWAY_URL and
    SIRAY_API_KEY pointing at it, stop it, and exit with CMD's status."""
    settings = ctx.parent.obj if ctx.parent is not None else {}
    config: EmulatorConfig = settings["config"]
    if config.port == 8787:
        config.port = 0
    server = _start(config, settings["faults"])
    environment = dict(os.environ)
    environment.update(server.environment())
    try:
        with server:
            try:
                completed = subprocess.run(command, env=environment, check=False)
            except FileNotFoundError:
                raise UsageError(f"command not found: {command[0]}") from None
            except PermissionError:
                raise UsageError(f"command not executable: {command[0]}") from None
    finally:
        sys.stdout.flush()
    return completed.returncode if completed.returncode >= 0 else 128 - completed.returncode
