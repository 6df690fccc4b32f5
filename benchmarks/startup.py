"""Start-up benchmark: wall time of `siray --help`, `siray run --help`, `siray status --help`,
`siray --version` and shell-completion requests, next to `python -c "import typer"` (the goal
for help: at most 1.3 times it) and `python -c "import typer, httpx"`; median and spread
(min-max) of --runs, all cases interleaved round by round so that machine noise hits them alike.

    python benchmarks/startup.py [--runs 21] [--before DIR]

--before DIR runs the same siray cases from another checkout (PYTHONPATH=DIR, e.g. the branch's
starting commit) in the same rounds: before and after side by side. Both trees are byte-compiled
first (compileall), as a wheel install has them.

--requests adds the commands that speak HTTP, against an emulator started here (in this process,
so its work is not on the clock of the process measured): `siray status ID` (one finished task,
on a pipe), `siray models list` from a fresh catalogue cache (goal: no HTTP client built, at most
1.0 x `import typer, httpx`), and `siray generate --no-validate` up to its first request: the
time from starting the process to the first byte of a request reaching a listener that records
it and closes the connection (the create is then not retried: it may have reached the server);
and a whole `siray generate` against the emulator, its request checked against the cached
catalogue's schema first (as every plain generate and run) and not (jsonschema is imported only
when that check, fastjsonschema's, finds something wrong: services/schema_check.py). Those cases
compare with `python -c "import typer, httpx"` (goal: at most 1.3 x).

Notes: `import httpx` imports httpx's own command line (httpx/_main.py) whenever rich is
installed, and with it rich, pygments and click. siray marks that module missing before anything
imports httpx (siray_cli/__init__.py), which httpx's own fallback handles (its `main` then says
how to install the command line): a tenth of a second or more off every command that speaks HTTP.
The `import typer, httpx` baseline still pays for it.

siray ends with `gc.freeze()` (siray_cli/collection.py): the interpreter's last full garbage
collection would walk every object the imports made (30-70 ms for a status run, more than the
request), and nothing is left to run that it could matter to; what must be closed (the history's
SQLite connection) is closed by the command. The `python -c` baselines do not do this, so part of
siray's margin over them is that collection, which their processes still pay.

httpx-retries imports asyncio (about 25 ms) in httpx_retries/retry.py, the module that defines
`Retry` itself (for its async sleep): its package has no sync-only part to import instead. siray
makes a Retry only when an attempt fails (transport/retries.py, RetryPolicy), so a run whose
requests are all answered at once never imports it.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIRAY_CASES = {
    "siray --help": ["--help"],
    "siray run --help": ["run", "--help"],
    "siray status --help": ["status", "--help"],
    "siray --version": ["--version"],
    "complete `siray run a`": [],
    "complete `siray status i`": [],
    "complete `siray run MODEL -i s`": [],
}
# bash's completion protocol: the line up to the cursor (COMP_LINE); COMP_WORDS and COMP_CWORD
# are what it was before, so that --before can be a checkout from then
COMPLETE = {
    f"complete `{line}`": {
        "COMP_LINE": words,
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    for line, words in {
        "siray run a": "siray run a",
        "siray status i": "siray status i",
        "siray run MODEL -i s": "siray run alibaba/z-image-turbo-t2i -i s",
    }.items()
}
MODEL = "alibaba/z-image-turbo-t2i"
PRIVATE = ("_BENCH_CWD", "_LISTENER", "_FIRST_REQUEST")  # the benchmark's, not the child's
HEAVY = ("boto3", "botocore", "httpx", "jsonschema", "rich", "siray_cli.emulator", "sqlite3")


def cases(before: Path | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    found: dict[str, tuple[list[str], dict[str, str]]] = {
        'python -c "import typer"': ([sys.executable, "-c", "import typer"], {}),
        'python -c "import typer, httpx"': ([sys.executable, "-c", "import typer, httpx"], {}),
    }
    trees = [("after", ROOT)] + ([("before", before)] if before else [])
    for name, args in SIRAY_CASES.items():
        for label, tree in trees:
            env = {"PYTHONPATH": str(tree), "_BENCH_CWD": str(tree)}
            if name in COMPLETE:
                env |= {"_SIRAY_COMPLETE": "complete_bash", **COMPLETE[name]}
            found[f"{name} [{label}]"] = ([sys.executable, "-m", "siray_cli", *args], env)
    return found


class FirstRequest:
    """A listener that notes when the first bytes of a request arrive, then hangs up."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.arrived: list[float] = []
        self.event = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.server.accept()
            with connection:
                if connection.recv(1):
                    self.arrived.append(time.perf_counter())
                    self.event.set()


