"""siray's own directories and files hold keys, prompts, URLs and account data: the directories
siray creates are 0700 and its files 0600, whatever the umask. A directory that already exists is
left as it is (SIRAY_DATA_DIR may name a shared one); the files in it are private all the same."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path`, created 0700 (with its missing parents) if it does not exist."""
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it meanwhile
        path.mkdir(mode=DIRECTORY_MODE)
        path.chmod(DIRECTORY_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """`path`, created empty 0600 if missing, else with the bits of group and others removed
    (SQLite's -wal and -shm files take the mode of their database).

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock this process holds on it, SQLite's included."""
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:  # others' bits off; the owner's stay as they are
            with contextlib.suppress(OSError):
                path.chmod(mode & 0o700)
        return path
    try:
        os.fchmod(descriptor, FILE_MODE)  # the mode given to open passes through the umask
    finally:
        os.close(descriptor)
    return path


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the task history and the lock files live (SIRAY_DATA_DIR moves it)."""
    env = os.environ if env is None else env
    if env.get("SIRAY_DATA_DIR"):
        return Path(env["SIRAY_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("siray"))


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where siray keeps what it runs in the background (a `siray emulator start`): its PID, port
    and log (SIRAY_STATE_DIR moves it). Not the data directory: an emulator exports a
    SIRAY_DATA_DIR of its own, and must still be found once that is in effect."""
    env = os.environ if env is None else env
    if env.get("SIRAY_STATE_DIR"):
        return Path(env["SIRAY_STATE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("siray"))


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the model catalogue is cached (SIRAY_CACHE_DIR moves it); light to import, for
    completion, which reads it on every Tab."""
    env = os.environ if env is None else env
    if env.get("SIRAY_CACHE_DIR"):
        return Path(env["SIRAY_CACHE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("siray"))
