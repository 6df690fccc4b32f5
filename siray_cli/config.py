"""Where each setting comes from: command-line flag, then environment variable, then built-in
default.

One function resolves them all, and remembers the source of each value for `--debug`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from siray_cli.api.errors import MissingAPIKeyError, UsageError

DEFAULT_BASE_URL = "https://api.siray.ai"
DEFAULT_GATEWAY_URL = "https://api-gateway.siray.ai"

DEFAULT_RETRY_BACKOFF = "0.5"

# name -> (flag, environment variable, default)
SETTINGS: dict[str, tuple[str | None, str, str | None]] = {
    "api_key": ("--api-key", "SIRAY_API_KEY", None),
    "base_url": ("--base-url", "SIRAY_BASE_URL", DEFAULT_BASE_URL),
    "gateway_url": ("--gateway-url", "SIRAY_GATEWAY_URL", DEFAULT_GATEWAY_URL),
    "retry_backoff": (None, "SIRAY_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF),
}


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # "flag --api-key", "env SIRAY_API_KEY", "default"


@dataclass(frozen=True)
class Settings:
    api_key: Setting
    base_url: Setting
    gateway_url: Setting
    retry_backoff: Setting

    @property
    def backoff(self) -> float:
        return float(self.retry_backoff.value or DEFAULT_RETRY_BACKOFF)

    def require_api_key(self) -> str:
        if not self.api_key.value:
            raise MissingAPIKeyError(
                "no API key",
                hint="set SIRAY_API_KEY or pass --api-key "
                "(for offline use: `siray emulator exec -- CMD`)",
            )
        return self.api_key.value

    def sources(self) -> list[str]:
        """`name: source` lines for --debug; never a value of the key."""
        lines = []
        for name in SETTINGS:
            setting: Setting = getattr(self, name)
            shown = "(set)" if name == "api_key" and setting.value else setting.value
            lines.append(f"{name} = {shown} from {setting.source}")
        return lines


def _check_url(name: str, value: str, source: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise UsageError(
            f"{name} {value!r} (from {source}) is not an http(s) URL",
            hint="give a URL such as https://api.siray.ai",
        )
    return value


def _check_seconds(name: str, value: str, source: str) -> str:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 60:
        raise UsageError(
            f"{name} {value!r} (from {source}) is not a number of seconds from 0 to 60"
        )
    return value.strip()


def _checked(name: str, setting: Setting) -> Setting:
    if setting.value is None:
        return setting
    if name.endswith("_url"):
        return Setting(_check_url(name, setting.value, setting.source), setting.source)
    if name == "retry_backoff":
        return Setting(_check_seconds(name, setting.value, setting.source), setting.source)
    return Setting(setting.value.strip(), setting.source)


def resolve_settings(
    flags: Mapping[str, str | None], env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    resolved: dict[str, Setting] = {}
    for name, (flag, variable, default) in SETTINGS.items():
        flag_value = flags.get(name)
        if flag_value and flag:
            setting = Setting(flag_value, f"flag {flag}")
        elif env.get(variable):
            setting = Setting(env[variable], f"env {variable}")
        else:
            setting = Setting(default, "default")
        resolved[name] = _checked(name, setting)
    return Settings(**resolved)
