"""Settings and where each comes from: command-line flag, then environment variable, then the
profile in the config file, then the built-in default. One resolver serves every setting, reads
it back as its type (the parser its key declares, in siray_cli.settings_keys), and remembers each
value's source for `--debug` and `siray auth status`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from siray_cli.errors import MissingAPIKeyError, UnusableAPIKeyError, UsageError
from siray_cli.parsers import UNSAFE_KEY, Parser, header_safe
from siray_cli.providers import DEFAULT_PROVIDER, ProviderSpec, spec_of
from siray_cli.settings_keys import (
    API_KEY,
    CATALOGUE_TTL,
    DEFAULT_BASE_URL,
    DEFAULT_GATEWAY_URL,
    DOWNLOAD_MAX_SIZE,
    HISTORY,
    KEYS,
    MAX_RATE,
    PROVIDER_KEYS,
    READ_TIMEOUT,
    RETRY_BACKOFF,
    S3_ADDRESSING,
    UPLOAD_MAX_SIZE,
    UPLOAD_PART_SIZE,
    Key,
)
from siray_cli.storage.config import CONFIG_NAME, ConfigFile, config_dir

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_GATEWAY_URL",
    "KEYS",
    "UNSAFE_KEY",
    "Key",
    "header_safe",
]

T = TypeVar("T")
DEFAULT_PROFILE = "default"


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


def known_key(name: str) -> Key[Any]:
    key = KEYS.get(name)
    if key is None:
        import difflib

        close = difflib.get_close_matches(name, list(KEYS), n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(
            f"unknown setting {name!r}{guess}", hint=f"valid settings: {', '.join(KEYS)}"
        )
    return key


def check_value(name: str, raw: str) -> str:
    key = known_key(name)
    try:
        return key.check(raw)
    except ValueError as exc:
        shown = "" if key.secret else f" {raw!r}"  # a key is never echoed, not even a bad one
        raise UsageError(f"{name}{shown} {exc}") from None


def stored_value(name: str, checked: str) -> str | int | float:
    """What `config set` writes to the file for a checked value: a number as a TOML number."""
    parser: Parser[Any] = KEYS[name].parser
    return parser.stored(parser.parse(checked))


@dataclass(frozen=True)
class Setting(Generic[T]):
    value: str | None  # as text (what --debug, `config list` and `auth status` show)
    source: str  # "flag --api-key", "env SIRAY_API_KEY", "profile default in FILE", "default"
    typed: T | None = None  # the value as its parser reads it


class Settings:
    """Resolves every setting the same way; reads the config file only when a value needs it.
    `trace` hears each typed read (`read` and the properties), for --debug."""

    def __init__(
        self,
        flags: Mapping[str, str | None],
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
        on_secret: Callable[[str], None] | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self._on_secret = on_secret
        self._trace = trace
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
            self._provider = self.get("provider").value or DEFAULT_PROVIDER
        return self._provider

    @property
    def spec(self) -> ProviderSpec:
        """What the provider in effect declares (its credential, hosts, hints)."""
        return spec_of(self.provider)

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

    def _key(self, key: Key[T]) -> Key[T]:
        if key.name == "provider":
            return key
        return PROVIDER_KEYS[self.provider].get(key.name, key)

    def _profile_value(self, name: str) -> object:
        """A profile's value. A credential a provider keeps apart (Higgsfield's `hf_key`) is its
        own whatever the profile, so one profile can hold both and neither is ever sent to the
        other; the shared `api_key` and the hosts serve only the provider the profile is for
        (its `provider`, else the default)."""
        values = self.profile_values()
        if name not in ("api_key", "base_url", "gateway_url"):
            return values.get(name)
        stored_as = self.spec.credential.stored_as
        if name == "api_key" and stored_as != name:
            return values.get(stored_as)
        if (values.get("provider") or DEFAULT_PROVIDER) != self.provider:
            return None
        return values.get(name)

    def _found(self, key: Key[Any], flag_value: object) -> Setting[Any] | None:
        """The text a setting is given and where, by precedence; None: not given anywhere."""
        if flag_value is None or flag_value == "":
            flag_value = self._flags.get(key.name)
        if flag_value is not None and flag_value != "":
            return Setting(str(flag_value), f"flag {key.flag}")
        if self._env.get(key.env):
            return Setting(self._env[key.env], f"env {key.env}")
        pair = (self._env.get(key.pair[0]), self._env.get(key.pair[1])) if key.pair else None
        if key.pair and pair and all(pair):
            return Setting(f"{pair[0]}:{pair[1]}", f"env {key.pair[0]} + {key.pair[1]}")
        stored = self._profile_value(key.name)
        if isinstance(stored, float) and stored.is_integer():
            stored = int(stored)  # `config set` once wrote sizes as floats: 100.0 is 100
        if stored is not None and stored != "":
            return Setting(str(stored), f"profile {self.profile_name} in {self.config.path}")
        return None

    def resolve(self, key: Key[T], flag_value: object = None) -> Setting[T]:
        """A setting's value (as text and as its type) and where it came from."""
        key = self._key(key)
        found = self._found(key, flag_value)
        if found is None:
            default = None if key.default is None else key.parser.parse(key.default)
            return Setting(key.default, "default", default)
        if key.secret and found.value and self._on_secret is not None:
            self._on_secret(found.value)
        typed = self._parsed(key, found, "set it again where it comes from, as issued")
        return Setting(key.parser.show(typed), found.source, typed)

    def _parsed(self, key: Key[T], found: Setting[Any], hint: str) -> T:
        """A setting's text as its type; a credential of the wrong form is refused here, with
        `hint`, not by the server."""
        try:
            return key.parser.parse(found.value or "")
        except ValueError as exc:
            stripped = (found.value or "").strip()
            if key.secret and stripped and not header_safe(stripped):
                # checked wherever a key is read (any profile, any variable), not only when one
                # is sent: `auth token` or `config list` would print it; never shown, not masked
                raise UnusableAPIKeyError(
                    f"{key.name} (from {found.source}) {exc}",
                    hint=f"{hint}: a key is printable ASCII without spaces",
                ) from None
            if key.secret:
                raise UnusableAPIKeyError(
                    f"{key.name} {mask(found.value)} (from {found.source}) {exc}", hint=hint
                ) from None
            raise UsageError(f"{key.name} {found.value!r} (from {found.source}) {exc}") from None

    def check_credential(self, text: str, source: str, hint: str) -> str:
        """A credential given to be saved (`auth login`), checked as every command checks the
        one in effect: exit 3 when it is not of the provider's form, before it is sent."""
        return str(self._parsed(self._key(API_KEY), Setting(text, source), hint))

    def get(self, name: str, flag_value: object = None) -> Setting[Any]:
        return self.resolve(KEYS[name], flag_value)

    def value(self, name: str, flag_value: object = None) -> str | None:
        """A setting as text (`config get`)."""
        return self.get(name, flag_value).value

    def read(self, key: Key[T], flag_value: object = None) -> T | None:
        """A setting as its type, traced under --debug."""
        setting = self.resolve(key, flag_value)
        if self._trace is not None:
            self._trace(f"{key.name} = {setting.value} from {setting.source}")
        return setting.typed

    def defaulted(self, key: Key[T], flag_value: object = None) -> T:
        """A setting that has a default, as its type."""
        value = self.read(key, flag_value)
        if value is None:
            raise AssertionError(f"setting {key.name} has no default")  # KEYS gives every one
        return value

    @property
    def api_key(self) -> Setting[str]:
        return self.get("api_key")

    @property
    def base_url(self) -> Setting[str]:
        return self.get("base_url")

    @property
    def gateway_url(self) -> Setting[str]:
        return self.get("gateway_url")

    @property
    def read_timeout(self) -> float:
        return self.defaulted(READ_TIMEOUT)

    @property
    def max_rate(self) -> float:
        return self.defaulted(MAX_RATE)

    @property
    def retry_backoff(self) -> float:
        return self.defaulted(RETRY_BACKOFF)

    @property
    def catalogue_ttl(self) -> float:
        return self.defaulted(CATALOGUE_TTL)

    @property
    def upload_part_size(self) -> int:
        return self.defaulted(UPLOAD_PART_SIZE)

    @property
    def upload_max_size(self) -> int:
        return self.defaulted(UPLOAD_MAX_SIZE)

    @property
    def download_max_size(self) -> int:
        return self.defaulted(DOWNLOAD_MAX_SIZE)

    @property
    def s3_addressing(self) -> str:
        return self.defaulted(S3_ADDRESSING)

    @property
    def history(self) -> bool:
        return self.defaulted(HISTORY)

    def require_api_key(self) -> str:
        key = self.api_key.value
        if not key:
            raise self.missing_key()
        return key

    def missing_key(self) -> MissingAPIKeyError:
        """What is said when there is no credential: the provider's own words, naming the half
        of a pair of variables that is not set when the other is."""
        credential = self.spec.credential
        hint = credential.missing_hint
        if credential.pair:
            given = [name for name in credential.pair if self._env.get(name)]
            if len(given) == 1:
                (absent,) = [name for name in credential.pair if name not in given]
                hint = f"{absent} is not set ({given[0]} is): {hint}"
        return MissingAPIKeyError(credential.missing, hint=hint)

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
