"""The config file: TOML at `platformdirs.user_config_dir("siray")/config.toml` (moved with
SIRAY_CONFIG_DIR), read only when a setting needs it, written atomically with mode 0600 in a 0700
directory, and never rewritten or "repaired" when it cannot be parsed."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from siray_cli.errors import ConfigError
from siray_cli.storage.private import private_dir

CONFIG_NAME = "config.toml"
# A config file holds a few hundred bytes; one far larger is not one (a symlink to /dev/zero,
# say), and reading it whole could take all memory.
CONFIG_LIMIT = 1024 * 1024


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SIRAY_CONFIG_DIR"):
        return Path(env["SIRAY_CONFIG_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("siray"))


def _load_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    data: dict[str, Any] = tomllib.loads(text)
    return data


class ConfigFile:
    """The TOML file: read once, on demand; written atomically, 0600."""

    def __init__(self, path: Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._warn = warn
        self._data: dict[str, Any] | None = None

    def load(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._data = {}
            return self._data
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror}") from None
        if stat.S_ISFIFO(info.st_mode):  # opening it would wait for a writer
            raise ConfigError(f"cannot read config file {self.path}: it is a pipe")
        # (a device's mode is not the user's to change: no chmod advice for /dev/null)
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and self._warn is not None:
            self._warn(
                f"config file {self.path} can be read by other users; run: chmod 600 {self.path}"
            )
        try:
            data = _load_toml(self._read_text())
        except ValueError as exc:  # tomllib.TOMLDecodeError: "... (at line 3, column 5)"
            raise ConfigError(
                f"config file {self.path} is not valid TOML: {exc}",
                hint="fix the file by hand (siray leaves it as it is), or move it away",
            ) from None
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not all(
            isinstance(p, dict) for p in profiles.values()
        ):
            raise ConfigError(
                f"config file {self.path}: [profiles] must hold tables such as [profiles.default]"
            )
        self._data = data
        return data

    def _read_text(self) -> str:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(CONFIG_LIMIT + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror}") from None
        if len(raw) > CONFIG_LIMIT:
            raise ConfigError(
                f"config file {self.path} is larger than {CONFIG_LIMIT // 1024**2} MiB; siray "
                "does not read it",
                hint="a config file holds a few settings: fix it by hand, or move it away",
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"cannot read config file {self.path}: not UTF-8 text") from None

    def profiles(self) -> dict[str, dict[str, Any]]:
        profiles: dict[str, dict[str, Any]] = self.load().get("profiles", {})
        return profiles

    def profile(self, name: str) -> dict[str, Any]:
        return self.profiles().get(name, {})

    def has_profile(self, name: str) -> bool:
        return name in self.profiles()

    def update(self, profile: str, name: str, value: Any | None) -> None:
        """Set (or with None remove) one setting of one profile, and write the file. Everything
        else in the file (comments, order, other keys) is kept as written: tomlkit edits the
        document in place."""
        import tomlkit

        self.load()  # a file that cannot be parsed is reported, and left as it is
        text = self._read_text() if self.path.exists() else ""
        document = tomlkit.parse(text)
        profiles = document.setdefault("profiles", tomlkit.table(is_super_table=True))
        if profile not in profiles:
            profiles[profile] = tomlkit.table()
        table = profiles[profile]
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value
        self._write(document.as_string())
        self._data = _load_toml(document.as_string())

    def _write(self, text: str) -> None:
        import tempfile  # only here: a start-up that reads settings does not pay for it

        directory = self.path.parent
        private_dir(directory)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".config.", suffix=".tmp")
        try:
            os.fchmod(descriptor, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
