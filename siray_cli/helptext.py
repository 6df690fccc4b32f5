"""How siray's help reads: each command's examples (the one source of `--help`'s Examples and the
man pages' EXAMPLES), a help formatter that never breaks a word across lines, and what the
command tree adds to every command Typer builds (`finish`).

Read on every start-up that builds a command: it imports nothing Click has not imported already.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

import click

# (what it does, the command line), by command path; tests/test_docs.py parses every line with
# the command tree, so an example names only commands, options and arguments that exist
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "siray": [
        (
            "Generate an image offline, against the local emulator:",
            "siray emulator exec -- siray run alibaba/z-image-turbo-t2i \\\n"
            '  "a lighthouse" -i size=1024x768 -o out/',
        ),
        (
            "Submit, then wait for the task later:",
            'id=$(siray generate google/veo-3.1-t2v "waves")\nsiray status "$id" --wait',
        ),
        ("Which inputs a model takes:", "siray models show alibaba/z-image-turbo-t2i"),
    ],
    "siray generate": [
        (
            "Submit a task; its id is printed:",
            'siray generate alibaba/z-image-turbo-t2i "a red fox" -i size=1024x768',
        ),
        (
            "Read the prompt from a file, inputs from JSON:",
            "siray generate google/gemini-2.5-flash-image-t2i --prompt-file p.txt \\\n"
            "  --input-json b.json",
        ),
    ],
    "siray run": [
        (
            "Generate, download into out/, open it in the system's viewer:",
            'siray run alibaba/z-image-turbo-t2i "a red fox" -i size=1024x768 \\\n  -o out/ --open',
        ),
        (
            "Print the first output URL from JSON:",
            'siray run google/gemini-2.5-flash-image-t2i "an owl" --json \\\n'
            "  | jq -r '.outputs[0]'",
        ),
        (
            "Run a batch file with 8 tasks in flight:",
            "siray run --batch jobs.jsonl --model alibaba/z-image-turbo-t2i \\\n"
            "  --concurrency 8 -o out/",
        ),
    ],
    "siray status": [
        ("Wait for a task:", "siray status image_a8813a4b4c9 --wait"),
        ("Wait for every unfinished task in the history:", "siray status --all-pending --wait"),
        ("Download the outputs of the latest task:", "siray status -o out/"),
    ],
    "siray cancel": [
        ("Cancel a queued task:", "siray cancel image_a8813a4b4c9"),
        ("Cancel two, with the outcome as JSON:", "siray cancel image_a1 image_b2 --json"),
    ],
    "siray upload": [
        ("Upload two files; their URLs, one per line:", "siray upload cat.png dog.png"),
        (
            "Upload standard input, named:",
            "curl -s https://example.com/a.png | siray upload - --name a.png",
        ),
    ],
    "siray estimate": [
        (
            "What a Higgsfield image would cost:",
            'siray --provider higgsfield estimate higgsfield-ai/soul/standard "a fox"',
        ),
        (
            "The same, as JSON:",
            'siray --provider higgsfield estimate reve/text-to-image "a fox" --json',
        ),
        (
            "A whole batch, by model, before running it:",
            "siray --provider higgsfield estimate --batch jobs.jsonl \\\n  -m reve/text-to-image",
        ),
    ],
    "siray download": [
        ("Download a task's outputs into out/:", "siray download image_a8813a4b4c9 -o out/"),
        ("Fetch them again, overwriting:", "siray download image_a8813a4b4c9 --force"),
        ("Download and open them in the viewer:", "siray download image_a1 -o out/ --open"),
    ],
    "siray open": [
        ("Open the latest task's outputs:", "siray open"),
        ("Open two tasks' outputs:", "siray open image_a1 image_b2"),
    ],
    "siray info": [
        ("What made a file:", "siray info out/image_a8813a4b4c9_1.png"),
        ("The prompts of a directory's images:", "siray info out/*.png --json | jq -r .prompt"),
    ],
    "siray rerun": [
        ("The same image again, with another seed:", "siray rerun out/fox.png -i seed=7 -o out/"),
        (
            "A task's request on another model:",
            "siray rerun image_a8813a4b4c9 --model google/gemini-2.5-flash-image-t2i",
        ),
        ("See what would be sent:", "siray rerun out/fox.png --dry-run"),
    ],
    "siray help": [
        ("The exit codes:", "siray help exit-codes"),
        ("A subcommand's help:", "siray help models show"),
        ("The environment variables, as JSON:", "siray help environment --json"),
    ],
    "siray history": [
        ("The last five failures:", "siray history -n 5 --status FAILURE"),
        ("This week's video tasks, as JSON:", "siray history --model veo --since 7d --json"),
    ],
    "siray history forget": [
        ("Forget a task left pending on a gone server:", "siray history forget image_a1"),
        ("Forget two:", "siray history forget image_a1 image_b2"),
    ],
    "siray history prune": [
        ("Forget old tasks:", "siray history prune --older-than 30d"),
        ("Keep only today's:", "siray history prune --older-than 24h"),
    ],
    "siray models": [
        ("Video models:", "siray models list --kind video"),
        ("A model's inputs:", "siray models show alibaba/z-image-turbo-t2i"),
    ],
    "siray models list": [
        ("Video models:", "siray models list --kind video"),
        ("Models named like seedream, fetched anew:", "siray models list seedream --refresh"),
        ("Every name:", "siray models list --json | jq -r '.[].name'"),
    ],
    "siray models show": [
        ("A model's inputs:", "siray models show ideogram/ideogram-v3-turbo-i2i"),
        (
            "A Higgsfield application's:",
            "siray --provider higgsfield models show higgsfield-ai/soul/standard",
        ),
    ],
    "siray auth": [
        ("Log in (the key is asked for, hidden):", "siray auth login"),
        ("Which key is in effect:", "siray auth status"),
    ],
    "siray auth login": [
        ("From a password manager:", "pass siray | siray auth login --with-token"),
        ("Into another profile:", "siray auth login --profile work"),
        ("A Higgsfield key (key_id:key_secret):", "siray --provider higgsfield auth login"),
    ],
    "siray auth logout": [
        ("Forget the key of the profile in effect:", "siray auth logout"),
        ("Of another profile:", "siray auth logout --profile work"),
    ],
    "siray auth status": [
        ("Where the key comes from:", "siray auth status --offline"),
        ("Whether it works, as JSON:", "siray auth status --json"),
    ],
    "siray auth token": [
        ("Hand the key to another tool:", "export SIRAY_API_KEY=$(siray auth token)"),
        ("Another profile's key:", "siray --profile work auth token"),
    ],
    "siray config": [
        ("Every setting, and where it comes from:", "siray config list"),
        ("A default model:", "siray config set model alibaba/z-image-turbo-t2i"),
    ],
    "siray config get": [
        ("The model in effect:", "siray config get model"),
        ("The timeout of another profile:", "siray config get timeout --profile ci"),
    ],
    "siray config list": [
        ("Every setting in effect:", "siray config list"),
        ("Another profile's, as JSON:", "siray config list --profile ci --json"),
    ],
    "siray config path": [
        ("Where the config file is:", "siray config path"),
        ("Edit it:", "vi $(siray config path)"),
    ],
    "siray config set": [
        ("A default model:", "siray config set model alibaba/z-image-turbo-t2i"),
        ("Wait at most 10 minutes in CI:", "siray config set timeout 600 --profile ci"),
    ],
    "siray config unset": [
        ("Back to no default model:", "siray config unset model"),
        ("In another profile:", "siray config unset timeout --profile ci"),
    ],
    "siray emulator": [
        ("Serve on port 9000:", "siray emulator --port 9000"),
        (
            "Answer the next two requests with a 503:",
            "siray emulator --fault 'action=status,status=503,count=2'",
        ),
    ],
    "siray gallery": [
        ("A page of the last 20 tasks:", "siray gallery --last 20 -o recent.html"),
        (
            "A batch's results, failures only:",
            "siray gallery --batch results.jsonl --status failure",
        ),
        ("Today's tasks of one model:", "siray gallery --since 1d --model z-image"),
    ],
    "siray emulator start": [
        ("Start one for this shell session:", 'eval "$(siray emulator start)"'),
        ("With tasks that end at once:", 'eval "$(siray emulator start --task-seconds 0.1)"'),
    ],
    "siray emulator status": [
        ("Where it is:", "siray emulator status"),
        ("Its URL, for a script:", "siray emulator status --json | jq -r .url"),
    ],
    "siray emulator stop": [
        ("Stop it and unset its variables:", 'eval "$(siray emulator stop)"'),
        ("Give it 2 s before SIGKILL:", "siray emulator stop --timeout 2"),
    ],
    "siray emulator exec": [
        ("Test a script offline:", "siray emulator exec -- ./make-assets.sh"),
        ("With tasks that end at once:", "siray emulator exec --task-seconds 0.1 -- make test"),
    ],
}


def examples_text(path: str) -> str | None:
    """The examples of the command `path` (`siray models list`) as its --help ends with them."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    lines = ["\b", "Examples:"]
    for text, example in examples:
        lines += [f"  {text}", *(f"    {line}" for line in example.splitlines())]
    return "\n".join(lines)


