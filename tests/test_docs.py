"""Completions, man pages and help topics are generated from the command tree and never drift."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from siray_cli import docs
from siray_cli.reference import exit_codes

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -m siray_cli.docs"


def test_checked_in_completions_and_man_pages_are_current(tmp_path):
    docs.generate(tmp_path)
    for folder in ("completions", "man"):
        fresh = {p.name: p.read_text() for p in (tmp_path / folder).iterdir()}
        checked_in = {p.name: p.read_text() for p in (ROOT / folder).iterdir()}
        assert sorted(checked_in) == sorted(fresh), f"{folder}/ is stale: run {REGENERATE}"
        stale = [name for name in fresh if fresh[name] != checked_in[name]]
        assert not stale, f"{folder}/{stale[0]} is stale: run {REGENERATE}"


def test_every_command_has_a_page_with_every_section():
    pages = {p.name for p in (ROOT / "man").glob("*.1")}
    assert {
        "siray.1",
        "siray-run.1",
        "siray-auth-login.1",
        "siray-history-prune.1",
        "siray-emulator-exec.1",
        "siray-models-show.1",
        "siray-config-set.1",
    } <= pages
    run = (ROOT / "man" / "siray-run.1").read_text()
    for section in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ):
        assert f".SH {section}" in run
    assert "SIRAY_TIMEOUT" in run and "\\-\\-concurrency" in run and "[default: 4" in run


def test_man_pages_render_without_warnings():
    groff = shutil.which("groff")
    assert groff, "groff is needed to check the man pages (apt-get install groff-base)"
    for page in sorted((ROOT / "man").glob("*.1")):
        completed = subprocess.run(
            [groff, "-man", "-Tutf8", "-ww", "-z", str(page)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0 and completed.stderr == "", (page.name, completed.stderr)


def test_help_topics_match_the_man_page(siray):
    result = siray("help", "exit-codes")
    assert result.exit_code == 0
    page = (ROOT / "man" / "siray.1").read_text()
    for code, meaning in exit_codes():
        assert f"  {code.ljust(3)}  {meaning}" in result.stdout
        assert f".TP\n\\fB{code}\\fR\n" in page
    environment = siray("help", "environment", "--json").json()
    assert environment["SIRAY_API_KEY"].startswith("the API key")
    assert "SIRAY_DATA_DIR" in siray("help", "environment").stdout
    assert "config.toml" in siray("help", "files").stdout
    assert siray("help", "nonsense").exit_code == 2


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_man_pages(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    (wheel,) = tmp_path.glob("siray_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    man = sorted(n.rsplit("/", 1)[-1] for n in names if "/data/share/man/man1/" in n)
    assert man == sorted(p.name for p in (ROOT / "man").glob("*.1"))
    assert any(n.endswith("emulator/assets/sample.mp4") for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    assert "Requires-Dist: typer" in zipfile.ZipFile(wheel).read(metadata).decode()
    json.dumps(names)
