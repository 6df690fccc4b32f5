"""The options several commands share, declared once as `Annotated` aliases (`JsonOpt`,
`TimeoutOpt`, ...), with their help, checks and completions."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.candidates import complete_input, complete_model, complete_task_id
from siray_cli.errors import UsageError
from siray_cli.settings import KEYS, check_flag

if TYPE_CHECKING:
    pass


class Kind(str, enum.Enum):
    image = "image"
    video = "video"


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (errors too).")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        callback=check_flag("timeout"),
        help="Give up waiting after this many seconds (exit 4; the task keeps running); "
        f"0 waits forever. Default: the `timeout` setting, else {KEYS['timeout'].default}.",
        show_default=False,
    ),
]
HoldTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        callback=check_flag("timeout"),
        help="How long to wait for a slot when the provider's concurrency limit holds the "
        "submit back (exit 4: nothing was submitted); 0 waits forever. Default: the `timeout` "
        f"setting, else {KEYS['timeout'].default}.",
        show_default=False,
    ),
]
PollIntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--poll-interval",
        callback=check_flag("poll_interval"),
        help="Poll on a fixed beat of this many seconds instead of the adaptive schedule.",
        show_default=False,
    ),
]
KindOpt = Annotated[
    Kind | None,
    typer.Option("--kind", help="Image or video task (default: inferred from the model)."),
]
PromptArg = Annotated[
    str | None,
    typer.Argument(help="The prompt. '-' reads it from standard input.", show_default=False),
]
PromptOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt", "-p", help="The prompt, as an option (may start with '-').", show_default=False
    ),
]
PromptFileOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt-file",
        help="Read the prompt from FILE ('-' for standard input).",
        metavar="FILE",
        show_default=False,
    ),
]
InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        help="A model input as key=value (JSON when it parses, else text) or key:=json. "
        "Repeatable.",
        metavar="KEY=VALUE",
        show_default=False,
        autocompletion=complete_input,
    ),
]
InputJsonOpt = Annotated[
    str | None,
    typer.Option(
        "--input-json",
        help="A whole JSON request body from FILE ('-' for stdin).",
        metavar="FILE",
        show_default=False,
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        help="Input image: a URL, or a local file (uploaded first; see --inline).",
        metavar="URL|PATH",
        show_default=False,
    ),
]
OutputDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        help="Download every output into this directory (default: the `output_dir` setting).",
        file_okay=False,
        show_default=False,
    ),
]
NameTemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--name-template",
        callback=check_flag("name_template"),
        help="Name saved outputs from a template of {task_id} {name} {n} {ext} {model} {line} "
        "{date}, such as '{name}_{n}.{ext}' (default: the `name_template` setting, else "
        "<task_id>_<n>.<ext>, or a batch line's name).",
        metavar="TEMPLATE",
        show_default=False,
    ),
]
NoValidateOpt = Annotated[
    bool,
    typer.Option(
        "--no-validate",
        help="Send the inputs as given, without checking them against the model catalogue.",
    ),
]
InlineOpt = Annotated[
    bool,
    typer.Option(
        "--inline",
        help="Send local files as data URLs in the request instead of uploading them first.",
    ),
]


def _webhook(value: str | None) -> str | None:
    """A webhook is an http(s) URL with a host: the provider would refuse anything else only
    after the request was paid for."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be an http(s) URL, such as https://example.com/hook")
    return value.strip()


WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        callback=_webhook,
        help="A URL the provider POSTs the finished task to (Higgsfield's hf_webhook).",
        metavar="URL",
        show_default=False,
    ),
]
NewOpt = Annotated[
    bool,
    typer.Option(
        "--new",
        help="Submit a new task even if the same request, submitted earlier, was never seen to "
        "its end (by default siray follows that task instead of paying again).",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")]
CancelOnInterruptOpt = Annotated[
    bool,
    typer.Option("--cancel-on-interrupt", help="On Ctrl-C, also cancel the task (if not started)."),
]
RunIdOpt = Annotated[
    str | None,
    typer.Option(
        "--run-id",
        help="The CI run this submit belongs to (default: $SIRAY_RUN_ID, else the GitHub "
        "Actions or GitLab CI job): a provider that takes an idempotency key (Higgsfield) is "
        "sent one made from it and the request, so a re-run of the job pays for nothing again.",
        metavar="ID",
        show_default=False,
    ),
]
RefreshOpt = Annotated[
    bool, typer.Option("--refresh", help="Fetch the model catalogue again, ignoring the cache.")
]
OpenOpt = Annotated[
    bool,
    typer.Option(
        "--open",
        help="Open the saved outputs in the system's viewer (each file once); only from a "
        "terminal, unless SIRAY_OPEN=always.",
    ),
]
SomeTaskIdsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Task ids (default: the most recent task in the history).",
        metavar="[TASK_ID]...",
        show_default=False,
        autocompletion=complete_task_id,
    ),
]
TaskIdsArg = Annotated[
    list[str],
    typer.Argument(
        help="One or more task ids.", metavar="TASK_ID...", autocompletion=complete_task_id
    ),
]
ModelArg = Annotated[
    str | None,
    typer.Argument(
        help="Model name, e.g. alibaba/z-image-turbo-t2i (default: the `model` setting).",
        show_default=False,
        autocompletion=complete_model,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check everything, then print the request(s) that would be sent (method, URL, "
        "body, price where the provider tells it): nothing is uploaded, submitted or recorded.",
    ),
]


# -- filters of the history (`siray history`, `siray gallery`) ----------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `30d`, `2w` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"{text!r} is not a duration", hint="write 90s, 15m, 12h, 30d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_since(text: str, now: float) -> float:
    """A duration ago (`12h`) or a date or time (`2026-11-20`, `2026-11-20T08:00`)."""
    try:
        return now - parse_duration(text)
    except UsageError:
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a date", hint="write 12h, 7d or 2026-11-20"
        ) from None
    return moment.timestamp()


STATES = ("SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCELLED", "UNKNOWN")
# words people use for them (any case, `-` or a space for `_`)
STATE_WORDS: dict[str, tuple[str, ...]] = {
    **{state: (state,) for state in STATES},
    "UNCERTAIN": ("UNCERTAIN",),
    "DONE": ("SUCCESS",),
    "SUCCEEDED": ("SUCCESS",),
    "COMPLETED": ("SUCCESS",),
    "FAILED": ("FAILURE",),
    "CANCELED": ("CANCELLED",),
    "RUNNING": ("IN_PROGRESS",),
    "PENDING": ("SUBMITTED", "QUEUED", "IN_PROGRESS", "UNKNOWN"),
}


def parse_states(text: str) -> tuple[str, ...]:
    """`--status` as the states it means: `success`, `failed`, `done`, `in-progress`..."""
    word = text.strip().upper().replace("-", "_").replace(" ", "_")
    if word in STATE_WORDS:
        return STATE_WORDS[word]
    import difflib

    close = difflib.get_close_matches(word, list(STATE_WORDS), n=1)
    raise UsageError(
        f"--status {text!r} is not a state siray knows"
        + (f" (did you mean {close[0].lower()}?)" if close else ""),
        hint="one of "
        + ", ".join(w.lower() for w in [*STATES, "UNCERTAIN"])
        + "; or done, failed, running, pending",
    )


StatusFilterOpt = Annotated[
    str | None,
    typer.Option(
        "--status",
        help="Only tasks in this state (success, failure, cancelled, in_progress, queued, "
        "uncertain; done, failed, running, pending), in any case.",
        show_default=False,
    ),
]
ModelFilterOpt = Annotated[
    str | None,
    typer.Option("--model", help="Only models whose name contains this.", show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only tasks submitted since (12h, 7d, 2026-11-20).", show_default=False
    ),
]

MaxCostOpt = Annotated[
    str | None,
    typer.Option(
        "--max-cost",
        help="Send no create that would take this command's spending past AMOUNT (5, 2.50usd, "
        "300credits): priced by the provider, or by the profile's [prices] table.",
        metavar="AMOUNT",
        show_default=False,
    ),
]
MaxTasksOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tasks",
        help="Submit at most N new tasks (tasks followed or rejoined do not count).",
        metavar="N",
        show_default=False,
    ),
]
BatchModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="With --batch: the model of lines that name none.", show_default=False
    ),
]
