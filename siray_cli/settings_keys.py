"""Every setting, declared once: its name, environment variable, flag, default, parser and help.
Config, `--help`, `siray help environment`, the man pages and docs/reference.md's list all read
KEYS; the settings (siray_cli.settings) resolve them, and read each back as its parser's type."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from siray_cli.parsers import URL, Bytes, Choice, Parser, Seconds, Switch, Template, Text
from siray_cli.providers import DEFAULT_PROVIDER, PROVIDERS, REGISTRY, ProviderSpec

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    env: str
    flag: str | None
    default: str | None  # as text: the docs show it, and it is parsed like any other source
    parser: Parser[T]
    help: str
    secret: bool = False
    pair: tuple[str, str] | None = None  # two variables that together make the value, id:secret

    def check(self, text: str) -> str:
        """The text as the setting holds it (`config set` and the flags' checks)."""
        return self.parser.show(self.parser.parse(text))


PROVIDER = Key(
    "provider",
    "SIRAY_PROVIDER",
    "--provider",
    DEFAULT_PROVIDER,
    Choice(PROVIDERS),
    f"the API siray speaks to: {' or '.join(PROVIDERS)}",
)


def provider_keys(spec: ProviderSpec) -> dict[str, Key[str]]:
    """The credential and hosts as a provider declares them: its own variables and defaults
    (the profile keys stay the same; a profile belongs to one provider, its `provider` key)."""
    url = URL(DEFAULT_SPEC.base_url.default)
    credential = spec.credential
    keys = {
        "api_key": Key(
            "api_key",
            credential.env,
            "--api-key",
            None,
            credential.parser,
            credential.help,
            secret=True,
            pair=credential.pair,
        ),
        "base_url": Key(
            "base_url",
            spec.base_url.env,
            "--base-url",
            spec.base_url.default,
            url,
            spec.base_url.help,
        ),
    }
    if spec.gateway_url is not None:
        host = spec.gateway_url
        keys["gateway_url"] = Key(
            "gateway_url", host.env, "--gateway-url", host.default, url, host.help
        )
    return keys


DEFAULT_SPEC = REGISTRY[DEFAULT_PROVIDER]
PROVIDER_KEYS: dict[str, dict[str, Key[Any]]] = {
    name: provider_keys(spec) for name, spec in REGISTRY.items()
}
API_KEY = PROVIDER_KEYS[DEFAULT_PROVIDER]["api_key"]
BASE_URL = PROVIDER_KEYS[DEFAULT_PROVIDER]["base_url"]
GATEWAY_URL = PROVIDER_KEYS[DEFAULT_PROVIDER]["gateway_url"]
DEFAULT_BASE_URL = BASE_URL.default
DEFAULT_GATEWAY_URL = GATEWAY_URL.default
MODEL = Key(
    "model",
    "SIRAY_MODEL",
    "MODEL",
    None,
    Text(),
    "the model `generate` and `run` use when none is given",
)
OUTPUT_DIR = Key(
    "output_dir",
    "SIRAY_OUTPUT_DIR",
    "--output-dir",
    None,
    Text(),
    "where `run` downloads outputs when -o is not given",
)
NAME_TEMPLATE = Key(
    "name_template",
    "SIRAY_NAME_TEMPLATE",
    "--name-template",
    None,
    Template(),
    "how saved outputs are named, from {task_id} {name} {n} {ext} {model} {line} {date} "
    "(else <task_id>_<n>.<ext>, or a batch line's name)",
)
TIMEOUT = Key(
    "timeout",
    "SIRAY_TIMEOUT",
    "--timeout",
    "1800",
    Seconds(lambda n: 0 <= n < math.inf, "must be 0 (no limit) or a positive number of seconds"),
    "seconds `run` and `status --wait` wait at most (0: no limit)",
)
POLL_INTERVAL = Key(
    "poll_interval",
    "SIRAY_POLL_INTERVAL",
    "--poll-interval",
    None,
    Seconds(lambda n: 0.1 <= n < math.inf, "must be a number of seconds, 0.1 or more"),
    "a fixed polling beat in seconds, instead of the adaptive schedule",
)
UPLOAD_PART_SIZE = Key(
    "upload_part_size",
    "SIRAY_UPLOAD_PART_SIZE",
    None,
    str(8 * 1024 * 1024),
    Bytes(5 * 1024 * 1024, "must be at least 5 MiB (5242880), the S3 minimum part size"),
    "bytes per part of a multipart upload, and the size from which uploads are multipart",
)
UPLOAD_MAX_SIZE = Key(
    "upload_max_size",
    "SIRAY_UPLOAD_MAX_SIZE",
    None,
    str(2 * 1024**3),
    Bytes(),
    "the largest file `siray upload` accepts, in bytes",
)
DOWNLOAD_MAX_SIZE = Key(
    "download_max_size",
    "SIRAY_DOWNLOAD_MAX_SIZE",
    None,
    str(4 * 1024**3),
    Bytes(),
    "the largest output file downloaded when the server does not say its size, in bytes",
)
S3_ADDRESSING = Key(
    "s3_addressing",
    "SIRAY_S3_ADDRESSING",
    None,
    "path",
    Choice(("path", "virtual"), "must be path or virtual"),
    "S3 addressing style for uploads: path or virtual",
)
HISTORY = Key(
    "history",
    "SIRAY_HISTORY",
    "--no-history",
    "on",
    Switch(),
    "record submitted tasks in the local history (on or off)",
)
CATALOGUE_TTL = Key(
    "catalogue_ttl",
    "SIRAY_CATALOGUE_TTL",
    None,
    "86400",
    Seconds(lambda n: 0 < n < math.inf, "must be a positive number of seconds"),
    "seconds the cached model catalogue is used before it is fetched again",
)
READ_TIMEOUT = Key(
    "read_timeout",
    "SIRAY_READ_TIMEOUT",
    None,
    "60",
    Seconds(lambda n: 0 < n < math.inf, "must be a positive number of seconds"),
    "seconds without a byte from the server before a request is given up (and retried)",
)
MAX_RATE = Key(
    "max_rate",
    "SIRAY_MAX_RATE",
    None,
    "150",  # transport/pacing.py CEILING
    Seconds(lambda n: 1 <= n <= 10_000, "must be a number of requests a second, from 1 to 10000"),
    "requests a second sent to one host at most; siray slows down by itself when the server "
    "answers 429 or 503, and speeds up again",
)
RETRY_BACKOFF = Key(
    "retry_backoff",
    "SIRAY_RETRY_BACKOFF",
    None,
    "0.5",
    Seconds(lambda n: 0 <= n <= 60, "must be a number of seconds from 0 to 60"),
    "seconds before the first retry of a failed request, doubling each time",
)
PREVIEW = Key(
    "preview",
    "SIRAY_PREVIEW",
    "--preview",
    "auto",
    Choice(("auto", "always", "never"), "must be auto, always or never"),
    "inline previews of `run`'s images: auto (on a terminal known to draw images, not in CI, "
    "nor with --json or -q), always or never",
)

KEYS: dict[str, Key[Any]] = {
    key.name: key
    for key in (
        PROVIDER,
        API_KEY,
        BASE_URL,
        GATEWAY_URL,
        MODEL,
        OUTPUT_DIR,
        NAME_TEMPLATE,
        TIMEOUT,
        POLL_INTERVAL,
        UPLOAD_PART_SIZE,
        UPLOAD_MAX_SIZE,
        DOWNLOAD_MAX_SIZE,
        S3_ADDRESSING,
        HISTORY,
        CATALOGUE_TTL,
        READ_TIMEOUT,
        MAX_RATE,
        RETRY_BACKOFF,
        PREVIEW,
    )
}
