"""`siray generate`: submit one task and print its id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from siray_cli import inputs
from siray_cli.api.errors import UsageError
from siray_cli.api.models import TaskKind
from siray_cli.commands.common import (
    AppState,
    ImageOpt,
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
) -> Request:
    """Everything `generate` and `run` send, checked before anything is paid for: the local
    inputs first, then (unless --no-validate) the model's schema from the catalogue."""
    stdin = inputs.StdinOnce()
    text = inputs.resolve_prompt(prompt, prompt_opt, prompt_file, stdin)
    base = inputs.load_json_body(input_json, stdin) if input_json else {}
    items = [inputs.parse_input(item) for item in input_items or []]
    if image is not None:
        base["image"] = local_image(state, "--image", image)
    info = state.model_info(client, model) if validate else None
    body = inputs.build_body(
        model,
        text,
        base,
        items,
        info=info,
        local_file=lambda key, path: local_image(state, key, path),
    )
    return Request(inputs.pick_kind(model, kind, info), body)


def local_image(state: AppState, key: str, value: str) -> str:
    """A URL as it is; a local file as a data URL (until uploads land)."""
    from pathlib import Path

    if inputs.is_remote(value):
        return value
    try:
        url, size = inputs.data_url(Path(value).expanduser())
    except UsageError as exc:
        raise UsageError(f"{key}: {exc.message}", hint="give a URL or an existing file") from None
    if size > inputs.INLINE_WARN_BYTES:
        state.output.warn(
            f"{value} is {size / 1048576:.1f} MiB; it is sent inline as a data URL, "
            "which some models reject above a few MiB"
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
        )
        task = state.submit(client, request.kind, request.body)
    output = state.output
    if json_mode:
        output.emit_json({"task_id": task.task_id, "kind": task.kind.value, "model": task.model})
    else:
        output.data(task.task_id)
    output.info(f"submitted {task.task_id}; follow it with: siray status {task.task_id} --wait")
