"""The console script's first step. `siray --version` answers without loading the command tree,
and a Ctrl-C that lands while siray is still importing ends quietly (exit 130, nothing was sent
yet) instead of printing a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        from siray_cli import __version__

        sys.stdout.write(f"siray {__version__}\n")
        return 0
    try:
        from siray_cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return run()
