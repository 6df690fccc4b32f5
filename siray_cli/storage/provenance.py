"""What made a saved file, kept with it: the record a PNG carries in an `iTXt` chunk (keyword
`siray`, UTF-8 JSON, not compressed), and the SHA-256 by which the history knows any file.

The chunk is inserted by copying every other chunk's bytes as they are (length, type, data, CRC):
nothing is decoded or encoded again, so the pixels are the server's to the bit. A file that is not
a well-formed PNG (bad signature, a chunk that breaks the format or its CRC, bytes after IEND) is
left as it is. Any `siray` text chunk the server put in is dropped: the only record a file carries
is the one siray wrote.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEYWORD = b"siray"
TEXT_CHUNKS = {b"iTXt", b"tEXt", b"zTXt"}
MAX_CHUNK = 2**31 - 1  # the PNG specification's limit on a chunk's length
MAX_RECORD = 1024 * 1024  # bytes of a record read back (a hostile file could hold more)
PIECE = 64 * 1024


class MalformedPNG(ValueError):
    """The file breaks the PNG format: it is left as it is."""


@dataclass(frozen=True)
class Chunk:
    offset: int  # of its length field, from the start of the file
    kind: bytes
    length: int  # of its data
    ours: bool  # a text chunk whose keyword is `siray`

    @property
    def size(self) -> int:
        return 12 + self.length  # length, type, data, CRC


def is_png(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(len(SIGNATURE)) == SIGNATURE
    except OSError:
        return False


def chunks(stream: BinaryIO) -> list[Chunk]:
    """Every chunk of a PNG, each CRC checked, from IHDR to IEND (nothing may follow it);
    MalformedPNG otherwise."""
    if stream.read(len(SIGNATURE)) != SIGNATURE:
        raise MalformedPNG("no PNG signature")
    found: list[Chunk] = []
    offset = len(SIGNATURE)
    while True:
        head = stream.read(8)
        if len(head) != 8:
            raise MalformedPNG("the file ends before IEND")
        length, kind = struct.unpack(">I4s", head)
        if length > MAX_CHUNK or not kind.isalpha():  # four ASCII letters
            raise MalformedPNG(f"a chunk at byte {offset} is not a PNG chunk")
        if not found and (kind != b"IHDR" or length != 13):
            raise MalformedPNG("the first chunk is not IHDR")
        checksum, start = zlib.crc32(kind), b""
        left = length
        while left:
            piece = stream.read(min(left, PIECE))
            if not piece:
                raise MalformedPNG("the file ends inside a chunk")
            if len(start) < len(KEYWORD) + 1:
                start += piece[: len(KEYWORD) + 1]
            checksum = zlib.crc32(piece, checksum)
            left -= len(piece)
        tail = stream.read(4)
        if len(tail) != 4 or struct.unpack(">I", tail)[0] != checksum & 0xFFFFFFFF:
            raise MalformedPNG(f"the CRC of {kind.decode()} at byte {offset} is wrong")
        ours = kind in TEXT_CHUNKS and start[: len(KEYWORD) + 1] == KEYWORD + b"\0"
        found.append(Chunk(offset, kind, length, ours))
        offset += 12 + length
        if kind == b"IEND":
            if stream.read(1):
                raise MalformedPNG("bytes follow IEND")
            return found


def record_chunk(text: str) -> bytes:
    """An iTXt chunk `siray` holding `text`: keyword, NUL, not compressed (0, 0), no language
    tag, no translated keyword, then the UTF-8 text."""
    data = KEYWORD + b"\0\0\0\0\0" + text.encode("utf-8")
    checksum = zlib.crc32(b"iTXt" + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", checksum)


def embed(source: Path, sink: BinaryIO, text: str) -> bool:
    """Write to `sink` the PNG `source` with the record `text` in a chunk right after IHDR (any
    `siray` text chunk it held dropped, every other chunk copied byte for byte). False, with
    nothing written, when `source` is not a well-formed PNG."""
    with source.open("rb") as stream:
        try:
            found = chunks(stream)
        except MalformedPNG:
            return False
        stream.seek(0)
        sink.write(stream.read(len(SIGNATURE)))
        for chunk in found:
            stream.seek(chunk.offset)
            if not chunk.ours:
                _copy(stream, sink, chunk.size)
            if chunk.kind == b"IHDR":
                sink.write(record_chunk(text))
    return True


def _copy(stream: BinaryIO, sink: BinaryIO, size: int) -> None:
    while size:
        piece = stream.read(min(size, PIECE))
        if not piece:
            raise MalformedPNG("the file changed while it was read")
        sink.write(piece)
        size -= len(piece)


def read_record(path: Path) -> str | None:
    """The text of the `siray` record a PNG carries, or None: not a PNG, a malformed one, or
    none in it (an iTXt chunk as siray writes it; a compressed one is read too)."""
    try:
        with path.open("rb") as stream:
            found = chunks(stream)
            for chunk in found:
                if chunk.ours and chunk.kind == b"iTXt" and chunk.length <= MAX_RECORD:
                    stream.seek(chunk.offset + 8)
                    return _itxt_text(stream.read(chunk.length))
    except (OSError, MalformedPNG, ValueError, zlib.error):
        return None
    return None


def _itxt_text(data: bytes) -> str | None:
    keyword, _, rest = data.partition(b"\0")
    if keyword != KEYWORD or len(rest) < 2:
        return None
    compressed, method, rest = rest[0], rest[1], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed:
        if method != 0:
            return None
        inflater = zlib.decompressobj()
        text = inflater.decompress(text, MAX_RECORD)
        if inflater.unconsumed_tail:
            return None
    return text.decode("utf-8")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while piece := stream.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def digests_of(path: Path) -> tuple[str, str | None]:
    """The SHA-256 of the file, and of the file without its `siray` record when it carries one
    (the bytes the server sent, when it held no such chunk itself); OSError if it is gone."""
    whole = sha256_of(path)
    with path.open("rb") as stream:
        try:
            found = chunks(stream)
        except MalformedPNG:
            return whole, None
        if not any(chunk.ours for chunk in found):
            return whole, None
        bare = hashlib.sha256(SIGNATURE)
        for chunk in found:
            if chunk.ours:
                continue
            stream.seek(chunk.offset)
            left = chunk.size
            while left:
                piece = stream.read(min(left, PIECE))
                if not piece:
                    return whole, None
                bare.update(piece)
                left -= len(piece)
    return whole, bare.hexdigest()
