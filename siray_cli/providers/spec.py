"""What a provider declares about itself, for the rest of siray to read instead of branching on
its name: how its credential is given and kept, its host, its built-in catalogue, how hints
spell a command for it, and how to open a connection. Each provider's package holds its own
(`siray/spec.py`, `higgsfield/spec.py`); `registry.py` lists them.

Cheap to import on purpose (read at every start-up, `--help` too, by the settings): plain
classes with slots, not dataclasses or NamedTuples (a dataclass costs about 1 ms to make, a
NamedTuple compiles each of its annotations: together some 3-4 ms of every start), and a
provider's client is imported by its `connect` when a connection is opened."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siray_cli.parsers import Parser
    from siray_cli.providers.base import Provider, Trace


class Connection:
    """Where and how to reach a provider."""

    __slots__ = (
        "api_key",
        "backoff",
        "base_url",
        "gateway_url",
        "max_rate",
        "read_timeout",
        "set_by",
        "trace",
    )

    def __init__(
        self,
        api_key: str,
        base_url: str,
        gateway_url: str | None = None,
        trace: Trace | None = None,
        backoff: float | None = None,  # None: the transport's DEFAULT_BACKOFF
        read_timeout: float | None = None,
        set_by: str | None = None,  # where base_url comes from, when not the default
        max_rate: float | None = None,  # requests a second at most (None: the transport's)
    ) -> None:
        self.api_key, self.base_url, self.gateway_url = api_key, base_url, gateway_url
        self.trace, self.backoff, self.read_timeout = trace, backoff, read_timeout
        self.set_by, self.max_rate = set_by, max_rate


class Credential:
    """How a provider's credential is given (`env`, or the `pair` of variables joined as
    id:secret) and kept (the profile key `stored_as`), and what siray says about it: `help` in
    the list of variables, `prompt` for `auth login`, `missing` and `missing_hint` when there
    is none."""

    __slots__ = (
        "env",
        "help",
        "missing",
        "missing_hint",
        "pair",
        "pair_help",
        "parser",
        "prompt",
        "stored_as",
    )

    def __init__(
        self,
        env: str,
        parser: Parser[str],
        stored_as: str,
        help: str,
        prompt: str,
        missing: str,
        missing_hint: str,
        pair: tuple[str, str] | None = None,
        pair_help: str = "",
    ) -> None:
        self.env, self.parser, self.stored_as, self.help = env, parser, stored_as, help
        self.prompt, self.missing, self.missing_hint = prompt, missing, missing_hint
        self.pair, self.pair_help = pair, pair_help


class Host:
    __slots__ = ("default", "env", "help")

    def __init__(self, env: str, default: str, help: str) -> None:
        self.env, self.default, self.help = env, default, help


def no_models() -> Mapping[str, str]:
    return {}


def no_schemas() -> Mapping[str, dict[str, Any]]:
    return {}


class ProviderSpec:
    """`command`: how a hint spells siray for it, so a copied command reaches the same API;
    `gateway_url` None: the gateway setting is not this provider's; `built_in_models`: model
    name -> kind, known without asking a server (completion offers these), and
    `built_in_schemas` their request bodies' JSON Schemas (completion offers their inputs);
    `completes_from_cache`: whether completion offers the catalogue cached from its server."""

    __slots__ = (
        "base_url",
        "built_in_models",
        "built_in_schemas",
        "command",
        "completes_from_cache",
        "connect",
        "credential",
        "gateway_url",
        "name",
    )

    def __init__(
        self,
        name: str,
        credential: Credential,
        base_url: Host,
        connect: Callable[[Connection], Provider],
        command: str,
        gateway_url: Host | None = None,
        built_in_models: Callable[[], Mapping[str, str]] = no_models,
        completes_from_cache: bool = False,
        built_in_schemas: Callable[[], Mapping[str, dict[str, Any]]] = no_schemas,
    ) -> None:
        self.name, self.credential, self.base_url, self.connect = (
            name,
            credential,
            base_url,
            connect,
        )
        self.command, self.gateway_url = command, gateway_url
        self.built_in_models, self.completes_from_cache = built_in_models, completes_from_cache
        self.built_in_schemas = built_in_schemas
