"""`siray gallery`: one self-contained HTML page of tasks from the history, or of a batch's
results: to look at what was made in a browser, or to keep as a CI artifact."""

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from siray_cli.candidates import complete_task_id
from siray_cli.commands._context import get_context
from siray_cli.commands._options import (
    JsonOpt,
    ModelFilterOpt,
    SinceOpt,
    StatusFilterOpt,
    parse_since,
    parse_states,
)
from siray_cli.errors import ExitCode

DEFAULT_LAST = 100
DEFAULT_PAGE = "siray-gallery.html"


def gallery(
    ctx: typer.Context,
    task_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these tasks (default: the newest of the history).",
            metavar="[TASK_ID]...",
            show_default=False,
            autocompletion=complete_task_id,
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(
            "--last",
            "-n",
            min=1,
            help=f"At most this many tasks, the newest (default: {DEFAULT_LAST} from the "
            "history; every task given by id or --batch).",
            show_default=False,
        ),
    ] = None,
    since: SinceOpt = None,
    model: ModelFilterOpt = None,
    status: StatusFilterOpt = None,
    batch: Annotated[
        list[Path] | None,
        typer.Option(
            "--batch",
            help="The tasks of a batch: the JSON Lines `run --batch --json` printed. Repeatable.",
            metavar="RESULTS.jsonl",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    page: Annotated[
        Path,
        typer.Option("--output", "-o", help="The page to write.", metavar="FILE.html"),
    ] = Path(DEFAULT_PAGE),
    json_mode: JsonOpt = False,
) -> int:
    """Write an HTML page of tasks: outputs, prompts, inputs, states.

    One card a task, with its files. The page is self-contained (no server, no network of its
    own, no script but its filter): saved files are shown by relative links, others by their
    output URLs. It has a filter box, a status filter and a sort by time. Prints the page's
    path.
    """
    from siray_cli.services.gallery import Selection, make_gallery

    context = get_context(ctx, json_mode)
    output = context.output
    selection = Selection(
        task_ids=task_ids or [],
        batches=batch or [],
        since=parse_since(since, time.time()) if since else None,
        model=model,
        states=parse_states(status) if status else None,
        last=last,
    )
    if last is None and selection.from_history:
        selection = replace(selection, last=DEFAULT_LAST)
    made = make_gallery(context.session, selection, page, output.scrub)
    states: dict[str, int] = {}
    for card in made.cards:
        states[card.state.lower()] = states.get(card.state.lower(), 0) + 1
    count = len(made.cards)
    counted = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    output.info(
        f"gallery: {count} task{'s' if count != 1 else ''}"
        + (f" ({counted})" if counted else "")
        + (f", the {count} newest (--last N for more)" if made.cut_short else "")
    )
    if output.json_mode:
        output.result({"path": str(page), "tasks": count, "states": states})
    else:
        output.data(str(page))
    return ExitCode.OK
