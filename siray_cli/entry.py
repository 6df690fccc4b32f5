"""The console script's first step. `siray --version` answers without loading the command tree,
and a Ctrl-C that lands while siray is still starting ends quietly (exit 130, nothing was sent
yet) instead of printing a traceback."""

from __future__ import annotations

import gc
import sys

INTERRUPTED = 130


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        from siray_cli import __version__

        sys.stdout.write(f"siray {__version__}\n")
        return 0
    try:
        from siray_cli import signals

        signals.install()
        from siray_cli.app import main as run

        code = run()
    except KeyboardInterrupt:
        code = _interrupted()
    except Exception:
        # Python 3.11 turns a Ctrl-C that lands inside class creation into a RuntimeError
        loaded = sys.modules.get("siray_cli.signals")
        if loaded is None or not loaded.interrupted():
            raise
        code = _interrupted()
    if code >= INTERRUPTED - 2:  # 128 + a signal's number: 129, 130, 143
        # CPython marks a KeyboardInterrupt that passed through eval() of a string (Typer reads
        # our annotations that way) as unhandled, even once caught, and then ends the process
        # with SIGINT instead of the exit code. Evaluating any string clears the mark.
        eval("None")
    # The interpreter's last act is a full collection over every object the imports made, which
    # costs more than a status request: freezing them (a public gc API) leaves them to the
    # process's end instead. Nothing is left to run that a collection could matter to.
    gc.freeze()
    return code


def _interrupted() -> int:
    loaded = sys.modules.get("siray_cli.signals")
    if loaded is None:
        sys.stderr.write("interrupted\n")
        return INTERRUPTED
    sys.stderr.write(f"{loaded.name()}\n")
    return int(loaded.exit_code())
