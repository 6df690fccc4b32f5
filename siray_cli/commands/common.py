"""What the commands share: the invocation's state, option aliases, and the wait-and-show loop."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from siray_cli import signals
from siray_cli.api.errors import UsageError
from siray_cli.api.models import SubmittedTask, TaskKind, TaskStatus
from siray_cli.completion import complete_model, complete_task_id
from siray_cli.config import Settings
from siray_cli.errors import Interrupted, WaitTimeoutError
from siray_cli.output import Output

if TYPE_CHECKING:
    from siray_cli.api.client import SirayClient
    from siray_cli.api.models import ModelInfo
    from siray_cli.catalogue import Catalogue
    from siray_cli.history import History


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
        min=0.0,
        help="Give up waiting after this many seconds (exit 4; the task keeps running); "
        "0 waits forever. Default: the `timeout` setting, else 1800.",
        show_default=False,
    ),
]
PollIntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--poll-interval",
        min=0.1,
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


@dataclass
class AppState:
    settings: Settings
    output: Output
    _history: History | None = None

    @property
    def history(self) -> History:
        """The task history, opened on first use (a broken one only warns)."""
        if self._history is None:
            from siray_cli.history import DB_NAME, History, data_dir

            enabled = self.option("history") != "off"
            self._history = History(data_dir() / DB_NAME, self.output.warn, enabled=enabled)
        return self._history

    def submit(
        self,
        client: SirayClient,
        kind: TaskKind,
        body: dict[str, Any],
        *,
        announce: bool = True,
        **batch: Any,
    ) -> SubmittedTask:
        """Create the task and record it in the history before anything else happens; a submit
        whose answer never came is recorded too, as UNCERTAIN."""
        from siray_cli.api.errors import AmbiguousSubmitError

        record = {
            "kind": kind.value,
            "model": str(body.get("model", "")),
            "request": body,
            "base_url": client.base_url,
            "profile": self.settings.profile_name,
            **batch,
        }
        notice = "interrupt received: stopping once the task id is known (Ctrl-C again to force)"
        with signals.deferred_interrupts(notice):
            try:
                task = client.submit(kind, body)
            except AmbiguousSubmitError as exc:
                self.history.record_submit(task_id=None, **record)
                if self.history.enabled:
                    exc.hint = f"{exc.hint}; the attempt is in `siray history`"
                raise
            except KeyboardInterrupt:  # forced by a second Ctrl-C: the task may exist
                self.history.record_submit(task_id=None, **record)
                self.output.always(
                    "interrupted while submitting: the task may have been "
                    "created; the attempt is in `siray history`"
                )
                raise
            self.history.record_submit(task_id=task.task_id, **record)
            if announce:
                self.output.always(f"task {task.task_id} submitted ({task.model})")
        return task

    def client(self, api_key: str | None = None) -> SirayClient:
        from siray_cli.api.client import SirayClient

        if self.output.debug_enabled:
            for line in self.settings.describe():
                self.output.trace(line)
        key = api_key or self.settings.require_api_key()
        self.output.add_secret(key)
        return SirayClient(
            api_key=key,
            base_url=self.settings.base_url.value or "",
            gateway_url=self.settings.gateway_url.value,
            trace=self.output.trace if self.output.debug_enabled else None,
            backoff=self.settings.backoff,
            read_timeout=self.read_timeout,
        )

    @property
    def read_timeout(self) -> float:
        return float(self.option("read_timeout") or 60)

    def catalogue(self, client: SirayClient, *, refresh: bool = False) -> Catalogue:
        from siray_cli.catalogue import CatalogueStore, cache_path

        store = CatalogueStore(
            cache_path(client.gateway_url),
            client.list_models,
            warn=self.output.warn,
            ttl=float(self.option("catalogue_ttl") or 86400),
        )
        return store.load(refresh=refresh)

    def model_info(self, client: SirayClient, name: str, *, refresh: bool = False) -> ModelInfo:
        """The model's catalogue entry; a model missing from the cache refreshes it once."""
        from siray_cli.catalogue import UNREACHABLE

        try:
            catalogue = self.catalogue(client, refresh=refresh)
        except UNREACHABLE as exc:
            exc.hint = (exc.hint + "; " if exc.hint else "") + (
                "or pass --no-validate to send the inputs unchecked"
            )
            raise
        info = catalogue.get(name)
        if info is None and not catalogue.fresh:
            catalogue = self.catalogue(client, refresh=True)
            info = catalogue.get(name)
        if info is None:
            raise catalogue.unknown_model(name)
        return info

    def option(self, name: str, flag_value: object = None) -> str | None:
        """A command option's value by the usual precedence, traced under --debug."""
        setting = self.settings.get(name, flag_value)
        self.output.trace(f"{name} = {setting.value} from {setting.source}")
        return setting.value

    def wait_options(
        self, timeout: float | None, poll_interval: float | None
    ) -> tuple[float, float | None]:
        """(timeout, 0 for none; poll interval or None for the adaptive schedule)."""
        if timeout == 0:
            self.output.trace("timeout = 0 (none) from flag --timeout")
            resolved_timeout = 0.0
        else:
            resolved_timeout = float(self.option("timeout", timeout) or 0)
        interval = self.option("poll_interval", poll_interval)
        return resolved_timeout, None if interval is None else float(interval)

    def model_and_prompt(self, first: str | None, second: str | None) -> tuple[str, str | None]:
        """MODEL [PROMPT], where a lone argument that is not a model name is the prompt of the
        default model (`siray run "a red fox"` with `model` set)."""
        if first is not None and second is None and not looks_like_model(first):
            default = self.option("model")
            if default is not None:
                return default, first
        model = self.option("model", first)
        if model is None:
            raise UsageError(
                "no model given",
                hint="siray run MODEL PROMPT, or set a default: siray config set model MODEL",
            )
        return model, second


