"""Uploading local files through the provider, with progress reported to a display the command
layer gives (a bar per file on a terminal, a line per file elsewhere)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from siray_cli.domain import Source, Uploaded
    from siray_cli.providers.base import Provider
    from siray_cli.services.session import Session


class TransferRow(Protocol):
    def start(self, name: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...

    def child(self) -> TransferRow: ...

    def done(self, message: str) -> None: ...


class TransferProgress(Protocol):
    """What the services need of a transfer display (progress.TransferDisplay is one)."""

    def row(self) -> TransferRow: ...

    def total(self, name: str, size: int | None) -> TransferRow: ...


Transfers = Callable[[], AbstractContextManager[TransferProgress]]


def upload_files(
    session: Session,
    provider: Provider,
    sources: Sequence[Source],
    transfers: Transfers,
) -> list[Uploaded]:
    """Upload every source, a row per file (and a total row for several); the temporary
    credentials join the secrets that are never shown."""
    with transfers() as display:
        sizes = [s.size for s in sources if s.size is not None]
        whole = sum(sizes) if len(sizes) == len(sources) else None
        total = display.total("total", whole) if len(sources) > 1 else None
        rows: dict[int, TransferRow] = {}

        def progress(source: Source) -> Callable[[int], None]:
            if id(source) not in rows:
                row = total.child() if total is not None else display.row()
                row.start(source.name, source.size)
                rows[id(source)] = row
            return rows[id(source)].advance

        results = provider.upload(
            sources,
            progress,
            part_size=session.settings.upload_part_size,
            virtual_host=session.settings.s3_addressing == "virtual",
            on_secret=session.notices.add_secret,
        )
        for result in results:
            session.notices.info(f"uploaded {result.file} ({result.bytes} bytes): {result.url}")
    return results
