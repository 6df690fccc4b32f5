"""Shell completion: siray's own scripts for bash, zsh and fish, the candidates they are fed, and
the `--show-completion [SHELL]` and `--install-completion [SHELL]` options.

Completion runs on every Tab press, so it reads local files only (never the network), answers in
milliseconds, and swallows every error: a shell must never see a traceback.

Candidates can come from a server (model names and tags in the cached catalogue, task ids in the
history), so they are data, never code: each shell's class below writes them in a form its script
reads without evaluating anything, and the shell itself quotes what it inserts on the command
line. A candidate no shell can carry safely (a control character, a newline) is dropped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click
import typer.core
from click.shell_completion import (
    BashComplete,
    CompletionItem,
    FishComplete,
    ShellComplete,
    ZshComplete,
    add_completion_class,
    split_arg_string,
)

from siray_cli.helptext import HelpContext

if TYPE_CHECKING:
    from siray_cli.providers import ProviderSpec
    from siray_cli.settings import Settings

PROG_NAME = "siray"
COMPLETE_VAR = "_SIRAY_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

# C0 and C1 controls (newline and tab among them), line separators, and lone surrogates (which
# cannot even be written to a UTF-8 stdout)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# characters bash takes literally anywhere in a word; everything else is backslash-escaped
_BASH_LITERAL = re.compile(r"[\w./@%+,=-]")


def _settings(ctx: click.Context | None) -> Settings:
    """The settings the command line names (--provider, --profile), read as the command would:
    flags, then variables, then the profile in the config file (read only if needed)."""
    from siray_cli.settings import Settings

    root = ctx.find_root().params if ctx is not None else {}
    flags = {"provider": root.get("provider")}
    return Settings(flags, profile=root.get("profile"), warn=lambda _: None)


def _provider(ctx: click.Context | None) -> ProviderSpec:
    """The provider in effect (--provider, SIRAY_PROVIDER, the profile's), else the default
    (a name siray does not know, or a profile that does not exist, too: completing must not
    fail)."""
    from siray_cli.providers import DEFAULT_PROVIDER, REGISTRY

    try:
        name = _settings(ctx).provider
    except Exception:
        name = DEFAULT_PROVIDER
    return REGISTRY.get(name) or REGISTRY[DEFAULT_PROVIDER]


def complete_model(ctx: click.Context, incomplete: str) -> list[tuple[str, str]]:
    """Model names of the provider in effect: from the catalogue cached from its server (Siray's
    gateway), or those its package knows (Higgsfield's application ids)."""
    try:
        import json

        from siray_cli.providers import REGISTRY

        spec = _provider(ctx)
        if not spec.completes_from_cache:
            known = spec.built_in_models()
            return sorted((n, tag) for n, tag in known.items() if n.startswith(incomplete))
        # the cache keeps every host's catalogue: another provider's names are not this one's
        others = [other for other in REGISTRY.values() if other is not spec]
        elsewhere = {name for other in others for name in other.built_in_models()}
        from siray_cli.storage.catalogue import cache_dir

        names: dict[str, str] = {}
        for path in cache_dir().glob("models-*.json"):
            for entry in json.loads(path.read_text(encoding="utf-8")).get("models", []):
                name = entry.get("name")
                wanted = isinstance(name, str) and name.startswith(incomplete)
                if wanted and name not in elsewhere:
                    names[name] = str(entry.get("tag", ""))
        return sorted(names.items())
    except Exception:
        return []


def _schema(ctx: click.Context, model: str) -> dict[str, Any]:
    """The JSON Schema of `model`'s request body: its provider's built-in one (Higgsfield's
    applications), else the one in the catalogue cached from its server."""
    import json

    spec = _provider(ctx)
    built_in = spec.built_in_schemas().get(model)
    if built_in is not None or not spec.completes_from_cache:
        return dict(built_in or {})
    from siray_cli.storage.catalogue import cache_dir

    for path in sorted(cache_dir().glob("models-*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).get("models", []):
            if entry.get("name") == model and isinstance(entry.get("schema"), dict):
                return dict(entry["schema"])
    return {}


def _input_help(prop: dict[str, Any], required: bool) -> str:
    """`required string: Output size in pixels.`"""
    kind = prop.get("type")
    about = " ".join(
        [*(["required"] if required else []), *([kind] if isinstance(kind, str) else [])]
    )
    text = prop.get("description")
    return ": ".join(part for part in (about, text if isinstance(text, str) else "") if part)


def _value_text(value: object, as_json: bool) -> str:
    """An allowed value as `-i key=VALUE` takes it (text, typed by the schema), or as JSON for
    `key:=VALUE`."""
    import json

    if isinstance(value, str) and not as_json:
        return value
    return json.dumps(value, ensure_ascii=False)


def complete_input(ctx: click.Context, incomplete: str) -> list[tuple[str, str]]:
    """`-i`'s candidates: the inputs of the model on the line (else of the `model` setting) as
    `name=`, and after `name=`, the values its schema allows (an enum's)."""
    try:
        # `run MODEL -i <Tab>`: Click stops parsing at the option still waiting for its value,
        # leaving the words before it unparsed in ctx.args
        typed = [word for word in ctx.args if not word.startswith("-")][:1]
        model = ctx.params.get("model") or ctx.params.get("model_opt") or "".join(typed)
        if not model:
            model = _settings(ctx).get("model").value
        if not model:
            return []
        schema = _schema(ctx, str(model))
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return []
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        key, equals, _ = incomplete.partition("=")
        if not equals:
            return [
                (f"{name}=", _input_help(prop, name in required))
                for name, prop in sorted(properties.items())
                if isinstance(prop, dict)
                and name.startswith(incomplete)
                and name.strip() == name
                and not any(char.isspace() or char == "=" for char in name)
                and not name.endswith(":")
            ]
        as_json = key.endswith(":")
        prop = properties.get(key[:-1] if as_json else key)
        allowed = prop.get("enum") if isinstance(prop, dict) else None
        if not isinstance(allowed, list):
            return []
        default = prop.get("default") if isinstance(prop, dict) else None
        found = []
        for value in allowed:
            candidate = f"{key}={_value_text(value, as_json)}"
            if candidate.startswith(incomplete):
                found.append((candidate, "default" if value == default else ""))
        return found
    except Exception:
        return []


def complete_setting(incomplete: str) -> list[tuple[str, str]]:
    """The settings `siray config` knows, with what each is."""
    from siray_cli.settings import KEYS

    return [(name, key.help) for name, key in KEYS.items() if name.startswith(incomplete)]


def complete_task_id(incomplete: str) -> list[tuple[str, str]]:
    try:
        import sqlite3

        from siray_cli.storage.history import DB_NAME
        from siray_cli.storage.private import data_dir

        path = data_dir() / DB_NAME
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as db:
            rows = db.execute(
                "SELECT task_id, model, status FROM tasks WHERE task_id LIKE ? "
                "ORDER BY submitted_at DESC LIMIT 50",
                (incomplete.replace("%", "") + "%",),
            ).fetchall()
        return [(task_id, f"{model} {status}") for task_id, model, status in rows if task_id]
    except Exception:
        return []


# --- what each shell is sent ---------------------------------------------------------------


def representable(value: str) -> bool:
    """Whether a candidate can be offered at all: not empty, and nothing a shell would take as a
    line or field break, nor a terminal control sequence."""
    return bool(value) and not _UNSAFE.search(value)


def one_line(text: str | None) -> str:
    """A description on one line: control characters (tabs, newlines, escapes) become spaces."""
    return " ".join(_UNSAFE.sub(" ", text or "").split())


def fit(text: str, width: int | None) -> str:
    """`text` cut at a word to `width` characters, with an ellipsis (whole when width is None)."""
    if width is None or len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut.rstrip(" ,;:(") + "…"


def bash_quote(value: str) -> str:
    """`value` as one bash word that means exactly `value`: bash inserts COMPREPLY words on the
    command line as they are, so the quoting has to be done here."""
    return "".join(c if _BASH_LITERAL.fullmatch(c) else "\\" + c for c in value)


def zsh_spec(value: str, description: str | None) -> str:
    """A `_describe` spec: `value:description`, where the value's backslashes and colons are
    escaped (`_describe` splits at the first unescaped colon and then removes the backslashes)."""
    spec = value.replace("\\", "\\\\").replace(":", "\\:")
    text = one_line(description)
    return f"{spec}:{text}" if text else spec


def fish_line(value: str, description: str | None) -> str:
    """A fish candidate: `value<TAB>description`; fish quotes the value when it inserts it."""
    text = one_line(description)
    return f"{value}\t{text}" if text else value


# bash's default COMP_WORDBREAKS: readline completes only what follows the last one of these
WORD_BREAKS = " \t\n\"'@><=;|&(:"


def current_word(line: str, breaks: str) -> tuple[int, int]:
    """Where, in `line`, the word being completed starts (after the last unquoted blank), and
    where the part readline replaces starts (after the last unquoted character of `breaks`,
    bash's COMP_WORDBREAKS: `size=10` replaces `10`)."""
    word = replaced = 0
    quote, escaped = "", False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char.isspace():
            word = replaced = index + 1
        elif char in breaks:
            replaced = index + 1
    return word, replaced


BASH_SOURCE = """\
# bash completion for %(prog_name)s (generated by `%(prog_name)s --show-completion bash`)
%(complete_func)s() {
    local IFS=$'\\n' line
    COMPREPLY=()
    # the line up to the cursor goes to siray, which splits it as bash does; it answers one
    # already-quoted word per line, read literally: no word splitting, no globbing, no eval
    while IFS= read -r line; do
        [[ -n $line ]] && COMPREPLY+=("$line")
    done < <(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORDBREAKS="$COMP_WORDBREAKS" \\
%(complete_var)s=complete_bash "$1" 2>/dev/null)
    # an input's name (`size=`) takes its value next: no space after it
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s"""

ZSH_SOURCE = """\
#compdef %(prog_name)s
# zsh completion for %(prog_name)s (generated by `%(prog_name)s --show-completion zsh`)

%(complete_func)s() {
    local -a lines specs open
    local gap
    (( $+commands[%(prog_name)s] )) || return 1
    # one `_describe` spec per line (value:description, the value's `\\\\` and `:` escaped),
    # read literally: nothing is evaluated, and zsh quotes what it inserts. After an empty
    # line come the values that take no space after them (an input's `name=`).
    lines=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) COLUMNS=$COLUMNS \\
%(complete_var)s=complete_zsh %(prog_name)s 2>/dev/null)}")
    gap=${lines[(ie)]}
    specs=("${(@)${(@)lines[1,gap-1]}:#}")
    open=("${(@)${(@)lines[gap+1,-1]}:#}")
    if (( ${#specs} + ${#open} )); then
        _describe -t values value specs -- open -S ''
    else
        _files
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoloaded from $fpath as _%(prog_name)s: complete now
    %(complete_func)s "$@"
else
    # sourced: register for later
    compdef %(complete_func)s %(prog_name)s
fi"""

FISH_SOURCE = """\
# fish completion for %(prog_name)s (generated by `%(prog_name)s --show-completion fish`)
function %(complete_func)s
    # one candidate per line (value, a tab, the description); fish quotes what it inserts
    set -l response (env COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -ct) \\
        COLUMNS=$COLUMNS %(complete_var)s=complete_fish %(prog_name)s 2>/dev/null \\
        | string match -v -- '')
    if test (count $response) -eq 0
        __fish_complete_path (commandline -ct)
        return
    end
    printf '%%s\\n' $response
end

complete --command %(prog_name)s --no-files --arguments '(%(complete_func)s)'"""


class _SirayComplete(ShellComplete):
    """What the three shells share: no traceback, and only candidates they can carry."""

    def source(self) -> str:
        return self.source_template % self.source_vars()

    def items(self) -> list[CompletionItem[str]]:
        try:
            args, incomplete = self.get_completion_args()
            completions = self.get_completions(args, incomplete)
        except Exception:
            return []
        if incomplete.startswith("-") and "=" in incomplete:
            # `--input=si`: Click completed what follows the option's `=`; the shell replaces
            # the whole word
            head = incomplete.partition("=")[0] + "="
            completions = [
                CompletionItem(head + str(item.value), help=item.help) for item in completions
            ]
        return [item for item in completions if representable(str(item.value))]

    def complete(self) -> str:
        return "\n".join(self.format_completion(item) for item in self.fitted(self.items()))

    def fitted(self, items: list[CompletionItem[str]]) -> list[CompletionItem[str]]:
        """The items with their descriptions on one line, cut to the room beside the widest
        value on the terminal the shell says it has (COLUMNS; zsh and fish list them side by
        side), or whole when it does not say."""
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        widest = max((len(str(item.value)) for item in items), default=0)
        width = max(columns - widest - 8, 20) if columns > 0 else None
        return [CompletionItem(item.value, help=fit(one_line(item.help), width)) for item in items]

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        try:
            cword = int(os.environ.get("COMP_CWORD", ""))
        except ValueError:
            cword = len(words)
        incomplete = words[cword] if 0 <= cword < len(words) else ""
        return words[1:cword], incomplete


class SirayBashComplete(_SirayComplete, BashComplete):
    """bash sends the line up to the cursor (COMP_LINE), split here as bash splits it; what
    readline replaces is the part after the last COMP_WORDBREAKS character (`=`, `:`), so each
    candidate is sent without what comes before it."""

    source_template: ClassVar[str] = BASH_SOURCE
    kept = ""  # the part of the word readline keeps

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get("COMP_LINE", "")
        breaks = os.environ.get("COMP_WORDBREAKS", WORD_BREAKS)
        word, replaced = current_word(line, breaks)
        self.kept = (split_arg_string(line[word:replaced]) or [""])[0] if replaced > word else ""
        incomplete = (split_arg_string(line[word:]) or [""])[0] if line[word:] else ""
        return split_arg_string(line[:word])[1:], incomplete

    def items(self) -> list[CompletionItem[str]]:
        found = super().items()  # (reads the line, and with it what readline keeps)
        kept = self.kept
        return [
            CompletionItem(str(item.value)[len(kept) :], help=item.help)
            for item in found
            if str(item.value).startswith(kept) and len(str(item.value)) > len(kept)
        ]

    def format_completion(self, item: CompletionItem[Any]) -> str:
        return bash_quote(str(item.value))


class SirayZshComplete(_SirayComplete, ZshComplete):
    source_template: ClassVar[str] = ZSH_SOURCE

    def complete(self) -> str:
        """The specs, then, after an empty line, those that take no space after them (`name=`:
        the script hands them to `_describe` with `-S ''`)."""
        items = self.fitted(self.items())
        spaced = [self.format_completion(i) for i in items if not str(i.value).endswith("=")]
        open_ = [self.format_completion(i) for i in items if str(i.value).endswith("=")]
        return "\n".join([*spaced, "", *open_] if open_ else spaced)

    def format_completion(self, item: CompletionItem[Any]) -> str:
        return zsh_spec(str(item.value), item.help)


class SirayFishComplete(_SirayComplete, FishComplete):
    source_template: ClassVar[str] = FISH_SOURCE

    def get_completion_args(self) -> tuple[list[str], str]:
        # fish sends the line up to the cursor, and the token under the cursor on its own
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        token = os.environ.get("COMP_CWORD", "")
        incomplete = (split_arg_string(token) or [""])[0] if token.strip() else ""
        args = words[1:]
        if token.strip() and args:
            args.pop()  # the line ends with the token being completed
        return args, incomplete

    def format_completion(self, item: CompletionItem[Any]) -> str:
        return fish_line(str(item.value), item.help)


COMPLETION_CLASSES: dict[str, type[_SirayComplete]] = {
    "bash": SirayBashComplete,
    "zsh": SirayZshComplete,
    "fish": SirayFishComplete,
}


def register() -> None:
    """Make Click's completion protocol (`_SIRAY_COMPLETE=complete_zsh`) use siray's classes."""
    for name, cls in COMPLETION_CLASSES.items():
        add_completion_class(cls, name)


def script(shell: str) -> str:
    """The completion script for `shell`: what --show-completion prints and --install-completion
    writes, and what completions/ holds."""
    cls = COMPLETION_CLASSES[shell]
    return cls(click.Group(PROG_NAME), {}, PROG_NAME, COMPLETE_VAR).source() + "\n"


# --- --show-completion and --install-completion ----------------------------------------------


def detect_shell() -> str | None:
    """The shell siray runs under (its parent process), else the login shell ($SHELL)."""
    try:
        import shellingham  # type: ignore[import-untyped]

        name = str(shellingham.detect_shell()[0])
    except Exception:
        name = Path(os.environ.get("SHELL", "")).name
    name = name.lower()
    return name if name in SHELLS else None


def _shell(value: str, option: str) -> str:
    shell = value.strip().lower() or detect_shell()
    if shell is None:
        raise click.UsageError(
            f"cannot tell which shell this is; name it: siray {option} bash|zsh|fish"
        )
    if shell not in SHELLS:
        raise click.BadParameter(
            f"{value!r} is not a shell siray completes (bash, zsh, fish)", param_hint=option
        )
    return shell


def install(shell: str, home: Path | None = None) -> Path:
    """Write `shell`'s script where that shell loads it; return the path."""
    home = home or Path.home()
    if shell == "bash":
        path = home / ".bash_completions" / f"{PROG_NAME}.sh"
        _ensure_line(home / ".bashrc", f"source '{path}'")
    elif shell == "zsh":
        path = home / ".zfunc" / f"_{PROG_NAME}"
        _ensure_line(home / ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit")
    else:
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        path = config / "fish" / "completions" / f"{PROG_NAME}.fish"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(shell), encoding="utf-8")
    return path


def _ensure_line(rc: Path, line: str) -> None:
    text = rc.read_text(encoding="utf-8") if rc.is_file() else ""
    if line not in text.splitlines():
        rc.parent.mkdir(parents=True, exist_ok=True)
        separator = "" if not text or text.endswith("\n") else "\n"
        rc.write_text(f"{text}{separator}{line}\n", encoding="utf-8")


def _show_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    click.echo(script(_shell(value, "--show-completion")), nl=False)
    ctx.exit(0)


def _install_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell = _shell(value, "--install-completion")
    path = install(shell)
    click.echo(f"installed the {shell} completion in {path}; open a new shell to use it", err=True)
    ctx.exit(0)


def completion_options() -> list[click.Parameter]:
    """`--install-completion [SHELL]` and `--show-completion [SHELL]`: the shell is optional
    (default: the one siray runs under), and when given it is the one used."""
    return [
        click.Option(
            ["--install-completion"],
            metavar="[SHELL]",
            is_flag=False,
            flag_value="",
            expose_value=False,
            is_eager=True,
            callback=_install_callback,
            help="Install completion for SHELL (bash, zsh or fish; default: the current shell).",
        ),
        click.Option(
            ["--show-completion"],
            metavar="[SHELL]",
            is_flag=False,
            flag_value="",
            expose_value=False,
            is_eager=True,
            callback=_show_callback,
            help="Print the completion script for SHELL (bash, zsh or fish; default: the "
            "current shell), to copy it or customize the installation.",
        ),
    ]


class CompletingGroup(typer.core.TyperGroup):
    """The root command: Typer's group, with siray's completion options and classes (the app is
    built with add_completion=False, so Typer adds neither its options nor its classes)."""

    context_class = HelpContext

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.params.extend(completion_options())
        register()
