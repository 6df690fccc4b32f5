"""Generate the shell completions and man pages from the command tree.

    python -m siray_cli.docs            # rewrite completions/ and man/ in the working tree
    python -m siray_cli.docs --out DIR  # write them under DIR instead (the staleness test does)

Completion scripts are what `siray --show-completion SHELL` prints (siray's own scripts, in
siray_cli/completion.py); man pages are roff written from each command's parameters and help.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from siray_cli import __version__
from siray_cli.helptext import EXAMPLES
from siray_cli.reference import FILES, environment, exit_codes
from siray_cli.settings import KEYS

SHELLS = ("bash", "zsh", "fish")
ROOT = Path(__file__).resolve().parent.parent
HIDDEN = {"ls"}  # aliases: documented on their target's page


def command_tree() -> click.Command:
    """The whole tree, every command built (`siray` itself builds only the one that runs)."""
    from siray_cli.app import whole_tree

    return whole_tree()


def walk(
    command: click.Command, path: list[str], parent: click.Context | None = None
) -> Iterator[tuple[list[str], click.Command, click.Context]]:
    context = click.Context(command, info_name=path[-1], parent=parent)
    yield path, command, context
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden and name not in HIDDEN:
                yield from walk(sub, [*path, name], context)


def escape(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def _environment_of(param: click.Parameter) -> str | None:
    names = set(getattr(param, "opts", []))
    for key in KEYS.values():
        if key.flag in names or (key.flag == "MODEL" and param.name == "model"):
            return key.env
    return None


def _option_entry(param: click.Parameter, context: click.Context) -> list[str]:
    record = param.get_help_record(context)
    if record is None:
        return []
    names, text = record
    lines = [".TP", f"\\fB{escape(names)}\\fR", escape(" ".join(text.split()))]
    variable = _environment_of(param)
    if variable:
        lines.append(f"Environment: \\fB{variable}\\fR.")
    return lines


def _argument_entry(param: click.Argument) -> list[str]:
    help_text = getattr(param, "help", None) or ""
    lines = [
        ".TP",
        f"\\fI{escape(param.human_readable_name)}\\fR",
        escape(" ".join(help_text.split())),
    ]
    variable = _environment_of(param)
    if variable:
        lines.append(f"Environment: \\fB{variable}\\fR.")
    return lines


def _table(title: str, rows: list[tuple[str, str]]) -> list[str]:
    lines = [f".SH {title}"]
    for name, meaning in rows:
        lines += [".TP", f"\\fB{escape(name)}\\fR", escape(meaning)]
    return lines


def man_page(path: list[str], command: click.Command, context: click.Context) -> str:
    full = " ".join(path)
    page = "-".join(path)
    summary = command.get_short_help_str(limit=200) or full
    lines = [
        f'.TH "{page.upper()}" "1" "" "siray {__version__}" "siray manual"',
        ".SH NAME",
        f"{escape(page)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        f".B {escape(full)}",
        escape(" ".join(command.collect_usage_pieces(context))),
        ".SH DESCRIPTION",
    ]
    for paragraph in _paragraphs(command.help or summary):
        lines += [escape(paragraph), ".PP"]
    lines.pop()
    if isinstance(command, click.Group):
        lines.append(".SH COMMANDS")
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            if sub is None or sub.hidden:
                continue
            target = f"{page}-{name}(1)" if name not in HIDDEN else "an alias"
            lines += [
                ".TP",
                f"\\fB{escape(name)}\\fR",
                escape(f"{sub.get_short_help_str(limit=200)} See {target}."),
            ]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines.append(".SH ARGUMENTS")
        for argument in arguments:
            lines += _argument_entry(argument)
    options = [p for p in command.params if isinstance(p, click.Option)]
    if options:
        lines.append(".SH OPTIONS")
        for option in options:
            lines += _option_entry(option, context)
    lines += _table("EXIT STATUS", exit_codes())
    lines += _table("ENVIRONMENT", environment())
    lines += _table("FILES", FILES)
    examples = EXAMPLES.get(full, [])
    if examples:
        lines.append(".SH EXAMPLES")
        for text, example in examples:
            lines += [escape(text), ".PP", ".RS 4", ".nf", escape(example), ".fi", ".RE", ".PP"]
        lines.pop()
    related = ["siray(1)"] if len(path) > 1 else []
    if len(path) > 2:
        related.append(f"{'-'.join(path[:-1])}(1)")
    if isinstance(command, click.Group):
        related += [
            f"{page}-{name}(1)"
            for name in sorted(command.list_commands(context))
            if name not in HIDDEN
            and not getattr(command.get_command(context, name), "hidden", True)
        ]
    if related:
        lines += [".SH SEE ALSO", escape(", ".join(related))]
    return "\n".join(lines) + "\n"


def completion_script(shell: str) -> str:
    """What `siray --show-completion SHELL` prints (siray's own script for that shell)."""
    completed = subprocess.run(
        [sys.executable, "-m", "siray_cli", "--show-completion", shell],
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout


def generate(out: Path) -> list[Path]:
    written = []
    (out / "completions").mkdir(parents=True, exist_ok=True)
    (out / "man").mkdir(parents=True, exist_ok=True)
    for shell in SHELLS:
        path = out / "completions" / f"siray.{shell}"
        path.write_text(completion_script(shell))
        written.append(path)
    for path_parts, command, context in walk(command_tree(), ["siray"]):
        path = out / "man" / f"{'-'.join(path_parts)}.1"
        path.write_text(man_page(path_parts, command, context))
        written.append(path)
    return written


REFERENCE = Path("docs") / "reference.md"  # the page with the generated tables


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Regenerate completions/, man/ and the tables of docs/reference.md."
    )
    parser.add_argument("--out", type=Path, default=ROOT, help="where to write (default: repo)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    reference = args.out / REFERENCE
    if reference.exists():  # its generated tables (reference.with_generated)
        from siray_cli.reference import with_generated

        text = reference.read_text(encoding="utf-8")
        made = with_generated(text)
        if made != text:
            reference.write_text(made, encoding="utf-8")
            print(reference)


if __name__ == "__main__":
    main()