@contextlib.contextmanager
def request_cases(trees: list[tuple[str, Path]]) -> Iterator[dict[str, tuple[list[str], dict]]]:
    from siray_cli.domain import TaskKind
    from siray_cli.emulator.server import Emulator, EmulatorConfig
    from siray_cli.providers import Connection, open_provider

    with (
        Emulator(EmulatorConfig(port=0, task_seconds=0.1, seed=3)) as emulator,
        tempfile.TemporaryDirectory() as home,
    ):
        with open_provider("siray", Connection(emulator.config.api_key, emulator.url)) as p:
            task = p.submit(TaskKind.IMAGE, {"model": MODEL, "prompt": "x", "size": "1024x768"})
            while not p.get(task.task_id).is_terminal:
                time.sleep(0.1)
        listener = FirstRequest()
        found: dict[str, tuple[list[str], dict]] = {}
        for label, tree in trees:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")},
                **emulator.environment(),
                "PYTHONPATH": str(tree),
                "SIRAY_CONFIG_DIR": f"{home}/{label}/config",
                "SIRAY_DATA_DIR": f"{home}/{label}/data",
                "SIRAY_CACHE_DIR": f"{home}/{label}/cache",
            }
            command = [sys.executable, "-m", "siray_cli"]
            # the catalogue cached once: `models list` then reads it, fresh
            subprocess.run(
                [*command, "models", "list"], env=env, cwd=tree, check=True, capture_output=True
            )
            found[f"siray status ID [{label}]"] = ([*command, "status", task.task_id], env)
            found[f"models list, fresh cache [{label}]"] = ([*command, "models", "list"], env)
            first = {**env, "SIRAY_BASE_URL": listener.url, "SIRAY_GATEWAY_URL": listener.url}
            found[f"generate: first request [{label}]"] = (
                # --new: each round's create gets no answer (the listener closes), and a rerun
                # of an unanswered submit is refused rather than guessed about
                [*command, "generate", "--no-validate", "--new", MODEL, "a red fox"],
                {**first, "_FIRST_REQUEST": "1"},
            )
            for how, flags in (("validated", []), ("--no-validate", ["--no-validate"])):
                found[f"generate, {how}, whole [{label}]"] = (
                    [*command, "generate", *flags, MODEL, "a fox", "-i", "size=1024x768"],
                    env,
                )
        yield {
            name: (c, {**e, "_BENCH_CWD": e["PYTHONPATH"], "_LISTENER": listener})
            for name, (c, e) in found.items()
        }


def measure(command: list[str], extra: dict) -> float:
    cwd = extra.get("_BENCH_CWD", str(ROOT))  # `-m` puts the working directory first
    listener = extra.get("_LISTENER")
    base = {} if "SIRAY_BASE_URL" in extra else os.environ
    env = {**base, **{k: v for k, v in extra.items() if k not in PRIVATE}}
    if "_FIRST_REQUEST" in extra:
        listener.event.clear()
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not listener.event.wait(30):
            process.kill()
            raise SystemExit(f"no request from {' '.join(command)} in 30 s")
        elapsed = listener.arrived[-1] - started
        process.wait()
        return elapsed
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--before", type=Path, help="another checkout to run side by side")
    parser.add_argument("--requests", action="store_true", help="add the commands that speak HTTP")
    parser.add_argument("--only-requests", action="store_true", help="only those")
    args = parser.parse_args()
    for tree in [ROOT, args.before] if args.before else [ROOT]:
        compileall.compile_dir(tree / "siray_cli", quiet=1)
    table = cases(args.before)
    trees = [("after", ROOT)] + ([("before", args.before)] if args.before else [])
    with contextlib.ExitStack() as stack:
        if args.requests or args.only_requests:
            if args.only_requests:
                table = {k: v for k, v in table.items() if k.startswith("python")}
            table |= stack.enter_context(request_cases(trees))
        times: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.runs):
            for name, (command, extra) in table.items():
                times[name].append(measure(command, extra))
    typer_alone = statistics.median(times['python -c "import typer"'])
    with_httpx = statistics.median(times['python -c "import typer, httpx"'])
    print(f"{'case':<40}{'median':>8}{'min':>7}{'max':>7}  x typer  x typer+httpx")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(
            f"{name:<40}{median * 1000:>6.0f}ms{min(measured) * 1000:>7.0f}"
            f"{max(measured) * 1000:>7.0f}  {median / typer_alone:>7.2f}"
            f"  {median / with_httpx:>12.2f}"
        )
    print(f"(median, min and max of {args.runs} interleaved rounds, byte-compiled trees)")
    probe = (
        "import sys; from siray_cli.main import run; run(['--version']); "
        f"print(sorted(m for m, v in sys.modules.items() if v and m.startswith({HEAVY!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    print(f"heavy modules imported by --version: {loaded}")


if __name__ == "__main__":
    main()
