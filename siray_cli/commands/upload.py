"""`siray upload`: files (or standard input) to the provider's storage; prints their URLs."""

from typing import Annotated

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import JsonOpt


def upload(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Argument(help="Files to upload; '-' reads standard input.", metavar="FILE..."),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="The object's name (for -: else stdin.EXT, the type's extension).",
            show_default=False,
        ),
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            "--content-type",
            help="The object's Content-Type (else guessed: from the name, or for - from the "
            "bytes).",
            show_default=False,
        ),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Upload files to Siray storage and print their public URLs.

    One URL per line, in the order of the files.
    """
    from siray_cli.services.uploads import upload_files
    from siray_cli.storage.sources import check_sources

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    sources = check_sources(
        files,
        name=name,
        content_type=content_type,
        max_bytes=session.settings.upload_max_size,
        stdin=lambda: session.environment.stdin_bytes,
    )
    for source in sources:
        if source.label == "-":
            output.info(f"uploading standard input as {source.name} ({source.content_type})")
    with session.provider() as provider:
        results = upload_files(session, provider, sources, transfers_for(output))
    if output.json_mode:
        output.result([r.to_json() for r in results])
    else:
        output.data_lines(r.url for r in results)
