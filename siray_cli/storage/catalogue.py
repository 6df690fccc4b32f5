"""The model catalogue, cached on disk: fetched from the gateway at most once a day (by default),
refreshed on demand, and used from the cache, with a warning, when the gateway cannot be reached.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from siray_cli.domain import ModelInfo
from siray_cli.errors import (
    NetworkError,
    ProtocolError,
    RateLimitError,
    ServerError,
    UsageError,
)
from siray_cli.storage.private import cache_dir, private_dir

CACHE_FORMAT = 2  # {"format", "fetched_at", "models": [{"name", "tag", "schema"}]}
# what "the gateway cannot be reached" means: a cached copy may stand in for these
UNREACHABLE = (NetworkError, ServerError, RateLimitError, ProtocolError)


def cache_path(gateway_url: str, env: Mapping[str, str] | None = None) -> Path:
    """One cache file per gateway, so the emulator's catalogue never stands in for the real one."""
    digest = hashlib.sha256(gateway_url.encode()).hexdigest()[:12]
    return cache_dir(env) / f"models-{digest}.json"


@dataclass
class Catalogue:
    models: dict[str, ModelInfo]
    fetched_at: float
    fresh: bool  # fetched by this invocation

    def get(self, name: str) -> ModelInfo | None:
        return self.models.get(name)

    def closest(self, name: str, count: int = 3) -> list[str]:
        names = list(self.models)
        close = difflib.get_close_matches(name, names, n=count, cutoff=0.5)
        if not close:
            tail = name.rsplit("/", 1)[-1].lower()
            close = [n for n in names if tail and tail in n.lower()][:count]
        return close

    def unknown_model(self, name: str) -> UsageError:
        close = self.closest(name)
        hint = f"did you mean {', '.join(close)}?" if close else "see `siray models list`"
        return UsageError(
            f"model {name!r} is not in the catalogue",
            hint=hint + " (--no-validate sends it anyway)",
        )


class CatalogueStore:
    def __init__(
        self,
        path: Path,
        fetch: Callable[[], list[ModelInfo]],
        *,
        warn: Callable[[str], None],
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._fetch = fetch
        self._warn = warn
        self._ttl = ttl
        self._clock = clock

    def load(self, *, refresh: bool = False) -> Catalogue:
        cached = self._read()
        if cached is not None and not refresh and self._clock() - cached.fetched_at < self._ttl:
            return cached
        try:
            models = self._fetch()
        except UNREACHABLE as exc:
            if cached is None:
                exc.message = f"the model catalogue is unavailable: {exc.message}"
                raise
            age = _age(self._clock() - cached.fetched_at)
            self._warn(
                f"could not fetch the model catalogue ({exc.message}); "
                f"using the copy cached {age} ago"
            )
            return cached
        catalogue = Catalogue({m.name: m for m in models}, self._clock(), fresh=True)
        self._write(catalogue)
        return catalogue

    def _read(self) -> Catalogue | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn(f"cannot read the model catalogue cache {self.path}: {exc.strerror}")
            return None
        try:
            document = json.loads(text)
            if document.get("format") != CACHE_FORMAT:
                return None  # written by another version of siray: fetched again, quietly
            fetched_at = float(document["fetched_at"])
            models = [_model(entry) for entry in document["models"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            self._warn(f"the model catalogue cache {self.path} was corrupt; fetching a new one")
            return None
        return Catalogue({m.name: m for m in models}, fetched_at, fresh=False)

    def _write(self, catalogue: Catalogue) -> None:
        document = {
            "format": CACHE_FORMAT,
            "fetched_at": catalogue.fetched_at,
            "models": [
                {"name": m.name, "tag": m.tag, "schema": m.schema}
                for m in catalogue.models.values()
            ],
        }
        temporary: str | None = None
        try:
            private_dir(self.path.parent)
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(temporary, self.path)
        except OSError as exc:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            self._warn(f"cannot write the model catalogue cache {self.path}: {exc.strerror}")


def _model(entry: dict[str, object]) -> ModelInfo:
    name, tag, schema = entry["name"], entry["tag"], entry["schema"]
    if not isinstance(name, str) or not isinstance(tag, str) or not isinstance(schema, dict):
        raise TypeError("not a cached model")
    return ModelInfo(name, tag, schema)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