def looks_like_model(text: str) -> bool:
    return "/" in text and not any(ch.isspace() for ch in text)


def get_state(ctx: typer.Context, json_mode: bool = False) -> AppState:
    state: AppState = ctx.find_root().obj
    state.output.json_mode = json_mode
    return state


def resume_hint(task_ids: list[str]) -> str:
    return f"resume with: siray status {' '.join(task_ids)} --wait"


def wait_and_show(
    state: AppState,
    client: SirayClient,
    task_ids: list[str],
    *,
    timeout: float,
    poll_interval: float | None,
    cancel_on_interrupt: bool = False,
) -> dict[str, TaskStatus]:
    """Poll until every task ends, with a live display; Ctrl-C and timeouts say how to resume."""
    from siray_cli.polling import WaitTimedOut, default_schedule, wait_for_tasks
    from siray_cli.progress import task_display

    output = state.output

    def on_update(status: TaskStatus) -> None:
        display.update(status)
        state.history.update(status)

    try:
        with task_display(output, task_ids) as display:
            return wait_for_tasks(
                task_ids,
                client.get_status,
                timeout=timeout or None,
                schedule=default_schedule(poll_interval),
                on_update=on_update,
                sleep=signals.sleep,
            )
    except WaitTimedOut as exc:
        last = [p for p in exc.pending if isinstance(p, TaskStatus)]
        states = ", ".join(f"{s.task_id} {s.status}" for s in last) or "no answer yet"
        raise WaitTimeoutError(
            f"gave up waiting after {timeout:g}s (last seen: {states}); the task may still finish",
            hint=resume_hint(task_ids),
            task_id=task_ids[0] if len(task_ids) == 1 else None,
        ) from None
    except KeyboardInterrupt:
        note = "keeps running"
        if cancel_on_interrupt:
            note = _cancel_quietly(output, client, task_ids)
        raise Interrupted(
            f"interrupted while waiting; {', '.join(task_ids)} {note}",
            hint=resume_hint(task_ids) if note == "keeps running" else None,
            task_id=task_ids[0] if len(task_ids) == 1 else None,
        ) from None


def _cancel_quietly(output: Output, client: SirayClient, task_ids: list[str]) -> str:
    from siray_cli.api.errors import SirayError

    outcomes = []
    for task_id in task_ids:
        try:
            status = client.cancel(task_id)
            outcomes.append(f"{task_id}: {status.status}")
        except SirayError as exc:
            outcomes.append(f"{task_id}: not cancelled ({exc.message})")
    output.always("cancel on interrupt: " + "; ".join(outcomes))
    if all(o.endswith(("CANCELLED", "CANCELED")) for o in outcomes):
        return "cancelled"
    return "keeps running"


def status_document(status: TaskStatus, **extra: Any) -> dict[str, Any]:
    document = status.to_json()
    document.update(extra)
    return document