def summary(command: click.Command) -> str:
    """The first sentence of a command's help, whole (Click cuts it at 45 characters)."""
    return command.get_short_help_str(limit=10**6)


# --- the formatter -----------------------------------------------------------------------


def _wrap(text: str, width: int) -> str:
    """Click's wrap, paragraph by paragraph, except that no word is broken: not at a hyphen
    (`siray-emulator-key`), nor when it is longer than the line (a `--fault` value, a URL)."""
    wrapper = textwrap.TextWrapper(max(width, 10), break_long_words=False, break_on_hyphens=False)
    paragraphs: list[str] = []
    for block in text.expandtabs().split("\n\n"):
        lines = block.splitlines()
        if not lines or lines[0].strip() == "\b":
            paragraphs.append(block)  # as written (Click's mark for a block not to rewrap)
            continue
        indent = len(lines[0]) - len(lines[0].lstrip())
        wrapper.width = max(width - indent, 10)
        filled = wrapper.fill(" ".join(line.strip() for line in lines))
        paragraphs.append("\b\n" + textwrap.indent(filled, " " * indent))
    return "\n\n".join(paragraphs)


class HelpFormatter(click.HelpFormatter):
    """Click's formatter, wrapping as `_wrap` does: what it is given is wrapped here first and
    handed on as blocks Click keeps as they are."""

    def write_text(self, text: str) -> None:
        super().write_text(_wrap(text, self.width - self.current_indent))

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        rows = list(rows)
        if rows:
            # the width Click gives the second column
            first = min(max(len(name) for name, _ in rows), col_max)
            width = max(self.width - first - col_spacing - 2, 10)
            rows = [(name, _wrap(text, width) if text else text) for name, text in rows]
        super().write_dl(rows, col_max, col_spacing)


class HelpContext(click.Context):
    formatter_class = HelpFormatter


def finish(command: click.Command, path: str) -> click.Command:
    """What siray adds to a command Typer built, and to each of its subcommands: the formatter,
    the examples after its help, and its summary whole (the command lists and completion show
    it; Click would cut it at 45 characters)."""
    command.context_class = HelpContext
    command.epilog = examples_text(path) or command.epilog
    command.short_help = command.short_help or summary(command)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            finish(sub, f"{path} {name}")
    return command
