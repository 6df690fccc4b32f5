"""Reference tables shared by `siray help`, the man pages and the README: exit codes (from
siray_cli.errors), environment variables and files."""

from __future__ import annotations

from siray_cli.settings import KEYS

# variables that are not settings of the config file
OTHER_ENVIRONMENT: list[tuple[str, str]] = [
    ("SIRAY_PROFILE", "the config profile to use (--profile wins), default: default"),
    ("SIRAY_CONFIG_DIR", "the directory of config.toml"),
    ("SIRAY_DATA_DIR", "the directory of the task history (history.sqlite3)"),
    ("SIRAY_CACHE_DIR", "the directory of the cached model catalogue"),
    ("NO_COLOR", "when set, nothing siray prints is coloured"),
]


def environment() -> list[tuple[str, str]]:
    rows = []
    for key in KEYS.values():
        text = key.help
        if key.flag and key.flag.startswith("--"):
            text += f" ({key.flag} wins)"
        if key.default is not None:
            text += f", default: {key.default}"
        rows.append((key.env, text))
    return rows + OTHER_ENVIRONMENT


FILES: list[tuple[str, str]] = [
    (
        "$SIRAY_CONFIG_DIR/config.toml",
        "settings and profiles; default directory: the platform's user config directory "
        "(~/.config/siray on Linux); written with mode 0600",
    ),
    (
        "$SIRAY_DATA_DIR/history.sqlite3",
        "the task history; default directory: the user data directory (~/.local/share/siray)",
    ),
    (
        "$SIRAY_CACHE_DIR/models-*.json",
        "the cached model catalogue, one file per gateway; default directory: the user cache "
        "directory (~/.cache/siray)",
    ),
]


def exit_codes() -> list[tuple[str, str]]:
    from siray_cli.errors import EXIT_CODE_HELP

    return [(str(int(code)), meaning) for code, meaning in EXIT_CODE_HELP]


TOPICS = {
    "exit-codes": ("Exit codes", exit_codes),
    "environment": ("Environment variables", environment),
    "files": ("Files", lambda: FILES),
}
