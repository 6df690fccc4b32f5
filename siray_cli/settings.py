"""Settings and where each comes from: command-line flag, then environment variable, then the
profile in the config file, then the built-in default. One resolver serves every setting, and
remembers each value's source for `--debug` and `siray auth status`.

Every setting is declared once, in KEYS (name, environment variable, flag, default, check, help):
config, `--help`, `siray help environment`, the man pages and the README's list all read it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from siray_cli.errors import MissingAPIKeyError, UnusableAPIKeyError, UsageError
from siray_cli.storage.config import CONFIG_NAME, ConfigFile, config_dir

DEFAULT_BASE_URL = "https://api.siray.ai"
DEFAULT_GATEWAY_URL = "https://api-gateway.siray.ai"
DEFAULT_PROFILE = "default"


def _url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL (for example https://api.siray.ai)")
    return value


def _positive_seconds(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a positive number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return f"{number:g}"


def _seconds_or_none(value: str) -> str:
    """A wait bound: 0 means no bound at all (as --timeout 0)."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ValueError("must be 0 (no limit) or a positive number of seconds")
    return f"{number:g}"


def _beat(value: str) -> str:
    """A polling beat: at least a tenth of a second (as --poll-interval)."""
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0.1 <= number < float("inf"):
        raise ValueError("must be a number of seconds, 0.1 or more")
    return f"{number:g}"


def _provider(value: str) -> str:
    from siray_cli.providers import PROVIDERS

    word = value.strip().lower()
    if word not in PROVIDERS:
        raise ValueError(f"must be one of {', '.join(PROVIDERS)}")
    return word


def header_safe(key: str) -> bool:
    """Printable ASCII without spaces: what an Authorization header can carry as it is."""
    return bool(key) and all("!" <= ch <= "~" for ch in key)


UNSAFE_KEY = "has characters an HTTP header cannot carry (non-ASCII, control characters or spaces)"


def _api_key(value: str) -> str:
    value = _text(value)
    if not header_safe(value):
        raise ValueError(UNSAFE_KEY)
    return value


def _credential(value: str) -> str:
    value = value.strip()
    if value and not header_safe(value):
        raise ValueError(UNSAFE_KEY)
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("must be key_id:key_secret")
    return value


def _backoff(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 60:
        raise ValueError("must be a number of seconds from 0 to 60")
    return f"{number:g}"


def _switch(value: str) -> str:
    word = value.strip().lower()
    if word in ("on", "true", "yes", "1"):
        return "on"
    if word in ("off", "false", "no", "0"):
        return "off"
    raise ValueError("must be on or off")


def _byte_count(value: str) -> str:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("must be a whole number of bytes") from None
    if number <= 0:
        raise ValueError("must be a positive number of bytes")
    return str(number)


def _part_size(value: str) -> str:
    checked = _byte_count(value)
    if int(checked) < 5 * 1024 * 1024:
        raise ValueError("must be at least 5 MiB (5242880), the S3 minimum part size")
    return checked


def _addressing(value: str) -> str:
    word = value.strip().lower()
    if word not in ("path", "virtual"):
        raise ValueError("must be path or virtual")
    return word


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class Key:
    name: str
    env: str
    flag: str | None
    default: str | None
    check: Callable[[str], str]
    help: str
    secret: bool = False
    number: bool = False


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key(
            "provider",
            "SIRAY_PROVIDER",
            "--provider",
            "siray",
            _provider,
            "the API siray speaks to: siray or higgsfield",
        ),
        Key("api_key", "SIRAY_API_KEY", "--api-key", None, _api_key, "the API key", secret=True),
        Key("base_url", "SIRAY_BASE_URL", "--base-url", DEFAULT_BASE_URL, _url, "the API host"),
        Key(
            "gateway_url",
            "SIRAY_GATEWAY_URL",
            "--gateway-url",
            DEFAULT_GATEWAY_URL,
            _url,
            "the gateway host (uploads, model catalogue)",
        ),
        Key(
            "model",
            "SIRAY_MODEL",
            "MODEL",
            None,
            _text,
            "the model `generate` and `run` use when none is given",
        ),
        Key(
            "output_dir",
            "SIRAY_OUTPUT_DIR",
            "--output-dir",
            None,
            _text,
            "where `run` downloads outputs when -o is not given",
        ),
        Key(
            "timeout",
            "SIRAY_TIMEOUT",
            "--timeout",
            "1800",
            _seconds_or_none,
            "seconds `run` and `status --wait` wait at most (0: no limit)",
            number=True,
        ),
        Key(
            "poll_interval",
            "SIRAY_POLL_INTERVAL",
            "--poll-interval",
            None,
            _beat,
            "a fixed polling beat in seconds, instead of the adaptive schedule",
            number=True,
        ),
        Key(
            "upload_part_size",
            "SIRAY_UPLOAD_PART_SIZE",
            None,
            str(8 * 1024 * 1024),
            _part_size,
            "bytes per part of a multipart upload, and the size from which uploads are multipart",
            number=True,
        ),
        Key(
            "upload_max_size",
            "SIRAY_UPLOAD_MAX_SIZE",
            None,
            str(2 * 1024**3),
            _byte_count,
            "the largest file `siray upload` accepts, in bytes",
            number=True,
        ),
        Key(
            "download_max_size",
            "SIRAY_DOWNLOAD_MAX_SIZE",
            None,
            str(4 * 1024**3),
            _byte_count,
            "the largest output file downloaded when the server does not say its size, in bytes",
            number=True,
        ),
        Key(
            "s3_addressing",
            "SIRAY_S3_ADDRESSING",
            None,
            "path",
            _addressing,
            "S3 addressing style for uploads: path or virtual",
        ),
        Key(
            "history",
            "SIRAY_HISTORY",
            "--no-history",
            "on",
            _switch,
            "record submitted tasks in the local history (on or off)",
        ),
        Key(
            "catalogue_ttl",
            "SIRAY_CATALOGUE_TTL",
            None,
            "86400",
            _positive_seconds,
            "seconds the cached model catalogue is used before it is fetched again",
            number=True,
        ),
        Key(
            "read_timeout",
            "SIRAY_READ_TIMEOUT",
            None,
            "60",
            _positive_seconds,
            "seconds without a byte from the server before a request is given up (and retried)",
            number=True,
        ),
        Key(
            "retry_backoff",
            "SIRAY_RETRY_BACKOFF",
            None,
            "0.5",
            _backoff,
            "seconds before the first retry of a failed request, doubling each time",
            number=True,
        ),
    )
}


