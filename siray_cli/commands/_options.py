"""The options several commands share, declared once as `Annotated` aliases (`JsonOpt`,
`TimeoutOpt`, ...), with their help, checks and completions."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.completion import complete_model, complete_task_id
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
