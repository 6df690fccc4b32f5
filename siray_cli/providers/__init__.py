"""The providers siray speaks to, behind one seam (`base.Provider`). The rest of siray picks one
by name here (each declares a `ProviderSpec`, listed in `registry`) and never imports a
provider's package itself."""

from siray_cli.providers.registry import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    REGISTRY,
    built_in_models,
    command_prefix,
    open_provider,
    spec_of,
)
from siray_cli.providers.spec import Connection, ProviderSpec

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "REGISTRY",
    "Connection",
    "ProviderSpec",
    "built_in_models",
    "command_prefix",
    "open_provider",
    "spec_of",
]