DEFAULT_HIGGSFIELD_URL = "https://api.higgsfield.ai"
# What a setting means when another provider is in effect: its own variable and default. The
# same profile key holds the value; a profile belongs to one provider (its `provider` key).
PROVIDER_KEYS: dict[str, dict[str, Key]] = {
    "higgsfield": {
        "api_key": Key(
            "api_key",
            "HF_KEY",
            "--api-key",
            None,
            _credential,
            "the Higgsfield credential, key_id:key_secret (or HF_API_KEY and HF_API_SECRET)",
            secret=True,
        ),
        "base_url": Key(
            "base_url",
            "SIRAY_HIGGSFIELD_BASE_URL",
            "--base-url",
            DEFAULT_HIGGSFIELD_URL,
            _url,
            "the Higgsfield API host",
        ),
    }
}


def stored_key(provider: str) -> str:
    """The profile key a provider's credential is saved under."""
    return "api_key" if provider == "siray" else "hf_key"


def mask(secret: str | None) -> str:
    """At most the first 3 and last 4 characters; less of a short key. Of an id:secret
    credential, the id alone."""
    if not secret:
        return "(none)"
    if ":" in secret:
        return f"{secret.split(':', 1)[0]}:***"
    if len(secret) <= 8:
        return "*" * len(secret)
    if len(secret) < 16:
        return f"{secret[:2]}…{secret[-2:]}"
    return f"{secret[:3]}…{secret[-4:]}"


def known_key(name: str) -> Key:
    key = KEYS.get(name)
    if key is None:
        raise UsageError(f"unknown setting {name!r}", hint=f"valid settings: {', '.join(KEYS)}")
    return key


def check_value(name: str, raw: str) -> str:
    key = known_key(name)
    try:
        return key.check(raw)
    except ValueError as exc:
        shown = "" if key.secret else f" {raw!r}"  # a key is never echoed, not even a bad one
        raise UsageError(f"{name}{shown} {exc}") from None


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # "flag --api-key", "env SIRAY_API_KEY", "profile default in FILE", "default"


