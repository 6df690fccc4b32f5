"""siray's garbage collection, as the console script sets it (siray_cli/main.py).

A cyclic collection every 700 new objects (CPython's default) walks the young ones each time,
and now and then every object alive: the imports alone trigger a hundred, a 10,000-line batch a
thousand, a tenth of its planning. siray makes few cycles (reference counts free the rest at
once), so its own process collects every 50,000, as mypy does while it builds.

What lives to the process's end (the imports' objects; a batch's plan) is frozen (gc.freeze, a
public API): no later collection walks it again. Only in siray's own process: one that runs
siray's commands among its own work (a test's, through click's CliRunner) keeps all of its
objects collectable, and its open files closable by the collector.
"""

from __future__ import annotations

import gc

THRESHOLD = 50_000
_own_process = False


def take_over() -> None:
    """The console script's first act: this process is siray's, collected its way."""
    global _own_process
    _own_process = True
    gc.set_threshold(THRESHOLD)


def keep_to_the_end() -> None:
    """Everything alive now lives to the end of the process (in siray's own process)."""
    if _own_process:
        gc.freeze()
