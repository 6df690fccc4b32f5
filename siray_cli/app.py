"""The root of the command tree: global options, command registration, and main(), which turns
every exception into one message and one documented exit code."""

import contextlib
import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from siray_cli import __version__, signals
from siray_cli.completion import CompletingGroup
from siray_cli.errors import EXIT_CODE_HELP, ExitCode, SirayError, exit_code_for
from siray_cli.providers import DEFAULT_PROVIDER, PROVIDERS
from siray_cli.settings import DEFAULT_BASE_URL, DEFAULT_GATEWAY_URL, DEFAULT_PROFILE

if TYPE_CHECKING:
    from siray_cli.output import Output

EXIT_CODES_EPILOG = "Exit codes: " + "; ".join(
    f"{int(code)} {meaning}" for code, meaning in EXIT_CODE_HELP
)


@dataclass(frozen=True)
class Entry:
    """Where a command lives, and the first paragraph of its help (the root's command list)."""

    module: str
    attribute: str
    summary: str
    group: bool = False  # a Typer app added with add_typer, else a function
    help: str | None = None  # help given at registration (an alias's), else the command's own


# The fixed command table, in the order `siray --help` lists it (Typer's: functions, then
# groups). Only the command that runs is imported and built; docs.py builds the whole tree from
# this table, and tests/test_startup.py checks it against that tree, summaries included.
COMMANDS: dict[str, Entry] = {
    "generate": Entry(
        "siray_cli.commands.generate",
        "generate",
        "Submit a task and print its id (it runs on; follow it with `siray status ID --wait`).",
    ),
    "run": Entry(
        "siray_cli.commands.run",
        "run",
        "Submit a task, wait for it with live progress, and print (or download) its outputs.",
    ),
    "status": Entry(
        "siray_cli.commands.status",
        "status",
        "Show the state of tasks: status, progress, outputs, failure reason, timings.",
    ),
    "cancel": Entry(
        "siray_cli.commands.cancel",
        "cancel",
        "Cancel tasks that have not started yet (a running or finished task cannot be cancelled).",
    ),
    "upload": Entry(
        "siray_cli.commands.upload",
        "upload",
        "Upload files to Siray storage and print their public URLs, one per line, in order.",
    ),
    "estimate": Entry(
        "siray_cli.commands.estimate",
        "estimate",
        "Print what a request would cost (credits, USD), without submitting it.",
    ),
    "download": Entry(
        "siray_cli.commands.download",
        "download",
        "Download the outputs of finished tasks later, as `run -o` does.",
    ),
    "help": Entry(
        "siray_cli.commands.help_topics",
        "help_topic",
        "Print a command's help, or a reference table: exit codes, environment variables or files.",
    ),
    "history": Entry(
        "siray_cli.commands.history",
        "app",
        "The tasks siray submitted, newest first (recorded locally).",
        group=True,
    ),
    "ls": Entry(
        "siray_cli.commands.history",
        "app",
        "Alias of `siray history`.",
        group=True,
        help="Alias of `siray history`.",
    ),
    "models": Entry(
        "siray_cli.commands.models",
        "app",
        "The model catalogue: list models, show a model's inputs.",
        group=True,
    ),
    "auth": Entry(
        "siray_cli.commands.auth",
        "app",
        "Log in, show the key in effect, log out.",
        group=True,
    ),
    "config": Entry(
        "siray_cli.commands.config",
        "app",
        "Read and change settings (config file, profiles).",
        group=True,
    ),
    "emulator": Entry(
        "siray_cli.commands.emulator",
        "app",
        "A local emulator of the Siray API, for tests and offline scripts.",
        group=True,
    ),
}

SETTINGS: dict[str, Any] = {
    "name": "siray",
    "help": "Siray AI image and video generation from a terminal, a script or a CI job.\n\n"
    "Data (ids, URLs, paths, JSON) goes to stdout; messages and progress go to stderr.",
    "epilog": EXIT_CODES_EPILOG,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    # siray's own --show-completion/--install-completion [SHELL] and completion classes
    "add_completion": False,
    # plain help, as git and gh print it: rendering it with rich costs more than the rest of a
    # start-up (rich, markdown_it and pygments)
    "rich_markup_mode": None,
}


def register(target: typer.Typer, name: str) -> None:
    """Add the command `name` to `target` as the root registers it."""
    entry = COMMANDS[name]
    found = getattr(importlib.import_module(entry.module), entry.attribute)
    if entry.group:
        if entry.help is None:
            target.add_typer(found, name=name)
        else:
            target.add_typer(found, name=name, help=entry.help)
    else:
        target.command(name)(found)


def build_command(name: str) -> click.Command:
    """The click command `name`, built exactly as it is in the whole tree: registered on an app
    with the root's settings, then taken out of the group Typer builds."""
    holder = typer.Typer(**SETTINGS)
    register(holder, name)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(CompletingGroup):
    """The root command with a fixed command table: until a command is asked for, the group
    holds a stand-in carrying its name and summary (enough for the command list, "did you mean"
    and completion of names); asking for it imports its module and builds it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, entry in COMMANDS.items():
            self.commands[name] = _StandIn(name, help=entry.summary)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if isinstance(command, _StandIn):
            command = self.commands[cmd_name] = build_command(cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's list of commands, read from the table (no command is built for it)."""
        commands = [(name, self.commands[name]) for name in self.list_commands(ctx)]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _StandIn(click.Command):
    """A command not built yet (see LazyGroup)."""


