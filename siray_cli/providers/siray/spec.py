"""The Siray API as the rest of siray sees it (the default provider)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from siray_cli.parsers import APIKey
from siray_cli.providers.spec import Connection, Credential, Host, ProviderSpec

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider


DEFAULT_BASE_URL = "https://api.siray.ai"


def connect(connection: Connection) -> Provider:
    from siray_cli.providers.siray.client import SirayProvider

    return SirayProvider(
        api_key=connection.api_key,
        base_url=connection.base_url,
        gateway_url=connection.gateway_url,
        trace=connection.trace,
        backoff=connection.backoff,
        read_timeout=connection.read_timeout,
        max_rate=connection.max_rate,
        set_by=connection.set_by,
    )


SPEC = ProviderSpec(
    name="siray",
    credential=Credential(
        env="SIRAY_API_KEY",
        parser=APIKey(),
        stored_as="api_key",
        help="the API key",
        prompt="Siray API key",
        missing="no API key",
        missing_hint="run `siray auth login`, set SIRAY_API_KEY, or pass --api-key "
        "(offline: `siray emulator exec -- CMD`)",
    ),
    base_url=Host("SIRAY_BASE_URL", DEFAULT_BASE_URL, "the API host"),
    gateway_url=Host(
        "SIRAY_GATEWAY_URL",
        "https://api-gateway.siray.ai",
        "the gateway host (uploads, model catalogue)",
    ),
    connect=connect,
    command="siray",
    completes_from_cache=True,  # its catalogue comes from its gateway
)
