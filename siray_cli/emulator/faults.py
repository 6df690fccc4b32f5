"""Faults the emulator can inject, for tests and for users who want to see their scripts cope.

A rule matches requests by method and path (a regular expression searched in the path), fires on a
fraction of them (`rate`) and a number of times (`count`; 0 means no limit), and does one thing:

| action      | what the client sees                                                       |
|-------------|----------------------------------------------------------------------------|
| status      | HTTP `status` with a `body` of json, text, html or echo (and `retry_after`)|
| delay       | the normal answer, `delay` seconds late                                    |
| drop        | the connection closed before the request is processed                     |
| drop-after  | the request processed (a task is created), then the connection closed     |
| truncate    | half the body, with the full Content-Length, then the connection closed   |
| truncate-eof| half the body, no Content-Length (close-delimited), then closed            |
| malformed   | HTTP 200 with a body that is not valid JSON                                |
| stall       | the headers and half the body, then `delay` seconds of silence, then close|

Written on the command line as comma-separated key=value pairs:
`action=status,status=503,body=html,path=^/v1/,method=GET,count=3`.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field, fields

ACTIONS = (
    "status",
    "delay",
    "drop",
    "drop-after",
    "truncate",
    "truncate-eof",
    "malformed",
    "stall",
)
BODIES = ("json", "text", "html", "echo")


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    action: str = "status"
    path: str = ""
    method: str | None = None
    status: int = 503
    body: str = "json"
    retry_after: float | None = None
    delay: float = 1.0
    count: int = 1
    rate: float = 1.0
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise FaultSpecError(
                f"unknown fault action {self.action!r}; one of {', '.join(ACTIONS)}"
            )
        if self.body not in BODIES:
            raise FaultSpecError(f"unknown fault body {self.body!r}; one of {', '.join(BODIES)}")
        if not 0 < self.rate <= 1:
            raise FaultSpecError("fault rate must be in (0, 1]")
        if self.count < 0:
            raise FaultSpecError("fault count must be 0 (no limit) or more")
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise FaultSpecError(
                f"fault path {self.path!r} is not a regular expression: {exc}"
            ) from exc
        if self.method:
            self.method = self.method.upper()

    @classmethod
    def parse(cls, spec: str) -> Fault:
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in kinds or key == "fired":
                raise FaultSpecError(f"bad fault setting {part!r} in {spec!r}")
            kind = str(kinds[key])
            try:
                if "int" in kind and "float" not in kind:
                    values[key] = int(value)
                elif "float" in kind:
                    values[key] = float(value)
                else:
                    values[key] = value
            except ValueError:
                raise FaultSpecError(f"bad value in {part!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return bool(self._pattern.search(path))


class Faults:
    """The active rules; thread-safe. The first matching rule that fires wins."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._released = threading.Event()  # set by clear(): ends the delays and stalls held

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        """No rule any more, and the requests a delay or a stall holds go on at once (a delayed
        create, say, is answered now, not after its delay)."""
        with self._lock:
            self._rules.clear()
            released, self._released = self._released, threading.Event()
        released.set()

    def hold(self, seconds: float) -> None:
        """A fault's delay or stall: `seconds`, or until the rules are cleared."""
        with self._lock:
            released = self._released
        released.wait(seconds)

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.rate < 1 and self._random.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.count and rule.fired >= rule.count:
                    self._rules.remove(rule)
                return rule
        return None
