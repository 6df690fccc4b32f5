"""siray: the command line for Siray AI. This module imports nothing, so `--version` stays fast."""

__version__ = "0.1.0"
