"""The console script, and the one table that turns every exception into a message, a hint and
a documented exit code.

`siray --version` answers without loading the command tree, and a Ctrl-C that lands while siray
is still starting ends quietly (exit 130, nothing was sent yet) instead of printing a traceback.
"""

from __future__ import annotations

import sys

from siray_cli import collection

# `typing` alone costs `siray --version` a third of its time: the type checkers read this name
# as typing.TYPE_CHECKING (true for them, false at run time)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import click

    from siray_cli.output import Output

INTERRUPTED = 130


def main() -> int:
    """The console script: fast paths, signal handling, then `run`."""
    if sys.argv[1:] == ["--version"]:
        from siray_cli import __version__

        sys.stdout.write(f"siray {__version__}\n")
        return 0
    collection.take_over()  # its own garbage collection (collection.py)
    try:
        from siray_cli import signals

        signals.install()
        code = run()
    except KeyboardInterrupt:
        code = _interrupted_early()
    except Exception:
        # Python 3.11 turns a Ctrl-C that lands inside class creation into a RuntimeError
        loaded = sys.modules.get("siray_cli.signals")
        if loaded is None or not loaded.interrupted():
            raise
        code = _interrupted_early()
    if code >= INTERRUPTED - 2:  # 128 + a signal's number: 129, 130, 143
        # CPython marks a KeyboardInterrupt that passed through eval() of a string (Typer reads
        # our annotations that way) as unhandled, even once caught, and then ends the process
        # with SIGINT instead of the exit code. Evaluating any string clears the mark.
        eval("None")
    # The interpreter's last act is a full collection over every object the imports made, which
    # costs more than a status request: frozen, they are left to the process's end instead.
    # Nothing is left to run that a collection could matter to.
    collection.keep_to_the_end()
    return code


def _interrupted_early() -> int:
    loaded = sys.modules.get("siray_cli.signals")
    if loaded is None:
        sys.stderr.write("interrupted\n")
        return INTERRUPTED
    sys.stderr.write(f"{loaded.name()}\n")
    return int(loaded.exit_code())


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


def run(argv: list[str] | None = None) -> int:
    """One invocation of siray (the tests call it in-process): every exception becomes one
    message and one documented exit code (see EXIT_CODE_HELP)."""
    import click

    from siray_cli import signals
    from siray_cli.app import root_command
    from siray_cli.errors import ExitCode, InternalError, SirayError, UsageError, exit_code_for
    from siray_cli.output import Output

    args = hoist_global_options(sys.argv[1:] if argv is None else list(argv))

    output = Output()
    command = root_command()
    import contextlib
    import os

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
        error = UsageError if isinstance(exc, click.UsageError) else SirayError
        output.report(error(_click_message(exc), hint=_usage_hint(exc, args)))
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
        output.report(
            InternalError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="run again with --debug for the traceback, and report it",
            )
        )
        return ExitCode.API
    if output.reader_gone:
        _silence_stdout()
    code = int(result) if isinstance(result, int) else ExitCode.OK
    if code == ExitCode.INTERRUPTED and signals.interrupted():
        return _interrupted(output, args)  # Typer turns a bare KeyboardInterrupt into a silent 130
    return code


def _interrupted(output: Output, args: list[str]) -> int:
    """A signal with no task to report: say so (and, with --json, on stdout too)."""
    from siray_cli import signals
    from siray_cli.errors import Interrupted

    output.always(signals.name())
    output.json_mode = output.json_mode or _wants_json(args)
    output.report(Interrupted(signals.name()), line=False)
    return signals.exit_code()


def _click_message(exc: click.ClickException) -> str:
    """Click's message in one line. A mistyped command keeps Typer's suggestions, which are
    ordered by closeness, and not Click's own list as well."""
    import click

    if isinstance(exc, click.exceptions.NoSuchCommand):
        message = exc.message
    else:
        message = exc.format_message()
    return " ".join(message.split())


def _usage_hint(exc: click.ClickException, args: list[str]) -> str | None:
    import click

    context = getattr(exc, "ctx", None)
    if context is None:
        return None
    usage = f"`{context.command_path} --help` shows the usage"
    if isinstance(exc, click.NoSuchOption):
        prompt = _prompt_taken_for_an_option(context, exc.option_name, args)
        if prompt is not None:
            from shlex import quote

            return (
                "a prompt that starts with - goes after -- (options before it): "
                f"{context.command_path} MODEL -- {quote(prompt)}, or in "
                f"--prompt={quote(prompt)}; else {usage}"
            )
    return usage


def _prompt_taken_for_an_option(context: click.Context, option: str, args: list[str]) -> str | None:
    """The word Click read as an unknown option, when the command takes a PROMPT and the word
    looks like one (a blank inside, or `-word`, which Click reads as short options)."""
    import click

    if not any(
        p.name == "prompt" and isinstance(p, click.Argument) for p in context.command.params
    ):
        return None
    for word in args:
        if word == "--":
            break
        if word.startswith(option) and (
            any(ch.isspace() for ch in word) or (not word.startswith("--") and len(word) > 2)
        ):
            return word
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail on a closed pipe."""
    import os

    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
