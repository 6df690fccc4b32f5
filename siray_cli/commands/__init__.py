"""The commands: each module parses its options, calls one service and renders the result.

These modules do not use `from __future__ import annotations`: Typer reads every parameter's
annotation at start-up, and string annotations would each be compiled and evaluated then (a few
milliseconds of `siray CMD --help`). A type known only to the type checker is quoted instead."""
