"""`siray models`: the catalogue, and each model's inputs."""

import json
from typing import Annotated

import typer

from siray_cli.candidates import complete_model
from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt, Kind, RefreshOpt

KindFilterOpt = Annotated[
    Kind | None, typer.Option("--kind", help="Only image models, or only video models.")
]

app = typer.Typer(
    help="The model catalogue: list models, show a model's inputs.", no_args_is_help=True
)


@app.command("list")
def list_(
    ctx: typer.Context,
    search: Annotated[
        str | None, typer.Argument(help="Only models whose name contains this.", show_default=False)
    ] = None,
    kind: KindFilterOpt = None,
    refresh: RefreshOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """List models: name, kind, tag and required inputs."""
    from siray_cli.services.models import find_models

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    with session.provider() as provider:
        models = find_models(
            session, provider, search=search, kind=kind.value if kind else None, refresh=refresh
        )
    between = ", " if output.stdout_is_tty else ","
    output.table(
        [[m.name, m.kind.value, m.tag, between.join(m.required)] for m in models],
        ["model", "kind", "tag", "required inputs"],
        document=[m.to_json() for m in models],
        prose=["required inputs"],
    )
    if not models:
        output.info("no model matches" if search or kind else "the catalogue is empty")


@app.command()
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model's name.", autocompletion=complete_model)],
    refresh: RefreshOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Every input of a model, and an example command.

    Each input with its type, whether it is required, its allowed values and its default.
    """
    from siray_cli.output import sanitize
    from siray_cli.services.models import describe_model

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    with session.provider() as provider:
        described = describe_model(session, provider, model, refresh=refresh)
    if output.json_mode:
        output.result(described.to_json())
        return
    info = described.info
    if output.stdout_is_tty:
        output.data(sanitize(f"{info.name}  {info.kind.value} ({info.tag})"))
    output.table(
        [
            [
                row["name"],
                row["type"],
                "required" if row["required"] else "optional",
                row["allowed"],
                "" if row["default"] is None else json.dumps(row["default"]),
                row["description"],
            ]
            for row in described.inputs
        ],
        ["input", "type", "", "allowed", "default", "description"],
        prose=["allowed", "description"],
    )
    if output.stdout_is_tty:
        output.data_lines(["example:", f"  {sanitize(described.example)}"])
    else:
        output.info(f"example: {sanitize(described.example)}")
