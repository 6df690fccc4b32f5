"""`siray generate`: submit one task and print its id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from siray_cli import inputs
from siray_cli.api.errors import UsageError
from siray_cli.api.models import TaskKind
from siray_cli.commands.common import (
    AppState,
    ImageOpt,
    InlineOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    KindOpt,
    ModelArg,
    NoValidateOpt,
    PromptArg,
    PromptFileOpt,
    PromptOpt,
    get_state,
)

if TYPE_CHECKING:
    from siray_cli.api.client import SirayClient


@dataclass
class Request:
    kind: TaskKind
    body: dict[str, Any]


def build_request(
    state: AppState,
    client: SirayClient,
    *,
    model: str,
    prompt: str | None,
    prompt_opt: str | None,
    prompt_file: str | None,
    input_items: list[str] | None,
    input_json: str | None,
    image: str | None,
    kind: str | None,
    validate: bool,
    inline: bool = False,
) -> Request:
    """Everything `generate` and `run` send, checked before anything is paid for: the local
    inputs first, then (unless --no-validate) the model's schema from the catalogue; local
    files are uploaded (or inlined) only once all of that passed."""
    stdin = inputs.StdinOnce()
    text = inputs.resolve_prompt(prompt, prompt_opt, prompt_file, stdin)
    base = inputs.load_json_body(input_json, stdin) if input_json else {}
    items = [inputs.parse_input(item) for item in input_items or []]
    files = LocalFiles(state, inline=inline)
    if image is not None:
        base["image"] = files.add("--image", image)
    info = state.model_info(client, model) if validate else None
    body = inputs.build_body(model, text, base, items, info=info, local_file=files.add)
    return Request(inputs.pick_kind(model, kind, info), files.resolve(client, body))


class LocalFiles:
    """Local files named in the inputs: checked at once, and uploaded (or, with --inline, sent
    as data URLs) only after every input has passed its checks."""

    def __init__(self, state: AppState, *, inline: bool) -> None:
        self._state = state
        self._inline = inline
        self._pending: dict[str, Path] = {}
        self._urls: dict[str, str] = {}

    def add(self, key: str, value: str) -> str:
        if inputs.is_remote(value):
            return value
        path = Path(value).expanduser()
        if self._inline:
            return inline_file(self._state, key, path)
        problem = inputs.unreadable(path)
        if problem:
            raise UsageError(f"{key}: {problem}", hint="give a URL or an existing file")
        placeholder = f"{inputs.UPLOAD_PLACEHOLDER}{len(self._pending)}/{path.name}"
        self._pending[placeholder] = path
        return placeholder

    def resolve(self, client: SirayClient, body: dict[str, Any]) -> dict[str, Any]:
        """The body with every placeholder replaced by its file's URL (uploading, once, the
        files not uploaded yet)."""
        waiting = {k: p for k, p in self._pending.items() if k not in self._urls}
        if waiting:
            from siray_cli.commands.upload import upload_sources
            from siray_cli.storage.upload import check_sources

            sources = check_sources(
                [str(p) for p in waiting.values()], name=None, content_type=None, max_bytes=2**62
            )
            uploaded = upload_sources(self._state, client, sources)
            self._urls.update(zip(waiting, (u.url for u in uploaded), strict=True))
        return _replace(body, self._urls) if self._pending else body


def _replace(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, str):
        return urls.get(value, value)
    if isinstance(value, list):
        return [_replace(v, urls) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, urls) for k, v in value.items()}
    return value


def inline_file(state: AppState, key: str, path: Path) -> str:
    """A local file as a data URL, with a warning when it is large."""
    try:
        url, size = inputs.data_url(path)
    except UsageError as exc:
        raise UsageError(f"{key}: {exc.message}", hint="give a URL or an existing file") from None
    if size > inputs.INLINE_WARN_BYTES:
        state.output.warn(
            f"{path} is {size / 1048576:.1f} MiB; it is sent inline as a data URL, "
            "which some models reject above a few MiB (leave out --inline to upload it)"
        )
    return url


def generate(
    ctx: typer.Context,
    model: ModelArg = None,
    prompt: PromptArg = None,
    prompt_opt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    input_items: InputOpt = None,
    input_json: InputJsonOpt = None,
    image: ImageOpt = None,
    kind: KindOpt = None,
    no_validate: NoValidateOpt = False,
    inline: InlineOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Submit a task and print its id (it runs on; follow it with `siray status ID --wait`)."""
    state = get_state(ctx, json_mode)
    model, prompt = state.model_and_prompt(model, prompt)
    with state.client() as client:
        request = build_request(
            state,
            client,
            model=model,
            prompt=prompt,
            prompt_opt=prompt_opt,
            prompt_file=prompt_file,
            input_items=input_items,
            input_json=input_json,
            image=image,
            kind=kind.value if kind else None,
            validate=not no_validate,
            inline=inline,
        )
        task = state.submit(client, request.kind, request.body, announce=False)
    output = state.output
    if json_mode:
        output.emit_json({"task_id": task.task_id, "kind": task.kind.value, "model": task.model})
    else:
        output.data(task.task_id)
    output.info(f"submitted {task.task_id}; follow it with: siray status {task.task_id} --wait")
