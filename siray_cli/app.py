"""The command tree: the root's global options and the registration of every command, each built
only when it runs (see main.py for the console script and its exception table)."""

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from siray_cli import __version__
from siray_cli.completion import CompletingGroup
from siray_cli.helptext import examples_text, finish, summary
from siray_cli.providers import DEFAULT_PROVIDER, PROVIDERS
from siray_cli.settings import DEFAULT_BASE_URL, DEFAULT_GATEWAY_URL, DEFAULT_PROFILE

if TYPE_CHECKING:
    pass

# the exit codes, the environment and the files are a topic each of `siray help`
ROOT_EPILOG = "Exit codes: `siray help exit-codes` (also: environment, files).\n\n" + (
    examples_text("siray") or ""
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
        "Submit a task and print its id, without waiting for it.",
    ),
    "run": Entry(
        "siray_cli.commands.run",
        "run",
        "Submit a task, wait for it, and print or download its outputs.",
    ),
    "status": Entry(
        "siray_cli.commands.status",
        "status",
        "Show the state of tasks: progress, outputs, failure reason.",
    ),
    "cancel": Entry(
        "siray_cli.commands.cancel",
        "cancel",
        "Cancel tasks that have not started yet.",
    ),
    "upload": Entry(
        "siray_cli.commands.upload",
        "upload",
        "Upload files to Siray storage and print their public URLs.",
    ),
    "estimate": Entry(
        "siray_cli.commands.estimate",
        "estimate",
        "Print what a request would cost, without submitting it.",
    ),
    "download": Entry(
        "siray_cli.commands.download",
        "download",
        "Download the outputs of finished tasks later, as `run -o` does.",
    ),
    "open": Entry(
        "siray_cli.commands.open_outputs",
        "open_outputs",
        "Open a finished task's outputs in the system's viewer.",
    ),
    "gallery": Entry(
        "siray_cli.commands.gallery",
        "gallery",
        "Write an HTML page of tasks: outputs, prompts, inputs, states.",
    ),
    "info": Entry(
        "siray_cli.commands.info",
        "info",
        "Show what made a file: task, provider, model, prompt, inputs.",
    ),
    "rerun": Entry(
        "siray_cli.commands.rerun",
        "rerun",
        "Submit the request that made a file or task again, as a new task.",
    ),
    "help": Entry(
        "siray_cli.commands.help_topics",
        "help_topic",
        "Print a command's help or a topic: exit-codes, environment, files.",
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
    "epilog": ROOT_EPILOG,
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
    return finish(typer.main.get_group(holder).commands[name], f"siray {name}")


class LazyGroup(CompletingGroup):
    """The root command with a fixed command table: until a command is asked for, the group
    holds a stand-in carrying its name and summary (enough for the command list, "did you mean"
    and completion of names); asking for it imports its module and builds it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, entry in COMMANDS.items():
            self.commands[name] = _StandIn(name, help=entry.summary, short_help=entry.summary)

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
            # each summary whole (a long one wraps, as an option's help does): never cut
            rows = [(name, summary(command)) for name, command in commands]
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
    tree = typer.main.get_command(built)
    assert isinstance(tree, click.Group)
    for name, command in tree.commands.items():
        finish(command, f"siray {name}")
    return tree


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
    from siray_cli.commands._context import AppContext, notices_for
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

    environment = output.environment

    def settings() -> Settings:  # read on first use: `siray CMD --help` reads no config file
        return Settings(
            flags,
            profile=profile,
            env=environment.variables,
            warn=output.warn,
            on_secret=output.add_secret,
            trace=output.trace,
        )

    session = Session(settings, notices_for(output), environment)
    output.prefix = session.command_prefix
    output.commands = [name for name in COMMANDS if name not in ("help", "emulator")]
    ctx.obj = AppContext(output, session)
    ctx.call_on_close(session.close)


app = root_app()
_root: list[click.Command] = []


def root_command() -> click.Command:
    """The root click command, built once per process (main() may run many times in one)."""
    if not _root:
        _root.append(typer.main.get_command(app))
    return _root[0]
