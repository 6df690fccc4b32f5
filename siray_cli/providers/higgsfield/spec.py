"""The Higgsfield API as the rest of siray sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from siray_cli.parsers import IdAndSecret
from siray_cli.providers.spec import Connection, Credential, Host, ProviderSpec

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider


DEFAULT_BASE_URL = "https://api.higgsfield.ai"


def connect(connection: Connection) -> Provider:
    from siray_cli.providers.higgsfield.client import HiggsfieldProvider

    return HiggsfieldProvider(
        credential=connection.api_key,
        base_url=connection.base_url,
        trace=connection.trace,
        backoff=connection.backoff,
        read_timeout=connection.read_timeout,
        max_rate=connection.max_rate,
        set_by=connection.set_by,
    )


def applications() -> Mapping[str, str]:
    """Its application ids (name -> kind): the API has no catalogue to ask."""
    from siray_cli.providers.higgsfield.parse import APPLICATIONS

    return {app: kind.value for app, (kind, _, _) in APPLICATIONS.items()}


def schemas() -> Mapping[str, dict[str, Any]]:
    """Its applications' arguments, as the JSON Schemas siray checks them by."""
    from siray_cli.providers.higgsfield.parse import catalogue

    return {model.name: model.schema for model in catalogue()}


SPEC = ProviderSpec(
    name="higgsfield",
    credential=Credential(
        env="HF_KEY",
        parser=IdAndSecret(),
        # kept apart from `api_key`, so one profile can hold both and neither is ever sent to
        # the other
        stored_as="hf_key",
        help="the credential, key_id:key_secret",
        prompt="Higgsfield key (key_id:key_secret)",
        missing="no Higgsfield credential",
        missing_hint="set HF_KEY (key_id:key_secret), or HF_API_KEY and HF_API_SECRET, or run "
        "`siray --provider higgsfield auth login` (offline: `siray emulator exec -- CMD`)",
        pair=("HF_API_KEY", "HF_API_SECRET"),
        pair_help="the key id and secret, apart",
    ),
    base_url=Host("SIRAY_HIGGSFIELD_BASE_URL", DEFAULT_BASE_URL, "the API host"),
    connect=connect,
    command="siray --provider higgsfield",
    built_in_models=applications,
    built_in_schemas=schemas,
)
