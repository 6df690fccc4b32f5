"""Typed model-input values shared by `-i` parsing (inputs.py) and schema checks (validation.py),
so neither of those imports the other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from siray_cli.errors import UsageError

UPLOAD_PLACEHOLDER = "siray-upload://"  # a local file, replaced by its URL once uploaded
# Bounds on every JSON document a user gives (-i key:=..., --input-json, a batch line): checked
# while parsing, before anything is sent, so no later step (the history, the request) can fail
# on it once a task is paid for.
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 16 * 1024 * 1024


class JSONTooLarge(ValueError):
    """Valid JSON, but nested too deeply or too big to send: never taken as plain text."""


def reject_constant(name: str) -> Any:
    raise ValueError(name)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def load_json(text: str) -> Any:
    """`json.loads` with bounds: ValueError for text that is not JSON (NaN and Infinity
    included), JSONTooLarge for JSON nested deeper than MAX_JSON_DEPTH or longer than
    MAX_JSON_BYTES."""
    if len(text) > MAX_JSON_BYTES:
        raise JSONTooLarge(f"JSON of {len(text)} characters, over the {MAX_JSON_BYTES} allowed")
    try:
        value = json.loads(text, parse_constant=reject_constant, parse_float=_finite)
    except RecursionError:
        raise JSONTooLarge(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    # no deeper than it has brackets (counted in strings too: never fewer): a batch line's
    # count is a few, and the walk over every value (a tenth of a 10,000-line batch's parse)
    # is left to text that may nest that deep
    nests = text.count("[") + text.count("{")
    if nests > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise JSONTooLarge(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _finite(text: str) -> float:
    """A JSON number as a float, refused when it is out of a float's range (`1e999` would become
    Infinity, which no JSON encoder may send)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a number")
    return value


def decode_value(text: str) -> Any:
    """A JSON value when the text parses as JSON (`42`, `true`, `[1,2]`), else the text itself.
    Raises JSONTooLarge for JSON beyond the bounds (never sent as text by accident)."""
    try:
        return load_json(text)
    except JSONTooLarge:
        raise
    except ValueError:
        return text


@dataclass(frozen=True)
class InputItem:
    """One `-i` input as typed: the key, the raw text, whether `:=` forced JSON, and whether the
    text is to be sent as it is (`@@text`, or a file `@path` already replaced by its URL)."""

    key: str
    raw: str
    forced_json: bool = False
    literal: bool = False

    def value(self) -> Any:
        """Without a schema: JSON when it parses (always, for `:=`), else the text."""
        if self.literal:
            return self.raw
        return load_json(self.raw) if self.forced_json else decode_value(self.raw)


def is_remote(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:", UPLOAD_PLACEHOLDER))


def check_input_value(key: str, raw: str) -> None:
    """A UsageError when an input's text is JSON beyond the bounds (checked as it is parsed, so
    nothing later can fail on it after a task is paid for)."""
    try:
        decode_value(raw)
    except JSONTooLarge as exc:
        raise UsageError(f"input {key}: {exc}", hint="send a smaller value") from None
