"""Completions, man pages and help topics are generated from the command tree and never drift."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
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


# --- --help: examples, the command lists, words kept whole -------------------------------------


def command_paths() -> list[list[str]]:
    return [path for path, _, _ in docs.walk(docs.command_tree(), ["siray"])]


def examples_of(shown: str) -> list[tuple[str, str]]:
    """The examples that end a --help page: (what it does, the command line, continuations
    joined)."""
    _, marker, block = shown.partition("\n  Examples:\n")
    assert marker, f"no examples at the end of:\n{shown}"
    examples: list[tuple[str, str]] = []
    lines = block.splitlines()
    while lines:
        text = lines.pop(0)
        assert text.startswith("    ") and not text.startswith("     "), text
        command = []
        while lines and lines[0].startswith("      "):
            command.append(lines.pop(0))
        assert command, text
        examples.append((text.strip(), "\n".join(c[6:] for c in command)))
    return examples


# a `siray` command: at the start of a line, or after `$(`, `|`, `;` or `&&`
SIRAY_COMMAND = re.compile(r"(?:^|\$\(|[|;]|&&)\s*(siray(?:\s+[^|;)\n]*)?)", re.MULTILINE)


def siray_commands(line: str) -> list[list[str]]:
    return [shlex.split(found) for found in SIRAY_COMMAND.findall(line.replace("\\\n", " "))]


def parse(tree: click.Command, words: list[str]) -> list[str]:
    """The path of the command `words` run, parsed (types, choices, required arguments) as
    `siray` parses them; raises click.UsageError for a line siray would refuse."""
    command, path, parent, rest = tree, ["siray"], None, words[1:]
    while isinstance(command, click.Group):
        # the group's own options, then the subcommand, as Click's parser splits them
        _, after, _ = command.make_parser(click.Context(command)).parse_args(list(rest))
        own = rest[: len(rest) - len(after)]
        parent = (
            command.make_context(path[-1], own, parent=parent)
            if own
            else click.Context(command, info_name=path[-1], parent=parent)
        )
        if not after:
            assert command.invoke_without_command, f"{path} needs a subcommand"
            return path
        sub = command.get_command(parent, after[0])
        assert sub is not None, f"{after[0]!r} is no command of {path}"
        command, path, rest = sub, [*path, after[0]], after[1:]
    command.make_context(path[-1], list(rest), parent=parent)
    return path


def test_every_commands_help_ends_with_examples_that_parse(siray):
    tree = docs.command_tree()
    for path in command_paths():
        shown = siray(*path[1:], "--help")
        assert shown.exit_code == 0, shown.stderr
        examples = examples_of(shown.stdout)
        assert 2 <= len(examples) <= 3, (path, examples)
        for text, line in examples:
            assert text.endswith(":"), text
            commands = siray_commands(line)
            assert commands, line
            # each runs a command that exists, with options and arguments it takes
            ran = [parse(tree, words) for words in commands]
            assert any(found[: len(path)] == path for found in ran), (path, line)
        # the man page's examples are the same ones
        page = (ROOT / "man" / f"{'-'.join(path)}.1").read_text()
        assert all(docs.escape(line) in page for _, line in examples), path


def test_an_example_that_does_not_parse_is_caught():
    tree = docs.command_tree()
    assert parse(tree, shlex.split("siray --provider higgsfield models show a/b")) == [
        "siray",
        "models",
        "show",
    ]
    for wrong in (
        "siray run a/b --no-such-flag",
        "siray models show",  # a required argument missing
        "siray run a/b --kind audio",
        "siray history prune",  # a required option missing
    ):
        with pytest.raises(click.UsageError):
            parse(tree, shlex.split(wrong))
    with pytest.raises(AssertionError):
        parse(tree, ["siray", "nonsense"])


def test_command_lists_show_each_summary_whole_on_one_line(siray):
    from siray_cli.app import COMMANDS

    for path in command_paths():
        shown = siray(*path[1:], "--help", env={"COLUMNS": "80"}).stdout
        if "\nCommands:\n" not in shown:
            continue
        rows = shown.split("\nCommands:\n")[1].split("\n\n")[0].splitlines()
        assert all(not row.startswith("   ") for row in rows), f"a summary wraps:\n{shown}"
        assert not any(row.endswith("...") for row in rows), f"a summary is cut:\n{shown}"
        if path == ["siray"]:
            listed = {row.split()[0]: row.split(maxsplit=1)[1] for row in rows}
            assert listed == {name: entry.summary for name, entry in COMMANDS.items()}


def test_the_root_help_points_to_the_exit_codes_topic(siray):
    shown = siray("--help").stdout
    assert "`siray help exit-codes`" in shown
    assert "130 interrupted" not in shown  # the table is the topic's, not the root's help
    # what --help stands on: the root's options and commands, then the pointer and examples
    order = [shown.index(part) for part in ("Commands:", "siray help exit-codes", "Examples:")]
    assert order == sorted(order)
    assert "130" in siray("help", "exit-codes").stdout


def test_help_never_breaks_a_word_across_lines(siray):
    """At 80 columns, every word of a command's help, of its options' and arguments' help and
    of its examples is on one line (a `--fault` spec, a URL, a hyphenated default), and no
    line is wider than the terminal."""
    for path, command, _ in docs.walk(docs.command_tree(), ["siray"]):
        shown = siray(*path[1:], "--help", env={"COLUMNS": "80"}).stdout
        written = [command.help or "", command.epilog or ""]
        written += [getattr(param, "help", None) or "" for param in command.params]
        words = {word for text in written for word in text.split() if word != "\b"}
        broken = sorted(words - set(shown.split()))
        assert not broken, (path, broken)
        wide = [line for line in shown.splitlines() if len(line) > 80]
        assert not wide, (path, wide)
