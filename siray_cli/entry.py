"""The console script's first step: a Ctrl-C that lands while siray is still importing ends
quietly (exit 130, nothing was sent yet) instead of printing a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from siray_cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return run()
