"""Typed model-input values shared by `-i` parsing (inputs.py) and schema checks (validation.py),
so neither of those imports the other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UPLOAD_PLACEHOLDER = "siray-upload://"  # a local file, replaced by its URL once uploaded


def reject_constant(name: str) -> Any:
    raise ValueError(name)


def decode_value(text: str) -> Any:
    """A JSON value when the text parses as JSON (`42`, `true`, `[1,2]`), else the text itself."""
    try:
        return json.loads(text, parse_constant=reject_constant)
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
        return json.loads(self.raw) if self.forced_json else decode_value(self.raw)


def is_remote(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:", UPLOAD_PLACEHOLDER))
