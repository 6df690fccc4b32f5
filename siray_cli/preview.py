"""Inline previews of images, on a terminal that draws them: textual-image's rich renderables
for the Kitty graphics protocol and for Sixel, Pillow to read and shrink the file first.

Imported only when a preview is shown (with Pillow and textual-image, the `preview` extra):
`siray --help` and `siray status` never load them. Every file is treated as hostile: its size,
format and pixel count are checked before a pixel is decoded, and a file that fails any check,
or that Pillow cannot read, is skipped with its reason (PreviewSkipped), never an error.

textual-image writes the Kitty protocol's messages to `sys.__stdout__` and reads the
terminal's size there, and its package asks the terminal which protocol it speaks when it is
imported with a terminal on `sys.__stdout__`. siray's previews go to stderr (stdout carries only
data) and siray never asks the terminal anything (the answer comes on standard input), so
`sys.__stdout__` is swapped, while the library is imported and while an image is drawn, for the
stream the previews go to (`_Terminal`): it says it is no terminal during the import (so
nothing is asked) and while drawing unless the terminal told its cell size in pixels.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image
    from rich.console import Console

ROWS = 12  # the most terminal rows an image takes
MOST_COLUMNS = 200  # and columns (the Kitty renderable places at most 297)
MAX_PIXELS = 40_000_000  # an 8K by 5K image; generated images are far smaller
MAX_BYTES = 64 * 1024 * 1024  # the largest file read (or fetched, without -o) for a preview
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # what image models make; no other decoder runs
CELL = (10, 20)  # a cell's pixels when the terminal does not tell (textual-image's guess too)


class PreviewSkipped(Exception):
    """An image not previewed; the message says why, in a few words."""


class _Terminal:
    """The stream previews go to, standing in for `sys.__stdout__` (see the module's doc)."""

    def __init__(self, stream: IO[str], *, sized: bool) -> None:
        self.stream = stream
        self.sized = sized

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.sized

    def fileno(self) -> int:
        return self.stream.fileno()


@contextmanager
def _as_stdout(stand_in: _Terminal) -> Iterator[None]:
    saved = sys.__stdout__
    sys.__stdout__ = stand_in  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        sys.__stdout__ = saved  # type: ignore[misc]


def cell_pixels(stream: IO[str]) -> tuple[int, int] | None:
    """A terminal cell's width and height in pixels, as the terminal tells the kernel (many
    do not: None)."""
    try:
        import fcntl
        import struct
        import termios

        answer = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, columns, width, height = struct.unpack("HHHH", answer)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if not (rows and columns and width and height):
        return None
    return max(1, width // columns), max(1, height // rows)


def load(path: Path, box: tuple[int, int]) -> Image:
    """The image at `path` shrunk to fit `box` (pixels), after the checks that keep a hostile
    file from costing time or memory: its size on disk, its format (by its bytes, whatever its
    name), and its pixel count, read from its header before anything is decoded."""
    from PIL import Image as PIL
    from PIL import UnidentifiedImageError

    PIL.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own check too, in open() (its "bomb" check)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PreviewSkipped(f"cannot read it ({exc.strerror})") from None
    if size > MAX_BYTES:
        raise PreviewSkipped(f"{size} bytes, more than a preview reads ({MAX_BYTES})")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIL.DecompressionBombWarning)
        try:
            with PIL.open(path, formats=FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS or not (width and height):
                    raise PreviewSkipped(f"{width}×{height}: too many pixels to preview")
                image.draft("RGB", box)  # a JPEG decodes at a fraction of its size
                image.thumbnail(box)
                converted: Image = image.convert("RGBA")
                return converted
        except PreviewSkipped:
            raise
        except (PIL.DecompressionBombError, PIL.DecompressionBombWarning):
            raise PreviewSkipped(f"too many pixels to preview (over {MAX_PIXELS})") from None
        except UnidentifiedImageError:
            raise PreviewSkipped("not an image siray previews (PNG, JPEG, WebP, GIF)") from None
        except Exception as exc:  # a broken or hostile file: Pillow raises many kinds
            raise PreviewSkipped(f"unreadable image ({type(exc).__name__})") from None


class Previewer:
    """Draws images on `console` (stderr's) with `protocol` ("kitty" or "sixel")."""

    def __init__(self, console: Console, protocol: str, rows: int = ROWS) -> None:
        self.console = console
        stream = console.file
        told = cell_pixels(stream)
        self.cell = told or CELL
        self.terminal = _Terminal(stream, sized=told is not None)
        self.rows = max(1, min(rows, console.height // 2))
        with _as_stdout(_Terminal(stream, sized=False)):  # nothing asked of the terminal
            from textual_image.renderable import SixelImage, TGPImage
        self.renderable: Any = TGPImage if protocol == "kitty" else SixelImage

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """Columns and rows for an image of `width` by `height` pixels: `rows` high, narrower
        when the terminal is too narrow for its shape."""
        cell_width, cell_height = self.cell
        room = max(1, min(MOST_COLUMNS, self.console.width - 1))
        rows = self.rows
        columns = max(1, round(rows * cell_height * width / height / cell_width))
        if columns > room:
            columns = room
            rows = max(1, round(columns * cell_width * height / width / cell_height))
        return columns, rows

    def show(self, path: Path) -> None:
        """The image at `path`, drawn under the cursor; PreviewSkipped when it cannot be."""
        columns = max(1, min(MOST_COLUMNS, self.console.width - 1))
        box = (columns * self.cell[0], self.rows * self.cell[1])
        image = load(path, box)
        columns, rows = self.fit(image.width, image.height)
        try:
            renderable = self.renderable(image, width=columns, height=rows)
            with _as_stdout(self.terminal):
                self.console.print(renderable)
        except Exception as exc:  # the library's own refusal (an image it cannot place)
            raise PreviewSkipped(f"cannot draw it ({type(exc).__name__})") from None
