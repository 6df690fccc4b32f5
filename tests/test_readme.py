"""The README's and docs/'s shell examples are true when copied: every `sh` block that uses
`siray emulator exec` (installs aside: CI runs those) or is marked `<!-- runnable -->` runs in a
fresh directory against the emulator and exits 0. `<!-- runnable after: CMD -->` runs CMD first
(an example that needs a task in the history). Every link between them leads somewhere, and the
README stays short enough to read in the first hour."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from helpers import run_process, siray_command

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- (runnable(?: after: (.*?))?) -->\s*)?```sh\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            marker, setup, text = match.group(1), match.group(2), match.group(3)
            if "pip install" in text:
                continue  # the install blocks are CI's own (.ci/run runs them as written)
            block = ((setup or "").strip(), text)
            # an example on two pages, word for word, is run once
            if (marker or "siray emulator exec" in text) and block not in blocks:
                blocks.append(block)
    return blocks


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_between_the_readme_and_docs_leads_somewhere():
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.is_file(), f"{page.name} links to {target}: no such file"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: {target}"


def test_the_readme_fits_the_first_hour_and_reaches_every_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for page in PAGES[1:]:
        assert f"(docs/{page.name}" in text, f"the README does not link docs/{page.name}"


BLOCKS = runnable_blocks()


def test_the_readme_has_runnable_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("setup", "text"), BLOCKS, ids=[t.split("\n")[0][:40] for _, t in BLOCKS])
def test_a_readme_example_runs_as_written(setup, text, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_") or k.endswith("_DIR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # as every test: the examples are not about the schedule, nor about how long a task takes
    env["SIRAY_POLL_INTERVAL"] = "0.1"
    env["SIRAY_EMULATOR_TASK_SECONDS"] = "0.1"
    script = f"set -euo pipefail\n{setup}\n{text}" if setup else f"set -euo pipefail\n{text}"
    command = ["bash", "-c", script]
    if "siray emulator exec" not in text:  # the emulator the example runs against (its siray
        # commands are run by bash, from PATH, as written)
        command = siray_command("emulator", "exec", "--", *command)
    try:
        done = run_process(command, env, timeout=120, cwd=tmp_path)
    finally:  # an example that starts an emulator in the background and failed before its stop
        if "emulator start" in script:
            run_process(siray_command("emulator", "stop", "--timeout", "1"), env)
    assert done.returncode == 0, f"{text}\nstdout: {done.stdout}\nstderr: {done.stderr}"


def test_the_readmes_settings_environment_and_exit_codes_come_from_their_declarations():
    from siray_cli.reference import with_generated

    text = REFERENCE.read_text(encoding="utf-8")
    assert with_generated(text) == text, "docs/reference.md is stale: run python -m siray_cli.docs"
