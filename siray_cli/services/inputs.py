"""Building a request body from what the user typed: prompt sources, `key=value` inputs, JSON bodies
and image values. Nothing here talks to the network."""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from siray_cli.errors import UsageError
from siray_cli.services.values import (
    InputItem,
    JSONTooLarge,
    check_input_value,
    load_json,
)

STDIN = "-"
INLINE_WARN_BYTES = 4 * 1024 * 1024


def parse_input(item: str) -> InputItem:
    """`key=value` or `key:=json` (checked here: invalid JSON is a usage error).

    Only the first `=` separates, so values may contain `=` and may start with `-`.
    """
    key, sep, raw = item.partition("=")
    if not sep:
        raise UsageError(
            f"input {item!r} is not key=value", hint="write -i size=1024x768 or -i seed:=42"
        )
    force_json = key.endswith(":")
    if force_json:
        key = key[:-1]
    key = key.strip()
    if not key or any(ch.isspace() for ch in key):
        raise UsageError(f"input {item!r} has no valid key before '='", hint="write -i key=value")
    if force_json:
        try:
            load_json(raw)
        except JSONTooLarge as exc:
            raise UsageError(f"input {key}: {exc}", hint="send a smaller value") from None
        except ValueError as exc:
            raise UsageError(
                f"input {key}:= takes JSON, and {raw!r} is not valid JSON",
                hint="quote strings as JSON: -i key:='\"text\"', or use key=value",
            ) from exc
    check_input_value(key, raw)
    return InputItem(key, raw, force_json)


class StdinOnce:
    """Standard input, read only when asked for, and at most once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._used_by: str | None = None

    def read(self, purpose: str) -> str:
        if self._used_by is not None:
            raise UsageError(
                f"standard input is already used for {self._used_by}; it cannot also give {purpose}"
            )
        self._used_by = purpose
        return self._stream.read()


def _read_text_file(path: str, what: str, stdin: StdinOnce) -> str:
    if path == STDIN:
        return stdin.read(what)
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} file {path} is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc.strerror}") from None


def resolve_prompt(
    positional: str | None,
    option: str | None,
    prompt_file: str | None,
    stdin: StdinOnce,
    usage: str = "siray run MODEL",
) -> str | None:
    """The prompt, from one of its three places; `usage` spells the command in a hint."""
    given = [x for x in (positional, option, prompt_file) if x is not None]
    if len(given) > 1:
        raise UsageError(
            "the prompt was given more than once",
            hint="use one of PROMPT, -p/--prompt or --prompt-file",
        )
    if prompt_file is not None:
        text = _read_text_file(prompt_file, "prompt", stdin).rstrip("\n")
    elif positional == STDIN:
        text = stdin.read("the prompt").rstrip("\n")
    elif positional is not None:
        text = positional
    elif option is not None:
        text = option
    else:
        return None
    if not text.strip():
        raise UsageError("the prompt is empty", hint=f'give a prompt: {usage} "a red fox"')
    return text


def load_json_body(source: str, stdin: StdinOnce) -> dict[str, Any]:
    text = _read_text_file(source, "--input-json", stdin)
    try:
        body = load_json(text)
    except JSONTooLarge as exc:
        raise UsageError(f"--input-json {source}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"--input-json {source}: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise UsageError(
            f"--input-json {source}: expected a JSON object, got {type(body).__name__}"
        )
    return body


def resolve_at_files(
    items: Sequence[InputItem], local_file: Callable[[str, str], str]
) -> list[InputItem]:
    """`-i key=@path` names a local file (for any input); `-i key=@@text` means `@text`."""
    resolved = []
    for item in items:
        if item.forced_json or not item.raw.startswith("@"):
            resolved.append(item)
        elif item.raw.startswith("@@"):
            resolved.append(InputItem(item.key, item.raw[1:], literal=True))
        else:
            resolved.append(InputItem(item.key, local_file(item.key, item.raw[1:]), literal=True))
    return resolved


def unreadable(path: Path) -> str | None:
    """Why a local input file cannot be used, or None."""
    if not path.exists():
        return f"image file {path} does not exist"
    if not path.is_file():
        return f"image {path} is not a file"
    if not os.access(path, os.R_OK):
        return f"image file {path} is not readable"
    if path.stat().st_size == 0:
        return f"image file {path} is empty"
    return None


def data_url(path: Path) -> tuple[str, int]:
    """A data URL of a local file, and its size in bytes."""
    if not path.exists():
        raise UsageError(f"image file {path} does not exist", hint="give a URL or an existing file")
    if not path.is_file():
        raise UsageError(f"image {path} is not a file")
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read image file {path}: {exc.strerror}") from None
    if not payload:
        raise UsageError(f"image file {path} is empty")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}", len(payload)