def root_app(cls: type[CompletingGroup] = LazyGroup) -> typer.Typer:
    """The root: its options and callback; the commands come from COMMANDS."""
    built = typer.Typer(**SETTINGS, cls=cls)
    built.callback()(root)
    return built


def whole_tree() -> click.Command:
    """Every command built (docs.py, and the tests that compare the lazy root with it)."""
    built = root_app(CompletingGroup)
    for name in COMMANDS:
        register(built, name)
    return typer.main.get_command(built)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"siray {__version__}\n")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help=f"The API to speak to: {' or '.join(PROVIDERS)} (default: $SIRAY_PROVIDER, "
            f"the profile's provider, else {DEFAULT_PROVIDER}).",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="API key (default: $SIRAY_API_KEY; for Higgsfield $HF_KEY, key_id:key_secret).",
            show_default=False,
        ),
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
    json_mode: Annotated[
        bool,
        typer.Option(
            "--json", help="Print JSON on stdout, as each command's own --json does (errors too)."
        ),
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
    from siray_cli.cli import AppContext, notices_for
    from siray_cli.output import Output
    from siray_cli.services.session import Session
    from siray_cli.settings import Settings

    output: Output = ctx.obj
    output.quiet = quiet
    output.debug_enabled = debug
    output.json_mode = json_mode
    flags: dict[str, str | None] = {
        "provider": provider,
        "api_key": api_key,
        "base_url": base_url,
        "gateway_url": gateway_url,
        "history": "off" if no_history else None,
    }

    def settings() -> Settings:  # read on first use: `siray CMD --help` reads no config file
        return Settings(
            flags,
            profile=profile,
            warn=output.warn,
            on_secret=output.add_secret,
            trace=output.trace,
        )

    session = Session(settings, notices_for(output))
    ctx.obj = AppContext(output, session)
    ctx.call_on_close(session.close)


app = root_app()
_root: list[click.Command] = []


def root_command() -> click.Command:
    """The root click command, built once per process (main() may run many times in one)."""
    if not _root:
        _root.append(typer.main.get_command(app))
    return _root[0]


def _wants_json(args: list[str]) -> bool:
    before_separator = args[: args.index("--")] if "--" in args else args
    return "--json" in before_separator


# Options of the root that may also come after the command, as gh takes them: moved before it.
ANYWHERE = ("-q", "--quiet", "--debug")
ROOT_VALUE_OPTIONS = ("--provider", "--api-key", "--base-url", "--gateway-url", "--profile")


def hoist_global_options(args: list[str]) -> list[str]:
    """`siray status ID -q` as `siray -q status ID`. Only before `--`, never inside `emulator`
    (whose `exec` passes everything on to its command)."""
    end = args.index("--") if "--" in args else len(args)
    command, index = None, 0
    while index < end:  # the command: the first word that is not a root option or its value
        if args[index] in ROOT_VALUE_OPTIONS:
            index += 2
        elif args[index].startswith("-"):
            index += 1
        else:
            command = index
            break
    if command is None or args[command] == "emulator":
        return args
    moved = [a for a in args[command:end] if a in ANYWHERE]
    if not moved:
        return args
    rest = [a for a in args[command:end] if a not in ANYWHERE]
    return [*args[:command], *moved, *rest, *args[end:]]


def main(argv: list[str] | None = None) -> int:
    """The console script. Returns the exit code (see EXIT_CODE_HELP)."""
    args = hoist_global_options(sys.argv[1:] if argv is None else list(argv))
    from siray_cli.output import Output

    output = Output()
    command = root_command()
    if not args and not os.environ.get("_SIRAY_COMPLETE"):
        # help that nobody asked for is not data: it goes to stderr, with the usage exit code
        with contextlib.redirect_stdout(sys.stderr):
            command.main(args=["--help"], prog_name="siray", standalone_mode=False, obj=output)
        return ExitCode.USAGE
    try:
        result = command.main(args=args, prog_name="siray", standalone_mode=False, obj=output)
    except click.exceptions.NoArgsIsHelpError as exc:  # `siray auth`: the group's help, as asked
        exc.show(file=sys.stderr)
        return exc.exit_code
    except click.ClickException as exc:
        output.json_mode = output.json_mode or _wants_json(args)
        output.error(
            _click_message(exc),
            hint=_usage_hint(exc),
            error_type="usage_error" if isinstance(exc, click.UsageError) else "error",
        )
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _interrupted(output, args)
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
        return _interrupted(output, args)  # Typer turns a bare KeyboardInterrupt into a silent 130
    return code


def _interrupted(output: "Output", args: list[str]) -> int:
    """A signal with no task to report: say so (and, with --json, on stdout too)."""
    output.always(signals.name())
    if output.json_mode or _wants_json(args):
        output.error_json(signals.name(), error_type="interrupted")
    return signals.exit_code()


def _click_message(exc: click.ClickException) -> str:
    """Click's message in one line. A mistyped command keeps Typer's suggestions, which are
    ordered by closeness, and not Click's own list as well."""
    if isinstance(exc, click.exceptions.NoSuchCommand):
        message = exc.message
    else:
        message = exc.format_message()
    return " ".join(message.split())


def _usage_hint(exc: click.ClickException) -> str | None:
    context = getattr(exc, "ctx", None)
    if context is None:
        return None
    return f"`{context.command_path} --help` shows the usage"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail on a closed pipe."""
    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
