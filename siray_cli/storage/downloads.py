"""Downloads of task outputs: streamed to a temporary file beside the target, checked, then linked
into place, so a failure never leaves a partial file and an existing file is never replaced unless
asked to."""

from __future__ import annotations

import contextlib
import glob
import mimetypes
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from siray_cli.errors import DownloadError, UsageError
from siray_cli.names import UNSAFE, safe_name

if TYPE_CHECKING:
    import httpx  # imported where a download runs: safe_name's users need no HTTP stack

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}
_KNOWN_SUFFIXES = set(_EXTENSIONS.values()) | {".jpeg"}
ATTEMPTS = 3
SLOWEST = 1024  # bytes a second: a download slower than this over a whole read_timeout stalled
# Downloads ask for no compression; a server that compresses anyway is inflated here, in pieces
# of PIECE bytes, to at most INFLATION times what it sent: images and videos hardly compress,
# while a gzip bomb inflates a thousandfold.
INFLATION = 100
PIECE = 64 * 1024
_INFLATABLE = {"gzip": 16 + 15, "x-gzip": 16 + 15, "deflate": 15}  # zlib wbits: gzip, zlib


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def prepare_output_dir(path: Path) -> Path:
    """Create the directory (before anything is paid for) and check it can be written."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output directory {path} is a file", hint="pass a directory to -o")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {path} is not writable", hint="choose another -o")
    return path


def check_output_dir(path: Path) -> Path:
    """As prepare_output_dir checks it, creating nothing (a --dry-run): an existing directory
    must be writable, a missing one creatable in the nearest directory that exists."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output directory {path} is a file", hint="pass a directory to -o")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create output directory {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path.absolute() else "cannot be created"
        raise UsageError(f"output directory {path} {what}", hint="choose another -o")
    return path


def extension_for(content_type: str | None, url: str) -> str:
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _EXTENSIONS:
        return _EXTENSIONS[mime]
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in _KNOWN_SUFFIXES:
        return ".jpg" if suffix == ".jpeg" else suffix
    guessed = mimetypes.guess_extension(mime) if mime else None
    return guessed if guessed and UNSAFE.search(guessed[1:]) is None else ".bin"


def output_name(task_id: str, index: int, extension: str) -> str:
    """`<task_id>_<n><ext>`, with anything that could leave the directory replaced."""
    return f"{safe_name(task_id)}_{index}{extension}"


def _chosen_name(
    task_id: str,
    index: int,
    extension: str,
    stem: str | None,
    file_name: Callable[[str], str] | None,
) -> str:
    if file_name is not None:
        return file_name(extension)
    return f"{safe_name(stem)}{extension}" if stem else output_name(task_id, index, extension)


def _place(temporary: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target exists: no race can clobber a file
    except FileExistsError:
        raise DownloadError(
            f"{target} already exists; siray does not overwrite files",
            hint="pass --force to overwrite, or choose another -o directory",
        ) from None
    except OSError:
        if target.exists():
            raise DownloadError(
                f"{target} already exists; siray does not overwrite files",
                hint="pass --force to overwrite",
            ) from None
        os.rename(temporary, target)
        return
    temporary.unlink()


def _incomplete(
    client: httpx.Client, response: httpx.Response, written: int, total: int | None
) -> str | None:
    """Why the body just received is not the whole file, or None."""
    if total is not None and written != total:
        return f"received {written} of {total} bytes"
    if written == 0:
        return "the server sent an empty file"
    framed = total is not None or "chunked" in response.headers.get("transfer-encoding", "")
    if not framed and _encoding(response) == "identity":
        # ended by closing the connection: only asking again tells a cut body from a whole one
        size = _announced_size(client, str(response.url))
        if size is None:
            return UNVERIFIED
        if size != written:
            return f"received {written} of {size} bytes"
    return None


# A body ended by the connection closing, whose size the server will not say (no HEAD): it is
# kept only once a second download of it has the same size.
UNVERIFIED = "the server gave no size to check the file against"


def _sweep(directory: Path, name: str) -> None:
    """Remove the temporary files of `name` that nobody is writing: a siray killed (SIGKILL)
    mid-download leaves one; a writer holds a lock on its own."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks: leave them
        return
    for stale in directory.glob(f".{glob.escape(name)}.*.part"):
        try:
            descriptor = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.unlink()
        except OSError:
            pass  # being written by another download: not stale
        finally:
            os.close(descriptor)


def _encoding(response: httpx.Response) -> str:
    word = response.headers.get("content-encoding", "").strip().lower()
    return "identity" if word in ("", "identity") else word


def _inflated(
    response: httpx.Response, declared: int | None, max_bytes: int | None, task_id: str
) -> Iterator[bytes]:
    """The body of a compressed answer, inflated piece by piece. Stops (DownloadError) once it
    grows past INFLATION times its Content-Length (or what has come so far, when none is
    given) or past `max_bytes`; a stream that ends early or is corrupt is an httpx error, so
    the download is tried again."""
    import zlib

    import httpx

    decoder = zlib.decompressobj(_INFLATABLE[_encoding(response)])
    received = inflated = 0
    try:
        for raw in response.iter_raw():
            received += len(raw)
            pending = raw
            while True:
                piece = decoder.decompress(pending, PIECE)
                pending = decoder.unconsumed_tail
                inflated += len(piece)
                _check_inflation(response, inflated, declared, received, max_bytes, task_id)
                if piece:
                    yield piece
                if not pending and len(piece) < PIECE:
                    break
        rest = decoder.flush()
    except zlib.error as exc:
        raise httpx.DecodingError(f"the compressed file is corrupt ({exc})") from None
    inflated += len(rest)
    _check_inflation(response, inflated, declared, received, max_bytes, task_id)
    if rest:
        yield rest
    if not decoder.eof:
        raise httpx.DecodingError("the compressed file ends early")


def _body(
    response: httpx.Response, max_bytes: int | None, task_id: str
) -> tuple[int | None, Iterable[bytes]]:
    """The size the file's bytes must have (None: not announced), and those bytes."""
    expected = response.headers.get("content-length")
    declared = int(expected) if expected and expected.isdigit() else None
    encoding = _encoding(response)
    if encoding == "identity":
        return declared, response.iter_raw()
    if encoding not in _INFLATABLE:
        raise DownloadError(
            f"downloading {response.url} failed: the server compressed it as {encoding!r}, "
            "which siray did not ask for and does not unpack",
            task_id=task_id,
        )
    return None, _inflated(response, declared, max_bytes, task_id)


def _check_inflation(
    response: httpx.Response,
    inflated: int,
    declared: int | None,
    received: int,
    max_bytes: int | None,
    task_id: str,
) -> None:
    sent = declared if declared is not None else max(received, PIECE)
    if max_bytes is not None and inflated > max_bytes and max_bytes <= INFLATION * sent:
        why = f"more than {max_bytes} bytes (the download_max_size setting) once uncompressed"
    elif inflated > INFLATION * sent:
        why = (
            f"its {sent} compressed bytes inflate to more than {INFLATION * sent} bytes "
            f"({INFLATION} times as many)"
        )
    else:
        return
    raise DownloadError(f"downloading {response.url} failed: {why}", task_id=task_id)


def _receive(
    response: httpx.Response,
    chunks: Iterable[bytes],
    sink: BinaryIO,
    total: int | None,
    max_bytes: int | None,
    on_bytes: Callable[[int], None] | None,
    task_id: str,
    window: float | None = None,
) -> int:
    """The body (`chunks` of `response`) into `sink`, capped (at its Content-Length, else at
    `max_bytes`), synced to disk; the bytes written. A server that trickles (under SLOWEST bytes
    a second over each `window` seconds: the read timeout, which only bounds each single read)
    is given up on."""
    written = 0
    cap = total if total is not None else max_bytes
    since, counted = time.monotonic(), 0  # the current window: its start, its bytes
    for chunk in chunks:
        written += len(chunk)
        counted += len(chunk)
        now = time.monotonic()
        if window is not None and now - since >= window:
            if counted < SLOWEST * (now - since):
                raise DownloadError(
                    f"downloading {response.url} stalled: {counted} bytes in the last "
                    f"{now - since:.0f}s (less than {SLOWEST} bytes a second)",
                    task_id=task_id,
                    hint=f"the task succeeded; fetch its outputs later with "
                    f"`siray download {task_id}`",
                )
            since, counted = now, 0
        if cap is not None and written > cap:
            limit = (
                f"the {total} bytes it announced"
                if total is not None
                else f"{cap} bytes (the download_max_size setting)"
            )
            raise DownloadError(
                f"downloading {response.url} failed: more than {limit}", task_id=task_id
            )
        sink.write(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    sink.flush()
    os.fsync(sink.fileno())
    os.fchmod(sink.fileno(), 0o666 & ~_umask())
    return written


def _hold(descriptor: int) -> None:
    """Lock a temporary file while it is written, so no other run sweeps it as stale."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return
    fcntl.flock(descriptor, fcntl.LOCK_EX)


def _with_record(temporary: Path, directory: Path, name: str, record: str) -> Path:
    """The downloaded file with `record` in it when it is a PNG (storage.provenance: the other
    chunks copied byte for byte into a second temporary file); the file as downloaded when it
    is not one, is malformed, or the copy cannot be written: a record never fails a download."""
    from siray_cli.storage import provenance

    if not provenance.is_png(temporary):
        return temporary
    descriptor, made = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    stamped = Path(made)
    done = False
    try:
        with os.fdopen(descriptor, "wb") as sink:
            _hold(sink.fileno())
            if provenance.embed(temporary, sink, record):
                sink.flush()
                os.fsync(sink.fileno())
                os.fchmod(sink.fileno(), 0o666 & ~_umask())
                done = True
    except (OSError, provenance.MalformedPNG):
        pass
    finally:
        if not done:
            with contextlib.suppress(OSError):
                stamped.unlink()
    if not done:
        return temporary
    temporary.unlink()
    return stamped


IDENTITY = {"Accept-Encoding": "identity"}  # a file's own bytes, its length what is announced


def _announced_size(client: httpx.Client, url: str) -> int | None:
    import httpx

    try:
        head = client.head(url, headers=IDENTITY)
    except httpx.HTTPError:
        return None
    length = head.headers.get("content-length", "")
    return int(length) if head.status_code < 400 and length.isdigit() else None


def download_one(
    client: httpx.Client,
    url: str,
    directory: Path,
    task_id: str,
    index: int,
    *,
    force: bool,
    keep: bool | Callable[[Path], bool] = False,
    stem: str | None = None,
    file_name: Callable[[str], str] | None = None,
    on_start: Callable[[str, int | None], object] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
    stall_window: float | None = None,
    record: str | None = None,
) -> Path:
    """Download one output as `<task_id>_<n><ext>`, `<stem><ext>` when the caller names it, or
    `file_name(<ext>)` (a name template's, made safe there; its directory is checked here).

    The body is capped: at its Content-Length when the server gave one (a server that sends more
    is cut off), else at `max_bytes` (the download_max_size setting), decompressed bytes counted.
    With `keep` True (a task taken up again, whose files may be there already), an existing file
    of that name is kept, never overwritten, and stands as the output; a `keep` function says
    which existing files are (the task's own, unchanged). A PNG gets `record` (what
    made it) in a chunk of its own once its bytes are checked, just before it is put in place
    (see _with_record); any other file is kept as it was sent.
    """
    import httpx

    from siray_cli.transport import describe

    last_error = ""
    unverified: int | None = None  # the size of an earlier download whose size was not told
    for _attempt in range(ATTEMPTS):
        temporary: Path | None = None
        try:
            with client.stream("GET", url, headers=IDENTITY) as response:
                if response.status_code >= 400:
                    raise DownloadError(
                        f"downloading {url} failed: HTTP {response.status_code}", task_id=task_id
                    )
                extension = extension_for(response.headers.get("content-type"), str(response.url))
                name = _chosen_name(task_id, index, extension, stem, file_name)
                target = directory / name
                if name in ("", ".", "..") or target.resolve().parent != directory.resolve():
                    raise DownloadError(f"refusing to write {target} outside {directory}")
                if target.exists() and not force and (keep is True or (keep and keep(target))):
                    return target
                if target.exists() and not force:
                    raise DownloadError(
                        f"{target} already exists; siray does not overwrite files",
                        hint="pass --force to overwrite, or choose another -o directory",
                        task_id=task_id,
                    )
                total, chunks = _body(response, max_bytes, task_id)
                if on_start is not None:
                    on_start(target.name, total)
                _sweep(directory, target.name)
                handle, name = tempfile.mkstemp(
                    dir=directory, prefix=f".{target.name}.", suffix=".part"
                )
                temporary = Path(name)
                _hold(handle)
                with os.fdopen(handle, "wb") as sink:
                    written = _receive(
                        response, chunks, sink, total, max_bytes, on_bytes, task_id, stall_window
                    )
                problem = _incomplete(client, response, written, total)
                if problem == UNVERIFIED and unverified == written:
                    problem = None  # two downloads of the same size: whole, as far as can be told
                elif problem == UNVERIFIED:
                    unverified = written
                if problem:
                    last_error = problem
                    continue
                if record is not None:
                    temporary = _with_record(temporary, directory, target.name, record)
                _place(temporary, target, force)
                temporary = None
                return target
        except httpx.HTTPError as exc:
            last_error = describe(exc)
        except OSError as exc:  # the disk, not the network: trying again would not help
            raise DownloadError(
                f"cannot write the output of {task_id} to {directory}: "
                f"{exc.strerror or type(exc).__name__}",
                task_id=task_id,
                hint=f"the task succeeded; free some room or choose another -o, then fetch its "
                f"outputs again (`siray status {task_id}` lists them)",
            ) from exc
        finally:
            if temporary is not None:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
    raise DownloadError(
        f"downloading {url} failed after {ATTEMPTS} attempts ({last_error})", task_id=task_id
    )
