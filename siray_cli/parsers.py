"""What a setting's text may be, and what it means: each parser turns the text a user typed (a flag,
a variable, a config file) into a value of its type, or refuses it with the words `siray` shows
after the setting's name. The same parser reads a flag, a variable and a profile, so that
`--timeout -5` and `siray config set timeout -5` are refused alike.

Nothing but the standard library: the settings and the providers' specs both declare with these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from siray_cli.names import NameTemplate

T = TypeVar("T")

# printable ASCII without spaces: what an Authorization header can carry as it is
UNSAFE_KEY = "has characters an HTTP header cannot carry (non-ASCII, control characters or spaces)"


def header_safe(key: str) -> bool:
    return bool(key) and all("!" <= ch <= "~" for ch in key)


class Parser(Generic[T]):
    def parse(self, text: str) -> T:
        """The value `text` means; ValueError (its message completes the setting's name) if none."""
        raise NotImplementedError

    def show(self, value: T) -> str:
        """The value as text again, as `config list`, `--debug` and `auth status` show it."""
        return str(value)

    def stored(self, value: T) -> str | int | float:
        """The value as `config set` writes it to the TOML file."""
        return self.show(value)


class Text(Parser[str]):
    def parse(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise ValueError("must not be empty")
        return text


class URL(Parser[str]):
    def __init__(self, example: str) -> None:
        self.example = example

    def parse(self, text: str) -> str:
        text = text.strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"is not an http(s) URL (for example {self.example})")
        return text


class Choice(Parser[str]):
    """One word of a few, in any case."""

    def __init__(self, words: tuple[str, ...], refusal: str | None = None) -> None:
        self.words = words
        self.refusal = refusal or f"must be one of {', '.join(words)}"

    def parse(self, text: str) -> str:
        word = text.strip().lower()
        if word not in self.words:
            raise ValueError(self.refusal)
        return word


class Switch(Parser[bool]):
    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in ("on", "true", "yes", "1"):
            return True
        if word in ("off", "false", "no", "0"):
            return False
        raise ValueError("must be on or off")

    def show(self, value: bool) -> str:
        return "on" if value else "off"


class Seconds(Parser[float]):
    """A duration; `accepts` is the range, `refusal` says it in words (text that is not a
    number gets the same words: the user needs the range, not the parse error)."""

    def __init__(self, accepts: Callable[[float], bool], refusal: str) -> None:
        self.accepts, self.refusal = accepts, refusal

    def parse(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(self.refusal) from None
        if math.isnan(number) or not self.accepts(number):
            raise ValueError(self.refusal)
        return number

    def show(self, value: float) -> str:
        return f"{value:g}"

    def stored(self, value: float) -> float:
        return value


class Bytes(Parser[int]):
    """A size in bytes, positive, and at least `least` (with `too_small` saying why)."""

    def __init__(self, least: int = 1, too_small: str = "") -> None:
        self.least, self.too_small = least, too_small

    def parse(self, text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError("must be a whole number of bytes") from None
        if number <= 0:
            raise ValueError("must be a positive number of bytes")
        if number < self.least:
            raise ValueError(self.too_small)
        return number

    def stored(self, value: int) -> int:
        return value


class APIKey(Parser[str]):
    """A bearer key: sent as it is in a header, so nothing a header cannot carry."""

    def parse(self, text: str) -> str:
        text = Text().parse(text)
        if not header_safe(text):
            raise ValueError(UNSAFE_KEY)
        return text


class IdAndSecret(Parser[str]):
    """A `key_id:key_secret` credential."""

    def parse(self, text: str) -> str:
        text = text.strip()
        if text and not header_safe(text):
            raise ValueError(UNSAFE_KEY)
        key_id, colon, secret = text.partition(":")
        if not key_id or not colon or not secret or any(ch.isspace() for ch in text):
            raise ValueError("must be key_id:key_secret (the key's id and its secret, joined by :)")
        return text


class Template(Parser["NameTemplate"]):
    """A template of saved files' names (siray_cli.names.NameTemplate: its fields, its rules)."""

    def parse(self, text: str) -> NameTemplate:
        from siray_cli.names import NameTemplate

        return NameTemplate(Text().parse(text))

    def show(self, value: NameTemplate) -> str:
        return value.text
