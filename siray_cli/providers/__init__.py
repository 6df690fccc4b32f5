"""The providers siray speaks to, behind one seam (`base.Provider`). The rest of siray picks one
by name here and never imports a provider's package itself."""

from __future__ import annotations

from dataclasses import dataclass

from siray_cli.providers.base import Provider, Trace

PROVIDERS = ("siray", "higgsfield")
DEFAULT_PROVIDER = "siray"


@dataclass(frozen=True)
class Connection:
    """Where and how to reach a provider."""

    api_key: str
    base_url: str
    gateway_url: str | None = None
    trace: Trace | None = None
    backoff: float | None = None  # None: the transport's DEFAULT_BACKOFF
    read_timeout: float | None = None


def open_provider(name: str, connection: Connection) -> Provider:
    if name == "siray":
        from siray_cli.providers.siray.client import SirayProvider

        return SirayProvider(
            api_key=connection.api_key,
            base_url=connection.base_url,
            gateway_url=connection.gateway_url,
            trace=connection.trace,
            backoff=connection.backoff,
            read_timeout=connection.read_timeout,
        )
    if name == "higgsfield":
        from siray_cli.providers.higgsfield.client import HiggsfieldProvider

        return HiggsfieldProvider(
            credential=connection.api_key,
            base_url=connection.base_url,
            trace=connection.trace,
            backoff=connection.backoff,
            read_timeout=connection.read_timeout,
        )
    raise ValueError(f"unknown provider {name!r}")


def command_prefix(name: str) -> str:
    """How a hint spells siray for this provider: `siray`, or `siray --provider NAME` for any
    other than the default, so that a command copied from a hint reaches the same API."""
    return "siray" if name == DEFAULT_PROVIDER else f"siray --provider {name}"


def built_in_models(name: str) -> dict[str, str]:
    """The model names a provider's package knows without asking the server (name -> kind):
    Higgsfield's application ids; none for Siray, whose catalogue comes from its gateway."""
    if name == "higgsfield":
        from siray_cli.providers.higgsfield.parse import APPLICATIONS

        return {app: kind.value for app, (kind, _, _) in APPLICATIONS.items()}
    return {}