class Settings:
    """Resolves every setting the same way; reads the config file only when a value needs it."""

    def __init__(
        self,
        flags: Mapping[str, str | None],
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self._on_secret = on_secret
        self._provider: str | None = None
        self._env = dict(os.environ if env is None else env)
        self._flags = dict(flags)
        self.config = ConfigFile(config_dir(self._env) / CONFIG_NAME, warn)
        if profile:
            self.profile_name, self.profile_source = profile, "flag --profile"
        elif self._env.get("SIRAY_PROFILE"):
            self.profile_name, self.profile_source = self._env["SIRAY_PROFILE"], "env SIRAY_PROFILE"
        else:
            self.profile_name, self.profile_source = DEFAULT_PROFILE, "default"

    def profile_values(self) -> dict[str, Any]:
        name = self.profile_name
        if name != DEFAULT_PROFILE and not self.config.has_profile(name):
            known = ", ".join(self.config.profiles()) or "none yet"
            raise UsageError(
                f"profile {name!r} (from {self.profile_source}) does not exist in "
                f"{self.config.path}",
                hint=f"profiles: {known}; create one with "
                f"`siray --profile {name} auth login` or `siray config set`",
            )
        return self.config.profile(name)

    @property
    def provider(self) -> str:
        """The provider in effect (--provider, SIRAY_PROVIDER, the profile's, else siray)."""
        if self._provider is None:
            self._provider = self.get("provider").value or "siray"
        return self._provider

    def for_profile(self, name: str | None) -> Settings:
        """These settings as another profile (`config list --profile NAME`) gives them."""
        if not name:
            return self
        other: Settings = copy.copy(self)
        other.profile_name, other.profile_source = name, "flag --profile"
        other._provider = None  # the profile may name another provider
        return other

    def for_provider(self, name: str) -> Settings:
        """These settings as they are for another provider (a task it created, say)."""
        other: Settings = copy.copy(self)
        other._provider = name
        return other

    def _key(self, name: str) -> Key:
        if name == "provider":
            return KEYS[name]
        return PROVIDER_KEYS.get(self.provider, {}).get(name, KEYS[name])

    def _profile_value(self, name: str) -> object:
        """A profile's value. A Higgsfield credential is kept apart (`hf_key`), so one profile
        can hold both and neither is ever sent to the other; a profile's hosts serve only the
        provider it is for (its `provider`, else siray)."""
        values = self.profile_values()
        if name not in ("api_key", "base_url", "gateway_url"):
            return values.get(name)
        if name == "api_key" and self.provider != "siray":
            return values.get(stored_key(self.provider))
        if (values.get("provider") or "siray") != self.provider:
            return None
        return values.get(name)

    def get(self, name: str, flag_value: object = None) -> Setting:
        key = self._key(name)
        if flag_value is None or flag_value == "":
            flag_value = self._flags.get(name)
        pair = (self._env.get("HF_API_KEY"), self._env.get("HF_API_SECRET"))
        if flag_value is not None and flag_value != "":
            setting = Setting(str(flag_value), f"flag {key.flag}")
        elif self._env.get(key.env):
            setting = Setting(self._env[key.env], f"env {key.env}")
        elif key.env == "HF_KEY" and all(pair):
            setting = Setting(f"{pair[0]}:{pair[1]}", "env HF_API_KEY + HF_API_SECRET")
        else:
            stored = self._profile_value(name)
            if stored is not None and stored != "":
                where = f"profile {self.profile_name} in {self.config.path}"
                setting = Setting(str(stored), where)
            else:
                return Setting(key.default, "default")
        if key.secret and setting.value and self._on_secret is not None:
            self._on_secret(setting.value)
        try:
            return Setting(key.check(setting.value or ""), setting.source)
        except ValueError as exc:
            stripped = (setting.value or "").strip()
            if key.secret and stripped and not header_safe(stripped):
                # checked wherever a key is read (any profile, any variable), not only when one
                # is sent: `auth token` or `config list` would print it; never shown, not masked
                raise UnusableAPIKeyError(
                    f"{name} (from {setting.source}) {exc}",
                    hint="set it again where it comes from, as issued: a key is printable "
                    "ASCII without spaces",
                ) from None
            shown = mask(setting.value) if key.secret else repr(setting.value)
            raise UsageError(f"{name} {shown} (from {setting.source}) {exc}") from None

    def value(self, name: str, flag_value: object = None) -> str | None:
        return self.get(name, flag_value).value

    def number(self, name: str, flag_value: float | None = None) -> float | None:
        value = self.value(name, flag_value)
        return None if value is None else float(value)

    @property
    def api_key(self) -> Setting:
        return self.get("api_key")

    @property
    def base_url(self) -> Setting:
        return self.get("base_url")

    @property
    def gateway_url(self) -> Setting:
        return self.get("gateway_url")

    @property
    def backoff(self) -> float:
        return self.number("retry_backoff") or 0.0

    def require_api_key(self) -> str:
        key = self.api_key.value
        if not key:
            if self.provider == "higgsfield":
                raise MissingAPIKeyError(
                    "no Higgsfield credential",
                    hint="set HF_KEY (key_id:key_secret), or HF_API_KEY and HF_API_SECRET, or run "
                    "`siray --provider higgsfield auth login` (offline: `siray emulator exec`)",
                )
            raise MissingAPIKeyError(
                "no API key",
                hint="run `siray auth login`, set SIRAY_API_KEY, or pass --api-key "
                "(offline: `siray emulator exec -- CMD`)",
            )
        return key

    def describe(self, names: list[str] | None = None) -> list[str]:
        """`name = value from source` lines for --debug; the key is never shown."""
        lines = [f"profile = {self.profile_name} from {self.profile_source}"]
        for name in names or ["provider", "api_key", "base_url", "gateway_url"]:
            setting = self.get(name)
            shown = "(set)" if KEYS[name].secret and setting.value else setting.value
            lines.append(f"{name} = {shown} from {setting.source}")
        return lines


def check_flag(name: str) -> Callable[[object], object]:
    """A command-line option's check: the very rule of its setting (so `--timeout -5` and
    `siray config set timeout -5` say the same thing)."""

    def check(value: object) -> object:
        if value is None:
            return None
        try:
            KEYS[name].check(str(value))
        except ValueError as exc:
            raise UsageError(f"{KEYS[name].flag} {value!r} {exc}") from None
        return value

    return check
