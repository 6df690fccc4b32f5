"""The root of the command tree: global options, command registration, and main(), which turns
every exception into one message and one documented exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import click
import typer

from siray_cli import __version__, signals
from siray_cli.cli import AppContext, notices_for
from siray_cli.commands import (
    auth,
    cancel,
    download,
    emulator,
    generate,
    help_topics,
    history,
    models,
    run,
    status,
    upload,
)
from siray_cli.commands import config as config_command
from siray_cli.completion import CompletingGroup
from siray_cli.errors import EXIT_CODE_HELP, ExitCode, SirayError, exit_code_for
from siray_cli.output import Output
from siray_cli.services.session import Session
from siray_cli.settings import DEFAULT_BASE_URL, DEFAULT_GATEWAY_URL, DEFAULT_PROFILE, Settings

EXIT_CODES_EPILOG = "Exit codes: " + "; ".join(
    f"{int(code)} {meaning}" for code, meaning in EXIT_CODE_HELP
)

app = typer.Typer(
    name="siray",
    help="Siray AI image and video generation from a terminal, a script or a CI job.\n\n"
    "Data (ids, URLs, paths, JSON) goes to stdout; messages and progress go to stderr.",
    epilog=EXIT_CODES_EPILOG,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # siray's own --show-completion/--install-completion [SHELL] and completion classes
    add_completion=False,
    cls=CompletingGroup,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"siray {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="API key (default: $SIRAY_API_KEY).", show_default=False),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help=f"API URL (default: $SIRAY_BASE_URL, else {DEFAULT_BASE_URL}).",
            show_default=False,
        ),
    ] = None,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            "--gateway-url",
            help=f"Gateway URL (default: $SIRAY_GATEWAY_URL, else {DEFAULT_GATEWAY_URL}).",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help=f"Config profile to use (default: $SIRAY_PROFILE, else {DEFAULT_PROFILE}).",
            show_default=False,
        ),
    ] = None,
    no_history: Annotated[
        bool,
        typer.Option("--no-history", help="Do not record tasks in the local history."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only data and errors; no progress or hints.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Trace HTTP requests (method, URL, status, time) to stderr; "
            "the key is never shown.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    output: Output = ctx.obj
    output.quiet = quiet
    output.debug_enabled = debug
    settings = Settings(
        {
            "api_key": api_key,
            "base_url": base_url,
            "gateway_url": gateway_url,
            "history": "off" if no_history else None,
        },
        profile=profile,
        warn=output.warn,
        on_secret=output.add_secret,
    )
    ctx.obj = AppContext(output, Session(settings, notices_for(output)))


app.command("generate")(generate.generate)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("cancel")(cancel.cancel)
app.command("upload")(upload.upload)
app.command("download")(download.download)
app.add_typer(history.app, name="history")
app.add_typer(history.app, name="ls", help="Alias of `siray history`.")
app.add_typer(models.app, name="models")
app.add_typer(auth.app, name="auth")
app.add_typer(config_command.app, name="config")
app.add_typer(emulator.app, name="emulator")
app.command("help")(help_topics.help_topic)


def _wants_json(args: list[str]) -> bool:
    before_separator = args[: args.index("--")] if "--" in args else args
    return "--json" in before_separator


def main(argv: list[str] | None = None) -> int:
    """The console script. Returns the exit code (see EXIT_CODE_HELP)."""
    args = sys.argv[1:] if argv is None else list(argv)
    output = Output()
    command = typer.main.get_command(app)
    if not args and not os.environ.get("_SIRAY_COMPLETE"):
        # help that nobody asked for is not data: it goes to stderr, with the usage exit code
        with contextlib.redirect_stdout(sys.stderr):
            command.main(args=["--help"], prog_name="siray", standalone_mode=False, obj=output)
        return ExitCode.USAGE
    try:
        result = command.main(args=args, prog_name="siray", standalone_mode=False, obj=output)
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        if _wants_json(args):
            output.json_mode = True
            output.emit_json(
                {
                    "error": {
                        "type": "usage_error",
                        "message": exc.format_message(),
                        "status_code": None,
                        "task_id": None,
                    }
                }
            )
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        output.always(signals.name())
        return signals.exit_code()
    except SirayError as exc:
        output.report(exc)
        mapped = exit_code_for(exc)
        return signals.exit_code() if mapped == ExitCode.INTERRUPTED else mapped
    except BrokenPipeError:
        # the reader of stdout went away (`| head`): nothing more to say to anyone
        _silence_stdout()
        return ExitCode.OK
    except Exception as exc:  # a bug: say so in one line, with the traceback only under --debug
        if signals.interrupted():  # a Ctrl-C that library code turned into another exception
            output.always(signals.name())
            return signals.exit_code()
        if output.debug_enabled:
            import traceback

            output.always(output.scrub(traceback.format_exc()))
        output.error(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="run again with --debug for the traceback, and report it",
            error_type="internal_error",
        )
        return ExitCode.API
    if output.reader_gone:
        _silence_stdout()
    code = int(result) if isinstance(result, int) else ExitCode.OK
    if code == ExitCode.INTERRUPTED and signals.interrupted():
        output.always(signals.name())  # Typer turns a bare KeyboardInterrupt into a silent 130
        return signals.exit_code()
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail on a closed pipe."""
    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
