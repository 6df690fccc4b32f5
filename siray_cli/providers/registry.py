"""Every provider siray speaks to, by name: adding one is its package (with its `spec.py`) and
one line here. The rest of siray reads a provider's spec; it never compares its name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from siray_cli.providers.higgsfield.spec import SPEC as HIGGSFIELD
from siray_cli.providers.siray.spec import SPEC as SIRAY
from siray_cli.providers.spec import Connection, ProviderSpec

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider

REGISTRY: dict[str, ProviderSpec] = {spec.name: spec for spec in (SIRAY, HIGGSFIELD)}
DEFAULT_PROVIDER = SIRAY.name
PROVIDERS = tuple(REGISTRY)


def spec_of(name: str) -> ProviderSpec:
    spec = REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"unknown provider {name!r}")
    return spec


def open_provider(name: str, connection: Connection) -> Provider:
    return spec_of(name).connect(connection)


def command_prefix(name: str) -> str:
    """How a hint spells siray for this provider: `siray`, or `siray --provider NAME` for any
    other than the default, so that a command copied from a hint reaches the same API."""
    return spec_of(name).command


def built_in_models(name: str) -> Mapping[str, str]:
    """The model names a provider's package knows without asking the server (name -> kind):
    Higgsfield's application ids; none for Siray, whose catalogue comes from its gateway."""
    return spec_of(name).built_in_models()
