"""`siray info`: what made a file (its task, provider, model, prompt and inputs)."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.errors import ExitCode, SirayError, exit_code_for

if TYPE_CHECKING:
    from siray_cli.output import Output
    from siray_cli.services.provenance import Provenance


def render(output: "Output", found: "Provenance") -> None:
    """JSON: one object per file, a line each; else a short block, every value sanitized."""
    from shlex import quote

    from siray_cli.output import sanitize

    if output.json_mode:
        output.result(found.to_json())
        return
    import json

    inputs = "(not recorded)"
    if found.inputs is not None:
        inputs = " ".join(
            quote(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
            for key, value in found.inputs.items()
        )
    where = "the file's own record" if found.source == "embedded" else "the history, by SHA-256"
    if found.version:
        where += f" (siray {found.version})"
    fields = [
        ("task", found.task_id),
        ("provider", found.provider),
        ("model", found.model or "(not recorded)"),
        ("prompt", "(not recorded)" if found.prompt is None else found.prompt),
        ("inputs", inputs or "-"),
        ("created", found.created or "-"),
        ("sha256", found.sha256 or "-"),
        ("from", where),
    ]
    if found.saved_as and found.path is not None and found.saved_as != str(found.path.resolve()):
        fields.append(("saved as", found.saved_as))
    lines = [str(found.path)] + [f"  {name + ':':<9} {value}" for name, value in fields]
    output.data_lines(sanitize(line) for line in lines)


def info(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Files siray saved (moved or renamed ones too: they are known by their bytes).",
            metavar="FILE...",
            show_default=False,
        ),
    ],
    json_mode: JsonOpt = False,
) -> int:
    """Show what made a file: task, provider, model, prompt, inputs.

    Read from the record a saved PNG carries, else from the history by the file's SHA-256
    (any format, the record's chunk stripped too). A file siray did not make: exit 2. With
    --json, one object per file, a line each. `siray rerun FILE` submits the same request again.
    """
    from siray_cli.services.provenance import identify

    context = get_context(ctx, json_mode)
    output = context.output
    worst: int = ExitCode.OK
    for path in files:
        try:
            render(output, identify(context.session, path))
        except SirayError as exc:
            output.report(exc)
            worst = worst or exit_code_for(exc)
    return worst
