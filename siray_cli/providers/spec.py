"""What a provider declares about itself, for the rest of siray to read instead of branching on
its name: how its credential is given and kept, its host, its built-in catalogue, how hints
spell a command for it, and how to open a connection. Each provider's package holds its own
(`siray/spec.py`, `higgsfield/spec.py`); `registry.py` lists them.

Cheap to import on purpose (read at start-up by the settings): the standard library only, and
a provider's client is imported by its `connect` when a connection is opened."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siray_cli.parsers import Parser
    from siray_cli.providers.base import Provider, Trace


@dataclass(frozen=True)
class Connection:
    """Where and how to reach a provider."""

    api_key: str
    base_url: str
    gateway_url: str | None = None
    trace: Trace | None = None
    backoff: float | None = None  # None: the transport's DEFAULT_BACKOFF
    read_timeout: float | None = None


@dataclass(frozen=True)
class Credential:
    """How a provider's credential is given (`env`, or the `pair` of variables joined as
    id:secret) and kept (the profile key `stored_as`), and what siray says about it."""

    env: str
    parser: Parser[str]
    stored_as: str
    help: str  # what it is, in the list of variables
    prompt: str  # what `auth login` asks for
    missing: str  # the error when there is none, and its hint
    missing_hint: str
    pair: tuple[str, str] | None = None
    pair_help: str = ""


@dataclass(frozen=True)
class Host:
    env: str
    default: str
    help: str


def no_models() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    credential: Credential
    base_url: Host
    connect: Callable[[Connection], Provider]
    command: str  # how a hint spells siray for it, so a copied command reaches the same API
    gateway_url: Host | None = None  # None: the gateway setting is not this provider's
    # model name -> kind, known without asking a server (completion offers these)
    built_in_models: Callable[[], Mapping[str, str]] = no_models
    # whether completion offers the model catalogue cached from the provider's server
    completes_from_cache: bool = False
