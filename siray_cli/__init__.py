"""siray: the command line for Siray AI. This module imports nothing, so `--version` stays fast.

`import httpx` imports httpx's own command line too (httpx/_main.py: rich, pygments and click,
a tenth of a second), only to offer `httpx.main`, which siray never calls. Marked as missing
here, before anything imports httpx, it is skipped: httpx falls back to a stub `main` that says
how to install its command line."""

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"
