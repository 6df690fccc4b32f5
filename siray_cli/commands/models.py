"""`siray models`: the catalogue, and each model's inputs."""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

import typer

from siray_cli.api.models import ModelInfo
from siray_cli.commands.common import JsonOpt, KindOpt, RefreshOpt, get_state
from siray_cli.completion import complete_model

app = typer.Typer(
    help="The model catalogue: list models, show a model's inputs.", no_args_is_help=True
)


@app.command("list")
def list_(
    ctx: typer.Context,
    search: Annotated[
        str | None, typer.Argument(help="Only models whose name contains this.", show_default=False)
    ] = None,
    kind: KindOpt = None,
    refresh: RefreshOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """List models: name, kind, tag and required inputs."""
    state = get_state(ctx, json_mode)
    with state.client() as client:
        catalogue = state.catalogue(client, refresh=refresh)
    models = [
        m
        for name, m in sorted(catalogue.models.items())
        if (search is None or search.lower() in name.lower())
        and (kind is None or m.kind.value == kind.value)
    ]
    output = state.output
    if json_mode:
        output.emit_json([m.to_json() for m in models])
    elif output.stdout_is_tty:
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for column in ("model", "kind", "tag", "required inputs"):
            table.add_column(column)
        for m in models:
            table.add_row(m.name, m.kind.value, m.tag, ", ".join(m.required))
        output.stdout_console().print(table)
    else:
        output.data_lines(
            "\t".join((m.name, m.kind.value, m.tag, ",".join(m.required))) for m in models
        )
    if not models:
        output.info("no model matches" if search or kind else "the catalogue is empty")


def _allowed(prop: dict[str, Any]) -> str:
    if isinstance(prop.get("enum"), list):
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    if prop.get("type") == "array":
        items = f"{prop.get('minItems', 0)}-{prop.get('maxItems', 'any')} items"
        return items
    return ""


def _type_name(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    if kind == "array" and isinstance(prop.get("items"), dict):
        return f"array of {prop['items'].get('type', 'any')}"
    return kind if isinstance(kind, str) else "/".join(map(str, kind))


def example_command(info: ModelInfo) -> str:
    """One `siray run` line built from the model's required inputs."""
    from siray_cli.validation import is_image_field

    words = ["siray", "run", info.name, "a lighthouse at dusk"]
    for name in info.required:
        prop = info.properties.get(name, {})
        if name == "prompt" or "default" in prop:
            continue
        if isinstance(prop.get("enum"), list) and prop["enum"]:
            value: object = prop["enum"][0]
        elif is_image_field(name, prop):
            value = "photo.png"
        elif prop.get("type") in ("integer", "number"):
            value = prop.get("minimum", 1)
        else:
            value = "..."
        words += ["-i", f"{name}={value}"]
    return shlex.join(words)


def input_rows(info: ModelInfo) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": _type_name(prop),
            "required": name in info.required,
            "allowed": _allowed(prop),
            "default": prop.get("default"),
            "description": prop.get("description", ""),
        }
        for name, prop in info.properties.items()
    ]


@app.command()
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model's name.", autocompletion=complete_model)],
    refresh: RefreshOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Every input of a model (type, required, allowed values, default), and an example."""
    state = get_state(ctx, json_mode)
    with state.client() as client:
        info = state.model_info(client, model, refresh=refresh)
    output = state.output
    rows = input_rows(info)
    example = example_command(info)
    if json_mode:
        output.emit_json({**info.to_json(), "inputs": rows, "example": example})
        return
    if not output.stdout_is_tty:
        for row in rows:
            default = "" if row["default"] is None else json.dumps(row["default"])
            output.data(
                "\t".join(
                    (
                        row["name"],
                        row["type"],
                        "required" if row["required"] else "optional",
                        row["allowed"],
                        default,
                        " ".join(row["description"].split()),
                    )
                )
            )
        output.info(f"example: {example}")
        return
    from rich.table import Table

    console = output.stdout_console()
    console.print(f"[bold]{info.name}[/]  {info.kind.value} ({info.tag})")
    table = Table(box=None, header_style="bold")
    for column in ("input", "type", "", "allowed", "default", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["type"],
            "required" if row["required"] else "optional",
            row["allowed"],
            "" if row["default"] is None else json.dumps(row["default"]),
            row["description"],
        )
    console.print(table)
    console.print(f"example:\n  {example}", highlight=False, markup=False, soft_wrap=True)
