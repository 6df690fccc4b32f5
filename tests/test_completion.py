"""Shell completion, through the protocol and in the real shells: bash, zsh and fish each get
their own script (`--show-completion SHELL`, `--install-completion SHELL`, completions/), complete
commands, model names from the cached catalogue and task ids from the history, and never run a
candidate a hostile catalogue or server sent."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from helpers import Result, siray_in_process, siray_on_path

from siray_cli import completion
from siray_cli.storage.history import DB_NAME
from siray_cli.storage.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {shell: ROOT / "completions" / f"siray.{shell}" for shell in completion.SHELLS}
BIN = Path(sys.executable).parent

HOSTILE = [
    "a/$(touch PWNED)",
    "a/`touch PWNED`",
    "a/x\\",
    "a/'quote\"",
    "a/semi;colon:colon",
    "a/new\nline",
    "a/tab\there",
    "a/glob*",
]
SAFE = sorted(name for name in HOSTILE if "\n" not in name and "\t" not in name)
TAGS = ["$(touch PWNED)", "`touch PWNED`", "back\\", "'q\"", "se;mi:co", "two\nlines", "t\tab", ""]
NORMAL = {"alibaba/wan-2.6-i2v": "video", "alibaba/z-image-turbo-t2i": "image"}
IMAGE_MODEL = "alibaba/z-image-turbo-t2i"
# the inputs of IMAGE_MODEL in the cached catalogue: an enum, one with `:` in its values
SCHEMA = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "What to generate."},
        "size": {
            "type": "string",
            "enum": ["1024x768", "768x1024", "1024x1024"],
            "description": "Output size in pixels.",
        },
        "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9"], "default": "1:1"},
        "seed": {"type": "integer", "enum": [7, 42]},
    },
    "required": ["prompt", "size"],
}
# a model whose inputs are hostile: names and values a shell must never run
HOSTILE_MODEL = "hostile/inputs"
HOSTILE_VALUES = ["$(touch PWNED)", "`touch PWNED`", "semi;colon", "it's", "new\nline", "x\\"]
# names `-i` can take (no blank, no `=`), then names it cannot (never offered)
HOSTILE_NAMES = ["$(touch${IFS}PWNED)", "`touch${IFS}PWNED`", "semi;colon", "it's", "x\\"]
HOSTILE_SCHEMA = {
    "properties": {
        **{name: {"type": "string"} for name in HOSTILE_NAMES},
        **{name: {"type": "string"} for name in ["new\nline", "has space", "a=b", "json:"]},
        "style": {"enum": HOSTILE_VALUES, "description": "$(touch PWNED)\n`x`"},
    }
}
TASK_IDS = ["image_a8813a4b4c9", "image_b0000000001", "image_$(touch PWNED)", "image_x\\"]


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (apt-get install {shell})")
    return path


@pytest.fixture
def catalogue(isolated_environment: Path) -> Path:
    """A cached catalogue with ordinary and hostile models, and a history with hostile task ids."""
    cache = isolated_environment / "cache"
    cache.mkdir(parents=True)
    models = [
        {"name": name, "tag": tag, "schema": SCHEMA if name == IMAGE_MODEL else {}}
        for name, tag in NORMAL.items()
    ]
    models.append({"name": HOSTILE_MODEL, "tag": "image", "schema": HOSTILE_SCHEMA})
    models += [
        {"name": name, "tag": tag, "schema": {}} for name, tag in zip(HOSTILE, TAGS, strict=True)
    ]
    document = {"format": 2, "fetched_at": time.time(), "models": models}
    (cache / "models-test.json").write_text(json.dumps(document), encoding="utf-8")
    data = isolated_environment / "data"
    data.mkdir(parents=True)
    with sqlite3.connect(data / DB_NAME) as db:
        for _, script in MIGRATIONS:
            db.executescript(script)
        for number, task_id in enumerate(TASK_IDS):
            db.execute(
                "INSERT INTO tasks (task_id, kind, model, request, submitted_at, base_url, "
                "profile, status, updated_at) VALUES (?, 'image', ?, '{}', ?, 'x', 'default', "
                "'SUCCESS', ?)",
                (task_id, "alibaba/z-image-turbo-t2i", number, number),
            )
    db.close()
    return isolated_environment


def shell_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "_SIRAY"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", TERM="dumb")
    return siray_on_path(env)  # the shells' `siray`, forked (a completion asks it many times)


def no_file_was_created(tmp_path: Path) -> None:
    assert not list(tmp_path.rglob("PWNED*")), "a candidate ran a command"


# --- the protocol ------------------------------------------------------------------------------


def complete(
    shell: str, words: str, cword: int | None = None, environment: dict[str, str] | None = None
) -> list[str]:
    """Ask siray for candidates the way each script does."""
    env: dict[str, str | None] = {"COLUMNS": None}  # (the test's terminal's)
    env.update(_SIRAY_COMPLETE=f"complete_{shell}", COMP_WORDS=words)
    if shell == "fish":  # the line up to the cursor, and the token being completed
        env["COMP_CWORD"] = "" if words.endswith(" ") else words.rsplit(maxsplit=1)[-1]
    elif shell == "bash":  # the line up to the cursor (bash's default COMP_WORDBREAKS)
        env = {**env, "COMP_LINE": words, "COMP_WORDS": ""}
    else:
        env["COMP_CWORD"] = str(cword if cword is not None else len(words.split()) - 1)
    env.update(environment or {})
    # in this process: what a shell runs is the same entry point (the real shells' tests below
    # run it as a command of its own)
    completed = siray_in_process(env=env)
    assert completed.exit_code == 0 and completed.stderr == "", completed.stderr
    return [line for line in completed.stdout.splitlines() if line]


def test_bash_completes_commands_options_and_enum_values():
    assert "run" in complete("bash", "siray ru")
    assert set(complete("bash", "siray au")) == {"auth"}
    assert "--poll-interval" in complete("bash", "siray run --poll")
    assert complete("bash", "siray run --kind ", cword=3) == ["image", "video"]
    assert set(complete("bash", "siray auth ", cword=2)) >= {"login", "logout", "status", "token"}
    assert complete("bash", "siray config set ti", cword=3) == ["timeout"]


def test_a_bash_script_installed_earlier_still_completes():
    """Its protocol was COMP_WORDS and COMP_CWORD; siray answers it until it is installed anew."""
    env = {"_SIRAY_COMPLETE": "complete_bash", "COMP_WORDS": "siray ru", "COMP_CWORD": "1"}
    completed = siray_in_process(env=env)
    assert completed.stdout.split() == ["run"] and completed.stderr == ""


def test_zsh_and_fish_complete_too():
    assert any(
        line.startswith("status:Show the state of tasks") for line in complete("zsh", "siray st")
    )
    assert complete("zsh", "siray run --kind ", cword=3) == ["image", "video"]
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
    assert complete("bash", "siray run 'unterminated", cword=2) == []
    assert complete("zsh", "siray run x\\", cword=2) == []
    assert complete("fish", "siray run '") == []


def test_each_shell_is_sent_candidates_it_reads_literally(catalogue):
    bash = complete("bash", "siray run a/", cword=2)
    assert bash == [
        "a/\\$\\(touch\\ PWNED\\)",
        "a/\\'quote\\\"",
        "a/\\`touch\\ PWNED\\`",
        "a/glob\\*",
        "a/semi\\;colon\\:colon",
        "a/x\\\\",
    ]
    zsh = complete("zsh", "siray run a/", cword=2)
    assert zsh == [
        "a/$(touch PWNED):$(touch PWNED)",
        "a/'quote\":'q\"",
        "a/`touch PWNED`:`touch PWNED`",
        "a/glob*",
        "a/semi;colon\\:colon:se;mi:co",
        "a/x\\\\:back\\",
    ]
    fish = complete("fish", "siray run a/")
    assert fish == [
        "a/$(touch PWNED)\t$(touch PWNED)",
        "a/'quote\"\t'q\"",
        "a/`touch PWNED`\t`touch PWNED`",
        "a/glob*",
        "a/semi;colon:colon\tse;mi:co",
        "a/x\\\tback\\",
    ]


def test_descriptions_lose_control_characters_and_values_with_them_are_dropped():
    assert completion.one_line("two\nlines\tand\x1b[31mred\x1b[0m") == "two lines and [31mred [0m"
    assert not completion.representable("a/new\nline")
    assert not completion.representable("a/\x1b]0;title\x07")
    assert not completion.representable("a/\ud800")
    assert not completion.representable("")
    assert completion.representable("a/ünïcödé $(x) `y` \\ ' \" ; : *")


# --- --show-completion and --install-completion ------------------------------------------------


def run_siray(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """`siray ARGS` in this process, in exactly `env` when given (not over this process's)."""
    if env is None:
        return siray_in_process(*args)
    return siray_in_process(*args, env={**dict.fromkeys(os.environ), **env})


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_show_completion_prints_that_shells_script(shell):
    # the shell named wins over the one siray runs under (here: bash, or none)
    shown = run_siray("--show-completion", shell)
    assert shown.exit_code == 0 and shown.stderr == ""
    assert shown.stdout == SCRIPTS[shell].read_text() == completion.script(shell)
    assert f"--show-completion {shell}`" in shown.stdout
    others = [s for s in completion.SHELLS if s != shell]
    assert all(SCRIPTS[other].read_text() != shown.stdout for other in others)
    protocol = siray_in_process(env={"_SIRAY_COMPLETE": f"source_{shell}"})
    assert protocol.stdout == shown.stdout


def test_show_completion_without_a_shell_uses_the_current_one(monkeypatch):
    monkeypatch.setattr(completion, "detect_shell", lambda: "fish")
    assert completion._shell("", "--show-completion") == "fish"
    monkeypatch.setattr(completion, "detect_shell", lambda: None)
    with pytest.raises(Exception, match="name it"):
        completion._shell("", "--show-completion")
    refused = run_siray("--show-completion", "tcsh")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "not a shell siray completes" in refused.stderr


@pytest.mark.parametrize(
    ("shell", "where", "rc", "line"),
    [
        (
            "bash",
            ".bash_completions/siray.sh",
            ".bashrc",
            "source '{home}/.bash_completions/siray.sh'",
        ),
        ("zsh", ".zfunc/_siray", ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit"),
        ("fish", ".config/fish/completions/siray.fish", None, None),
    ],
)
def test_install_completion_installs_that_shells_script(tmp_path, shell, where, rc, line):
    home = tmp_path / "home"
    env = shell_env(home)
    for _ in range(2):  # a second install changes nothing
        installed = run_siray("--install-completion", shell, env=env)
        assert installed.exit_code == 0 and installed.stdout == "", installed.stderr
        assert f"installed the {shell} completion in {home / where}" in installed.stderr
    assert (home / where).read_text() == SCRIPTS[shell].read_text()
    if rc:
        assert (home / rc).read_text().splitlines().count(line.format(home=home)) == 1


def test_an_installed_completion_is_loaded_by_each_real_shell(tmp_path, catalogue):
    home = tmp_path / "home"
    env = shell_env(home)
    loaded = {}
    for shell in completion.SHELLS:
        if shutil.which(shell) is None:
            continue
        assert run_siray("--install-completion", shell, env=env).exit_code == 0
        if shell == "bash":
            loaded[shell] = subprocess.run(
                ["bash", "-i", "-c", "complete -p siray"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        elif shell == "fish":  # fish autoloads ~/.config/fish/completions/siray.fish
            loaded[shell] = subprocess.run(
                ["fish", "-c", 'complete -C "siray ru"'],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split("\t")[0]
        else:  # ~/.zshrc puts ~/.zfunc on $fpath; the first Tab autoloads _siray
            loaded[shell] = zsh_complete(["siray ru"], env=env, rc=True)[0].buffer
    if not loaded:
        pytest.skip("no shell is installed")
    expected = {
        "bash": "complete -o default -F _siray_completion siray",
        "zsh": "siray run ",
        "fish": "run",
    }
    assert loaded == {shell: expected[shell] for shell in loaded}


def documented_install_lines() -> str:
    """docs/reference.md's block that installs the completions by hand."""
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "siray.zsh" in b]
    return str(block)


def test_the_documented_install_lines_load_the_completion_in_a_fresh_home(tmp_path):
    """Copied into a fresh account (no ~/.zshrc, no ~/.bashrc, no bash-completion loaded), the
    lines docs/reference.md gives make each real shell know siray's completion; run twice, they
    add nothing."""
    zsh, bash = need("zsh"), need("bash")
    home = tmp_path / "home"
    home.mkdir()
    # as most systems' zsh (Ubuntu's /etc/zsh/zshrc runs compinit, unless told not to)
    env = {**shell_env(home), "skip_global_compinit": "1"}
    for _ in range(2):
        subprocess.run(
            [bash, "-euo", "pipefail", "-c", documented_install_lines()],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=30,
        )

    def interactive(shell: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shell, "-i", "-c", command],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    found = interactive(zsh, "whence -v _siray")
    assert found.returncode == 0 and found.stdout.startswith("_siray is "), found
    loaded = interactive(bash, "complete -p siray")
    assert loaded.stdout.strip() == "complete -o default -F _siray_completion siray", loaded
    zshrc = (home / ".zshrc").read_text()
    assert zshrc.count("fpath=(~/.zfunc") == 1 and zshrc.count("compinit && compinit") == 1
    assert (home / ".bashrc").read_text().count("source ") == 1


# --- the real shells ---------------------------------------------------------------------------


def bash_complete(typed: list[str], env: dict[str, str], cwd: Path) -> list[list[str]]:
    """For each line typed, source the script, call its function as bash's Tab would, and return
    COMPREPLY, then what each word means once bash reads it back off the command line."""
    bash = need("bash")
    script = [f"source {shlex.quote(str(SCRIPTS['bash']))}"]
    for line in typed:
        # as typed, the cursor at the end: quoting and backslashes stay in COMP_LINE
        script += [
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(x); "
            "_siray_completion siray; "
            'for w in "${COMPREPLY[@]}"; do printf "%s\\t" "$w"; eval "printf %s $w"; echo; done; '
            "echo END"
        ]
    completed = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", "\n".join(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stderr == "" and completed.returncode == 0, completed.stderr
    answers: list[list[str]] = [[]]
    for row in completed.stdout.splitlines():
        if row == "END":
            answers.append([])
        else:
            answers[-1].append(row)
    return answers[:-1]


def fish_complete(typed: list[str], env: dict[str, str], cwd: Path) -> list[list[str]]:
    fish = need("fish")
    script = f"source {shlex.quote(str(SCRIPTS['fish']))}; for line in $argv; "
    script += "complete -C $line; echo END; end"
    completed = subprocess.run(
        [fish, "--no-config", "-c", script, *typed],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stderr == "" and completed.returncode == 0, completed.stderr
    answers: list[list[str]] = [[]]
    for row in completed.stdout.splitlines():
        if row == "END":
            answers.append([])
        else:
            answers[-1].append(row)
    return answers[:-1]


class ZshAnswer:
    def __init__(self, matches: list[str], buffer: str, word: str) -> None:
        self.matches, self.buffer, self.word = matches, buffer, word


ZSH_SETUP = r"""
PS1='%% '; unsetopt beep
{init}
compadd() {{ local -a m; builtin compadd -O m "$@"; print -rl -- "${{(@)m/#/MATCH:}}" >>{cap}; \
    builtin compadd "$@"; }}
dump() {{ local -a w; w=(${{(z)BUFFER}}); print -r -- "BUFFER:$BUFFER" >>{cap}; \
    print -r -- "WORD:${{(Q)w[-1]}}" >>{cap}; print -r -- END >>{cap}; }}
zle -N dump; bindkey '^B' dump
print READY
"""


def zsh_complete(
    typed: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    rc: bool = False,
    dump: Path | None = None,
) -> list[ZshAnswer]:
    """Type each line into an interactive zsh on a pseudo-terminal and press Tab; return the
    matches zsh offered (compadd's, after its own filtering), the command line after the Tab, and
    what its last word means to zsh. `dump`: compinit's dump file (as a user's ~/.zcompdump),
    made by the first zsh that names it and read by the next ones."""
    zsh = need("zsh")
    home = Path(env["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    capture = home / "zsh-capture"
    capture.write_text("")
    if rc:  # the user's ~/.zshrc (written by --install-completion) sets completion up
        command, init = [zsh, "-i"], ""
    else:
        command = [zsh, "-f", "-i"]
        dumped = f"-d {shlex.quote(str(dump))}" if dump else "-D"
        init = f"autoload -Uz compinit; compinit -u {dumped}; "
        init += f"source {shlex.quote(str(SCRIPTS['zsh']))}"
    setup = ZSH_SETUP.format(init=init, cap=shlex.quote(str(capture)))
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(terminal)
    screen = b""

    def pump(until: float) -> None:
        nonlocal screen
        if select.select([controller], [], [], 0.05)[0]:
            with contextlib.suppress(OSError):
                screen += os.read(controller, 65536)
        assert time.monotonic() < until, f"zsh did not answer: {screen[-2000:]!r}"

    try:
        for line in setup.strip().splitlines():
            os.write(controller, (line + "\n").encode())
        deadline = time.monotonic() + 30
        while b"\nREADY" not in screen.replace(b"\r", b""):
            pump(deadline)
        for number, line in enumerate(typed, 1):
            # Tab completes (zle reads the next key only once it has finished), ^B dumps the line,
            # ^U clears it
            os.write(controller, line.encode() + b"\t\x02")
            deadline = time.monotonic() + 30
            while capture.read_text().count("END\n") < number:
                pump(deadline)
            os.write(controller, b"\x15")
    finally:
        process.kill()
        process.wait(timeout=10)
        os.close(controller)
    answers, matches, buffer = [], [], ""
    for row in capture.read_text().splitlines():
        if row.startswith("MATCH:"):
            if row[6:] not in matches:
                matches.append(row[6:])
        elif row.startswith("BUFFER:"):
            buffer = row[7:]
        elif row.startswith("WORD:"):
            answers.append(ZshAnswer(sorted(matches), buffer, row[5:]))
            matches = []
    return answers


@pytest.fixture(scope="module")
def zcompdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dump of zsh's completion functions for the module's zsh sessions: without one,
    compinit reads every completion function zsh has (most of a second of CPU) each time."""
    return tmp_path_factory.mktemp("zsh") / "zcompdump"


@pytest.fixture
def in_shell(catalogue: Path, tmp_path: Path) -> Iterator[dict[str, object]]:
    env = shell_env(tmp_path / "home")
    yield {"env": env, "cwd": tmp_path}
    no_file_was_created(tmp_path)


def test_real_bash_completes_commands_models_and_task_ids(in_shell):
    answers = bash_complete(
        ["siray ru", "siray run alibaba/", "siray status image_", "siray status image_b"],
        **in_shell,  # type: ignore[arg-type]
    )
    assert answers[0] == ["run\trun"]
    assert answers[1] == [f"{name}\t{name}" for name in NORMAL]
    assert [row.split("\t")[1] for row in answers[2]] == sorted(
        TASK_IDS, key=TASK_IDS.index, reverse=True
    )
    assert answers[3] == ["image_b0000000001\timage_b0000000001"]


def test_real_zsh_completes_commands_models_and_task_ids(in_shell, zcompdump):
    answers = zsh_complete(
        [
            "siray ru",
            "siray run alibaba/",
            "siray run alibaba/z",
            "siray status image_",
            "siray status image_b",
        ],
        **in_shell,  # type: ignore[arg-type]
        dump=zcompdump,
    )
    assert (answers[0].matches, answers[0].buffer) == (["run"], "siray run ")
    assert answers[1].matches == list(NORMAL) and answers[1].buffer == "siray run alibaba/"
    assert answers[2].buffer == "siray run alibaba/z-image-turbo-t2i "
    assert answers[3].matches == sorted(TASK_IDS)
    assert answers[4].buffer == "siray status image_b0000000001 "


def test_real_fish_completes_commands_models_and_task_ids(in_shell):
    answers = fish_complete(
        ["siray ru", "siray run alibaba/", "siray status image_"],
        **in_shell,  # type: ignore[arg-type]
    )
    assert [row.split("\t")[0] for row in answers[0]] == ["run"]
    assert answers[1] == [f"{name}\t{tag}" for name, tag in NORMAL.items()]
    assert sorted(row.split("\t")[0] for row in answers[2]) == sorted(TASK_IDS)
    assert "image_a8813a4b4c9\talibaba/z-image-turbo-t2i SUCCESS" in answers[2]


# what to type to reach each hostile name alone, as a user would type it (quoted for the shell)
UNIQUE_PREFIX = {
    "a/$(touch PWNED)": "a/\\$",
    "a/`touch PWNED`": "a/\\`",
    "a/x\\": "a/x",
    "a/'quote\"": "a/\\'",
    "a/semi;colon:colon": "a/semi\\;",
    "a/glob*": "a/g",
}


def test_real_bash_never_runs_a_hostile_candidate(in_shell):
    typed = ["siray run a/", "siray status image_\\$", "siray status image_x"]
    typed += [f"siray run {prefix}" for prefix in UNIQUE_PREFIX.values()]
    answers = bash_complete(typed, **in_shell)  # type: ignore[arg-type]
    # each word, read back by bash, is exactly the name
    assert [row.split("\t")[1] for row in answers[0]] == SAFE
    assert [row.split("\t")[1] for row in answers[1]] == ["image_$(touch PWNED)"]
    assert [row.split("\t")[1] for row in answers[2]] == ["image_x\\"]
    for name, answer in zip(UNIQUE_PREFIX, answers[3:], strict=True):
        assert [row.split("\t")[1] for row in answer] == [name]


def test_real_zsh_never_runs_a_hostile_candidate(in_shell, zcompdump):
    typed = ["siray run a/", "siray status image_\\$", "siray status image_x"]
    typed += [f"siray run {prefix}" for prefix in UNIQUE_PREFIX.values()]
    answers = zsh_complete(typed, **in_shell, dump=zcompdump)  # type: ignore[arg-type]
    assert answers[0].matches == SAFE and answers[0].buffer == "siray run a/"
    assert answers[1].matches == ["image_$(touch PWNED)"]
    assert answers[1].word == "image_$(touch PWNED)"
    assert answers[1].buffer == "siray status image_\\$\\(touch\\ PWNED\\) "
    assert answers[2].matches == ["image_x\\"] and answers[2].word == "image_x\\"
    for name, answer in zip(UNIQUE_PREFIX, answers[3:], strict=True):
        # zsh inserted the name quoted: read back, it is exactly the name
        assert (answer.matches, answer.word) == ([name], name), answer.buffer
        assert answer.buffer.endswith(" ")


def test_real_fish_never_runs_a_hostile_candidate(in_shell):
    typed = ["siray run a/", "siray status image_\\$", "siray status image_x"]
    typed += [f"siray run {prefix}" for prefix in UNIQUE_PREFIX.values()]
    answers = fish_complete(typed, **in_shell)  # type: ignore[arg-type]
    assert sorted(row.split("\t")[0] for row in answers[0]) == SAFE
    assert "a/semi;colon:colon\tse;mi:co" in answers[0] and "a/x\\\tback\\" in answers[0]
    assert [row.split("\t")[0] for row in answers[1]] == ["image_$(touch PWNED)"]
    assert [row.split("\t")[0] for row in answers[2]] == ["image_x\\"]
    for name, answer in zip(UNIQUE_PREFIX, answers[3:], strict=True):
        assert [row.split("\t")[0] for row in answer] == [name]


def bash_readline(typed: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """Type each line into an interactive bash (readline, COMP_WORDBREAKS and all) on a
    pseudo-terminal and press Tab; return each command line after the Tab."""
    bash = need("bash")
    capture = Path(env["HOME"]) / "bash-capture"
    capture.parent.mkdir(parents=True, exist_ok=True)
    capture.write_text("")
    setup = (
        f"source {shlex.quote(str(SCRIPTS['bash']))}; dump() {{ "
        f"printf 'LINE:%s\\nEND\\n' \"$READLINE_LINE\" >>{shlex.quote(str(capture))}; }}; "
        "bind -x '\"\\C-b\": dump'; echo READY\n"
    )
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [bash, "--norc", "--noprofile", "-i"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**env, "PS1": "$ "},
        cwd=cwd,
        start_new_session=True,
    )
    os.close(terminal)
    screen = b""
    try:
        os.write(controller, setup.encode())
        deadline = time.monotonic() + 30
        while b"READY\r\n" not in screen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.05)[0]:
                screen += os.read(controller, 65536)
        for number, line in enumerate(typed, 1):
            os.write(controller, line.encode() + b"\t\x02")
            deadline = time.monotonic() + 30
            while capture.read_text().count("END\n") < number:
                assert time.monotonic() < deadline, screen[-2000:]
                if select.select([controller], [], [], 0.05)[0]:
                    screen += os.read(controller, 65536)
            os.write(controller, b"\x15")
    finally:
        process.kill()
        process.wait(timeout=10)
        os.close(controller)
    return [row[5:] for row in capture.read_text().splitlines() if row.startswith("LINE:")]


def test_real_bash_readline_inserts_the_literal_name(in_shell):
    """Tab in an interactive bash (readline, COMP_WORDBREAKS and all), not only the function."""
    typed = [f"siray run {prefix}" for prefix in UNIQUE_PREFIX.values()] + ["siray ru"]
    lines = bash_readline(typed, **in_shell)  # type: ignore[arg-type]
    assert lines[-1] == "siray run "
    for name, line in zip(UNIQUE_PREFIX, lines, strict=False):
        assert shlex.split(line) == ["siray", "run", name]
        assert line.endswith(" ")


# --- a model's inputs (-i NAME=VALUE) ----------------------------------------------------------

NAMES = ["aspect_ratio=", "prompt=", "seed=", "size="]


def test_inputs_complete_as_name_equals_then_their_allowed_values(catalogue):
    line = f"siray run {IMAGE_MODEL} -i "
    assert complete("bash", line) == NAMES
    assert complete("bash", f"siray generate {IMAGE_MODEL} --input s") == ["seed=", "size="]
    assert complete("bash", f"siray run {IMAGE_MODEL} 'a fox' -i si") == ["size="]
    assert complete("zsh", line, cword=4) == [
        "aspect_ratio=:string",
        "prompt=:required string: What to generate.",
        "seed=:integer",
        "size=:required string: Output size in pixels.",
    ]
    assert complete("fish", f"siray run {IMAGE_MODEL} -i pr") == [
        "prompt=\trequired string: What to generate."
    ]
    # an enum's values, in each shell's form: bash replaces only what follows `=` or `:`
    assert complete("bash", f"siray run {IMAGE_MODEL} -i size=10") == ["1024x768", "1024x1024"]
    assert complete("bash", f"siray run {IMAGE_MODEL} -i aspect_ratio=16:") == ["9"]
    assert complete("bash", f"siray run {IMAGE_MODEL} --input=size=76") == ["768x1024"]
    assert complete("zsh", f"siray run {IMAGE_MODEL} -i size=76", cword=4) == ["size=768x1024"]
    assert complete("fish", f"siray run {IMAGE_MODEL} -i aspect_ratio=") == [
        "aspect_ratio=1:1\tdefault",
        "aspect_ratio=16:9",
    ]
    assert complete("fish", f"siray run {IMAGE_MODEL} -i seed=4") == ["seed=42"]
    assert complete("fish", f"siray run {IMAGE_MODEL} -i seed:=") == ["seed:=7", "seed:=42"]
    assert complete("fish", f"siray run {IMAGE_MODEL} --input=size=76") == ["--input=size=768x1024"]
    # no model on the line: the `model` setting's; none, or one not in the cache: nothing
    setting = {"SIRAY_MODEL": IMAGE_MODEL}
    assert complete("bash", "siray run -i s", environment=setting) == ["seed=", "size="]
    assert complete("bash", "siray run -i s") == []
    assert complete("bash", "siray run a/unknown -i s") == []


def test_higgsfield_inputs_come_from_its_built_in_catalogue(isolated_environment):
    model = "bytedance/seedream/v4/text-to-image"
    names = ["aspect_ratio=", "camera_fixed=", "prompt=", "resolution="]
    assert complete("bash", f"siray --provider higgsfield run {model} -i ") == names
    assert complete("bash", f"siray run {model} -i ", environment={"SIRAY_PROVIDER": "higgsfield"})
    # a profile for Higgsfield, named by --profile or SIRAY_PROFILE
    config = isolated_environment / "config"
    config.mkdir(parents=True)
    (config / "config.toml").write_text('[profiles.hf]\nprovider = "higgsfield"\n')
    (config / "config.toml").chmod(0o600)
    assert complete("fish", f"siray --profile hf generate {model} -i pr") == [
        "prompt=\trequired string"
    ]
    assert complete("bash", f"siray run {model} -i ", environment={"SIRAY_PROFILE": "hf"}) == names
    assert complete("bash", f"siray run {model} -i ") == []  # Siray's catalogue: not cached


def test_real_shells_complete_inputs_and_values(in_shell, zcompdump):
    bash = bash_complete(
        [
            f"siray run {IMAGE_MODEL} -i ",
            f"siray run {IMAGE_MODEL} -i size=10",
            f"siray run {IMAGE_MODEL} -i aspect_ratio=16:",
        ],
        **in_shell,  # type: ignore[arg-type]
    )
    assert bash[0] == [f"{name}\t{name}" for name in NAMES]
    assert bash[1] == ["1024x768\t1024x768", "1024x1024\t1024x1024"]
    assert bash[2] == ["9\t9"]
    # Tab in readline: the name without a space after it, a value with one
    lines = bash_readline(
        [
            f"siray run {IMAGE_MODEL} -i si",
            f"siray run {IMAGE_MODEL} -i size=1024x7",
            f"siray run {IMAGE_MODEL} -i aspect_ratio=16",
            f"siray run {IMAGE_MODEL} --input=size=76",
        ],
        **in_shell,  # type: ignore[arg-type]
    )
    # (read back by bash: bash's own quoting of `:` is `\:`)
    assert [shlex.split(line)[3:] for line in lines] == [
        ["-i", "size="],
        ["-i", "size=1024x768"],
        ["-i", "aspect_ratio=16:9"],
        ["--input=size=768x1024"],
    ]
    assert [line.endswith(" ") for line in lines] == [False, True, True, True]
    zsh = zsh_complete(
        [
            f"siray run {IMAGE_MODEL} -i ",
            f"siray run {IMAGE_MODEL} -i si",
            f"siray run {IMAGE_MODEL} -i size=1024x7",
            f"siray run {IMAGE_MODEL} -i aspect_ratio=16",
        ],
        **in_shell,  # type: ignore[arg-type]
        dump=zcompdump,
    )
    assert zsh[0].matches == NAMES
    stem = f"siray run {IMAGE_MODEL}"
    assert [answer.buffer for answer in zsh[1:]] == [
        f"{stem} -i size=",
        f"{stem} -i size=1024x768 ",
        f"{stem} -i aspect_ratio=16:9 ",
    ]
    fish = fish_complete(
        [f"siray run {IMAGE_MODEL} -i ", f"siray run {IMAGE_MODEL} -i size=10"],
        **in_shell,  # type: ignore[arg-type]
    )
    assert [row.split("\t")[0] for row in fish[0]] == NAMES
    assert sorted(fish[1]) == ["size=1024x1024", "size=1024x768"]


def test_real_shells_never_run_a_hostile_input_or_value(in_shell, zcompdump):
    names = sorted(f"{name}=" for name in [*HOSTILE_NAMES, "style"])
    values = sorted(f"style={value}" for value in HOSTILE_VALUES if "\n" not in value)
    line = f"siray run {HOSTILE_MODEL} -i "
    bash = bash_complete([line, line + "style="], **in_shell)  # type: ignore[arg-type]
    # each word, read back by bash, is exactly the name (or the value after `style=`)
    assert sorted(row.split("\t")[1] for row in bash[0]) == names
    assert sorted("style=" + row.split("\t")[1] for row in bash[1]) == values
    typed = [line + "\\`", line + "style=\\$", line + "style=it\\'"]
    lines = bash_readline(typed, **in_shell)  # type: ignore[arg-type]
    assert [shlex.split(found)[-1] for found in lines] == [
        "`touch${IFS}PWNED`=",
        "style=$(touch PWNED)",
        "style=it's",
    ]
    zsh = zsh_complete([line, *typed], **in_shell, dump=zcompdump)  # type: ignore[arg-type]
    assert zsh[0].matches == names
    assert [answer.word for answer in zsh[1:]] == [shlex.split(found)[-1] for found in lines]
    fish = fish_complete([line, line + "style="], **in_shell)  # type: ignore[arg-type]
    assert sorted(row.split("\t")[0] for row in fish[0]) == names
    assert sorted(fish[1]) == values


# --- descriptions ------------------------------------------------------------------------------


def test_descriptions_take_the_width_the_shell_gives(in_shell):
    whole = "Submit a task, wait for it, and print or download its outputs."
    for shell in ("zsh", "fish"):
        wide = complete(shell, "siray ru", cword=1, environment={"COLUMNS": "200"})
        assert wide == [f"run{':' if shell == 'zsh' else chr(9)}{whole}"]
        narrow = complete(shell, "siray ru", cword=1, environment={"COLUMNS": "40"})
        text = narrow[0][4:]
        assert text.endswith("…") and whole.startswith(text[:-1]) and len(text) <= 40 - 3 - 8
    # a real fish, on a wide terminal: the whole summary (not Click's first 45 characters)
    env: dict[str, str] = {**in_shell["env"], "COLUMNS": "200"}  # type: ignore[dict-item]
    fish = fish_complete(["siray ru"], env=env, cwd=in_shell["cwd"])  # type: ignore[arg-type]
    assert fish[0] == [f"run\t{whole}"]
