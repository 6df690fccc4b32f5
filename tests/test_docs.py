"""Completions, man pages and help topics are generated from the command tree and never drift."""

from __future__ import annotations

import json
import os
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


def complete(shell: str, words: str, cword: int | None = None, **extra: str) -> list[str]:
    env = {**os.environ, "_SIRAY_COMPLETE": f"complete_{shell}", **extra}
    if shell == "bash":
        env.update(
            COMP_WORDS=words, COMP_CWORD=str(cword if cword is not None else len(words.split()) - 1)
        )
    else:
        env["_TYPER_COMPLETE_ARGS"] = words
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    completed = subprocess.run(
        [sys.executable, "-m", "siray_cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr
    return [line for line in completed.stdout.splitlines() if line]


def test_bash_completes_commands_options_and_enum_values():
    assert "run" in complete("bash", "siray ru")
    assert set(complete("bash", "siray au")) == {"auth"}
    assert "--poll-interval" in complete("bash", "siray run --poll")
    assert complete("bash", "siray run --kind ", cword=3) == ["image", "video"]
    assert set(complete("bash", "siray auth ", cword=2)) >= {"login", "logout", "status", "token"}


def test_zsh_and_fish_complete_too():
    zsh = "\n".join(complete("zsh", "siray st"))
    assert '"status":"Show the state of tasks' in zsh or "status" in zsh
    assert "video" in "\n".join(complete("zsh", "siray run --kind "))
    fish = complete("fish", "siray mod")
    assert any(line.startswith("models\t") for line in fish)
    assert any(line.startswith("--concurrency") for line in complete("fish", "siray run --con"))


def test_model_names_come_from_the_cache_and_task_ids_from_the_history(siray, emu):
    siray("models", "list")
    models = complete("bash", "siray run alibaba/", cword=2)
    assert models == ["alibaba/wan-2.6-i2v", "alibaba/z-image-turbo-t2i"]
    task_id = siray("generate", "google/gemini-2.5-flash-image-t2i", "x").stdout.strip()
    assert task_id in complete("bash", "siray status ", cword=2)
    assert complete("bash", f"siray cancel {task_id[:9]}", cword=2) == [task_id]
    fish = complete("fish", "siray status ")
    assert f"{task_id}\tgoogle/gemini-2.5-flash-image-t2i SUBMITTED" in fish


def test_completion_never_prints_errors(isolated_environment):
    cache = isolated_environment / "cache"
    cache.mkdir(parents=True)
    (cache / "models-broken.json").write_text("{not json")
    data = isolated_environment / "data"
    data.mkdir(parents=True)
    (data / "history.sqlite3").write_text("not a database")
    assert complete("bash", "siray run a", cword=2) == []
    assert complete("bash", "siray status i", cword=2) == []


def test_the_generated_bash_script_completes_in_a_real_bash(emu, siray):
    bash = shutil.which("bash")
    assert bash
    siray("models", "list")
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "siray").exists(), "the siray console script must be installed"
    script = (
        f"source {ROOT / 'completions' / 'siray.bash'}\n"
        "COMP_WORDS=(siray mo); COMP_CWORD=1; _siray_completion siray; "
        'echo "1:${COMPREPLY[*]}"\n'
        "COMP_WORDS=(siray run --kind v); COMP_CWORD=3; _siray_completion siray; "
        'echo "2:${COMPREPLY[*]}"\n'
        "COMP_WORDS=(siray models show google/veo); COMP_CWORD=3; _siray_completion siray; "
        'echo "3:${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stderr == ""
    assert completed.stdout.splitlines() == [
        "1:models",
        "2:video",
        "3:google/veo-3-fast-t2v google/veo-3.1-t2v",
    ]


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
