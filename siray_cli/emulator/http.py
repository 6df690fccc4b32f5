"""What the emulated APIs share on the wire: the request a handler is given, the response it
returns, the router that picks the handler (method + path pattern), the JSON and error answers,
and the key check. It knows nothing of the emulator's state, so every module may import it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.message import Message
from typing import Any


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(document).encode(), headers=headers or {})


def error_response(
    status: int, message: str, code: str, kind: str = "invalid_request_error"
) -> Response:
    return json_response(status, {"error": {"message": message, "type": kind, "code": code}})


@dataclass(frozen=True)
class Request:
    method: str  # as routed: HEAD is answered as GET
    path: str  # without the query string
    target: str  # the request line's target, query string included
    body: bytes
    headers: Message
    params: dict[str, str] = field(default_factory=dict)  # the route pattern's named groups


RouteHandler = Callable[[Request], Response]
Guard = Callable[[Request], Response | None]


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: RouteHandler


def not_found(request: Request) -> Response:
    return error_response(404, f"no route for {request.method} {request.path}", "not_found")


class Router:
    """Routes in registration order; the first whose method and full path match answers.

    A guard covers every path under a prefix, routed or not (an unknown path under `/v1/` without
    a key is a 401, as on the real service), and answers instead of the route when it objects.
    Path templates turn concrete paths into the names the request counts use."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._guards: list[tuple[str, Guard]] = []
        self._templates: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = []

    def add(self, methods: str | tuple[str, ...], pattern: str, handler: RouteHandler) -> None:
        methods = (methods,) if isinstance(methods, str) else methods
        self._routes.append(Route(methods, re.compile(pattern), handler))

    def guard(self, prefix: str, check: Guard) -> None:
        self._guards.append((prefix, check))

    def template(self, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> None:
        self._templates.append((re.compile(pattern), replacement))

    def path_template(self, path: str) -> str:
        for pattern, replacement in self._templates:
            path = pattern.sub(replacement, path)
        return path

    def dispatch(self, request: Request) -> Response:
        for prefix, check in self._guards:
            if request.path.startswith(prefix):
                denied = check(request)
                if denied is not None:
                    return denied
                break
        for route in self._routes:
            if request.method not in route.methods:
                continue
            match = route.pattern.fullmatch(request.path)
            if match is not None:
                return route.handler(replace(request, params=match.groupdict()))
        return not_found(request)


def check_auth(request: Request, scheme: str, api_key: str) -> Response | None:
    """None when the request carries `Authorization: <scheme> <api_key>`, else the 401."""
    header = request.headers.get("Authorization", "")
    given_scheme, _, key = header.partition(" ")
    if not header:
        return error_response(401, "Missing API key", "invalid_api_key")
    if given_scheme != scheme or not secrets.compare_digest(key.strip(), api_key):
        return error_response(401, "Invalid API key", "invalid_api_key")
    return None
