"""`siray upload`: files (or standard input) to Siray storage; prints their public URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands.common import JsonOpt, get_state

if TYPE_CHECKING:
    from siray_cli.api.client import SirayClient
    from siray_cli.commands.common import AppState
    from siray_cli.storage.upload import Source, Uploaded


def upload_sources(state: AppState, client: SirayClient, sources: list[Source]) -> list[Uploaded]:
    """Upload with a live display; the temporary secrets join the things never printed."""
    from siray_cli.progress import TransferDisplay
    from siray_cli.storage.upload import Uploader

    output = state.output

    def remember(token: object) -> None:
        for secret in token.secrets():  # type: ignore[attr-defined]
            output.add_secret(secret)
        output.trace("upload token received (secrets hidden)")

    uploader = Uploader(
        client.upload_token,
        part_size=int(state.option("upload_part_size") or 8388608),
        virtual_host=state.option("s3_addressing") == "virtual",
        on_token=remember,
    )
    with TransferDisplay(output) as display:
        sizes = [s.size for s in sources if s.size is not None]
        whole = sum(sizes) if len(sizes) == len(sources) else None
        total = display.total("total", whole) if len(sources) > 1 else None
        rows = {}

        def progress(source: Source):  # type: ignore[no-untyped-def]
            if id(source) not in rows:
                row = total.child() if total is not None else display.row()
                row.start(source.name, source.size)
                rows[id(source)] = row
            return rows[id(source)].advance

        results = uploader.upload(sources, progress)
        for result in results:
            output.info(f"uploaded {result.file} ({result.bytes} bytes): {result.url}")
    return results


def upload(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Argument(help="Files to upload; '-' reads standard input.", metavar="FILE..."),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="The object's name (needed for -).", show_default=False),
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            "--content-type",
            help="The object's Content-Type (needed for -; else guessed).",
            show_default=False,
        ),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Upload files to Siray storage and print their public URLs, one per line, in order."""
    from siray_cli.storage.upload import check_sources

    state = get_state(ctx, json_mode)
    sources = check_sources(
        files,
        name=name,
        content_type=content_type,
        max_bytes=int(state.option("upload_max_size") or 2 * 1024**3),
    )
    with state.client() as client:
        results = upload_sources(state, client, sources)
    if json_mode:
        state.output.emit_json([r.to_json() for r in results])
    else:
        state.output.data_lines(r.url for r in results)
