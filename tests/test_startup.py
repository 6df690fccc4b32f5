"""Start-up stays light: `siray --version` and `--help` import no heavy module."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "boto3",
    "botocore",
    "siray_cli.emulator",
    "jsonschema",
    "httpx",
    "rich.progress",
    "sqlite3",
    "siray_cli.history",
)


def imported_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from siray_cli.app import main\n"
        f"main({args!r})\n"
        "sys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(completed.stderr.splitlines())


def test_version_imports_nothing_heavy():
    modules = imported_after(["--version"])
    assert "siray_cli.app" in modules
    assert not [m for m in modules if m.startswith(HEAVY)]


def test_help_of_a_command_imports_nothing_heavy():
    modules = imported_after(["run", "--help"])
    assert not [m for m in modules if m.startswith(HEAVY)]


def test_version_output():
    completed = subprocess.run(
        [sys.executable, "-m", "siray_cli", "--version"], capture_output=True, text=True, check=True
    )
    from siray_cli import __version__

    assert completed.stdout == f"siray {__version__}\n"
    assert completed.stderr == ""
