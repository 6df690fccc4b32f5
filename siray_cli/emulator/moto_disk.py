"""Multipart uploads completed on disk, not in memory: the one place the emulator reaches into
moto's private S3 model.

moto keeps each object's body in a spooled temporary file (on disk above a threshold, settable
with MOTO_S3_DEFAULT_KEY_BUFFER_SIZE), parts included. But when a multipart upload completes,
`FakeMultipart.complete` joins every part in a bytearray, copies it into bytes, joins the parts
again for the whole-object checksum (CRC64NVME by default, which it computes when the client
declared none) and hands those bytes to the new key, which writes them into a BytesIO before
spilling them to disk: several copies of the whole object in memory at once. With 256 MiB files
the emulator's resident size peaked at 1.5-1.9 GB, and the allocator kept much of it.

`install()` replaces that one method with one that copies the parts, a block at a time, into a
spooled temporary file (unlinked as soon as it is made, so the OS reclaims it however the process
ends, SIGKILL included), computing the ETag and the checksum as it goes, and lets `FakeKey` take
that file as its body instead of bytes. Everything else (the checks and errors for missing or
small parts, the ETag, the checksum and its type, what is returned) is moto's behaviour, restated.

The trade-off: this leans on `FakeMultipart.complete`, `FakeKey.value`, `FakeKey._value_buffer`
and `FakeKey.lock`, all private to moto. `install()` checks they are there and does nothing
otherwise (moto then completes uploads in memory, as before: more memory, the same answers), and
`tests/test_emulator.py` fails if the hook is not in place with the moto the project installs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

BLOCK = 1024 * 1024  # bytes copied at a time
_lock = threading.Lock()
_installed: list[bool] = []


class OnDisk:
    """A completed object's body, already in a spooled temporary file: what `FakeKey.value`
    adopts instead of writing bytes."""

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self.spool = spool
        self.size = size

    def __len__(self) -> int:
        return self.size


def _running(algorithm: str) -> tuple[Callable[[bytes], None], Callable[[], bytes]]:
    """update and digest for moto's `compute_checksum(body, algorithm, encode_base64=False)`,
    fed a block at a time (with moto's fallbacks when an optional library is missing)."""
    if algorithm in ("SHA1", "SHA256") or algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
        hashed = hashlib.sha1() if algorithm == "SHA1" else hashlib.sha256()
        return hashed.update, hashed.digest
    crc = [0]
    width = 4
    step: Callable[[bytes, int], int] = binascii.crc32
    if algorithm == "CRC32C":
        try:
            import crc32c  # type: ignore[import-not-found]

            step = crc32c.crc32c
        except ImportError:
            pass
    elif algorithm == "CRC64NVME":
        from moto.core.compat import HAS_CRT

        if HAS_CRT:
            from awscrt import checksums  # type: ignore[import-not-found]

            step, width = checksums.crc64nvme, 8

    def update(block: bytes) -> None:
        crc[0] = step(block, crc[0])

    return update, lambda: crc[0].to_bytes(width, "big")


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """`FakeMultipart.complete`, with the parts copied to disk instead of joined in memory."""
    from moto import settings
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.utils import compute_checksum

    algorithm = self.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
    kind = self.metadata.get("x-amz-checksum-type") or (
        "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    )
    whole_update, whole_digest = _running(algorithm)
    composite = bytearray()
    md5s = bytearray()
    limit = settings.get_s3_default_key_buffer_size()
    # handed to the new key, which closes it when the object is deleted or replaced
    spool = tempfile.SpooledTemporaryFile(max_size=limit)  # noqa: SIM115
    size = count = 0
    last = None
    try:
        for number, given in body:
            part = self.parts.get(number)
            part_etag = part.etag.replace('"', "") if part is not None else None
            if part is None or part_etag != given.replace('"', ""):
                raise InvalidPart()
            if last is not None and last.contentsize < settings.S3_UPLOAD_PART_MIN_SIZE:
                raise EntityTooSmall()
            md5s.extend(bytes.fromhex(part_etag))
            part_update, part_digest = _running(algorithm)
            with part.lock:
                part._value_buffer.seek(0)
                while block := part._value_buffer.read(BLOCK):
                    spool.write(block)
                    size += len(block)
                    (part_update if kind == "COMPOSITE" else whole_update)(block)
            if kind == "COMPOSITE":
                composite.extend(part_digest())
            last = part
            count += 1
        if count == 0:
            raise MalformedXML
    except BaseException:
        spool.close()
        raise
    if kind == "COMPOSITE":
        checksum = (kind, compute_checksum(bytes(composite), algorithm).decode(), count)
    else:
        checksum = (kind, base64.b64encode(whole_digest()).decode(), 1)
    return (
        OnDisk(spool, size),
        f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{count}",
        checksum,
    )


def install() -> bool:
    """Put the hook in place (once per process, as moto's backends are); False when moto's
    internals are not those this module was written against."""
    with _lock:
        if _installed:
            return _installed[0]
        from moto import settings
        from moto.s3 import models, utils

        value = getattr(models.FakeKey, "value", None)
        expected = (
            isinstance(value, property)
            and value.fset is not None
            and callable(getattr(models.FakeMultipart, "complete", None))
            and callable(getattr(settings, "get_s3_default_key_buffer_size", None))
            and callable(getattr(utils, "compute_checksum", None))
        )
        if expected:
            assert isinstance(value, property) and value.fset is not None
            write = value.fset

            def adopt(self: Any, new_value: Any) -> None:
                if not isinstance(new_value, OnDisk):
                    write(self, new_value)
                    return
                # as moto's setter: no lock (FakeKey.__init__ sets a value before its lock)
                self._value_buffer.close()
                self._value_buffer = new_value.spool
                self.contentsize = new_value.size

            setattr(models.FakeKey, "value", value.setter(adopt))  # noqa: B010
            setattr(models.FakeMultipart, "complete", _complete)  # noqa: B010
        _installed.append(expected)
        return expected


def installed() -> bool:
    return bool(_installed and _installed[0])
