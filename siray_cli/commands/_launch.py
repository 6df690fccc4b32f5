"""`--open` (`run`, `status -o`, `download`) and `siray open`: saved outputs (or output URLs)
opened in the system's viewer through `click.launch` (xdg-open, open or start).

Each file or URL is opened once, however many tasks name it: xdg-open, `open` and `start` take
one file at a time and give it to the program the desktop associates with its type, which a
directory would not (it opens a file manager). Past MOST files, their folders are opened instead.
A viewer is a GUI program: it is launched only from a terminal (stdin and stdout both), so that a
CI job or a script never starts one, unless SIRAY_OPEN=always says so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from siray_cli.errors import UsageError

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext

MOST = 8  # files opened one by one; more open their folders


def check_can_open(context: AppContext, option: str = "--open") -> None:
    """Refuse, before anything is done (or paid for), to start a viewer off a terminal."""
    environment = context.output.environment
    if environment.variables.get("SIRAY_OPEN", "").strip().lower() == "always":
        return
    if not (environment.isatty("stdin") and environment.isatty("stdout")):
        raise UsageError(
            f"{option} starts a viewer, so it needs a terminal on stdin and stdout "
            "(SIRAY_OPEN=always opens anyway)"
        )


def is_web(target: str) -> bool:
    return target.startswith(("https://", "http://"))


def open_in_viewer(context: AppContext, targets: Sequence[str | Path]) -> None:
    """Each of `targets` (files, or http(s) URLs: a server's URL of another scheme is never
    handed to the desktop) once, in the system's viewer; a launch that fails is told, and
    fails nothing (the outputs are saved)."""
    output = context.output
    unique = list(dict.fromkeys(str(target) for target in targets))
    files = [str(Path(t).resolve()) for t in unique if not is_web(t)]
    urls = [t for t in unique if is_web(t)]
    if len(files) > MOST:
        output.info(f"{len(files)} files: opening their folders")
        files = list(dict.fromkeys(str(Path(f).parent) for f in files))
    if len(urls) > MOST:
        output.info(f"opening the first {MOST} of {len(urls)} URLs")
        urls = urls[:MOST]
    import click

    for target in [*files, *urls]:
        with _chatter_to_stderr():
            failed = click.launch(target)
        if failed:
            output.warn(f"could not open {target}: no viewer was found (xdg-open, open, start)")


@contextlib.contextmanager
def _chatter_to_stderr() -> Iterator[None]:
    """A launcher inherits siray's stdout, where its messages ("Opening in existing browser
    session") would mix with the data: for the launch, the process's stdout is its stderr."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no such descriptor (a test's captured streams)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
