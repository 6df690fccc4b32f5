"""Start-up benchmark: wall time of `siray --help`, `siray run --help`, `siray status --help`,
`siray --version` and shell-completion requests, next to `python -c "import typer"` (the goal
for help: at most 1.3 times it) and `python -c "import typer, httpx"`; median and spread
(min-max) of --runs, all cases interleaved round by round so that machine noise hits them alike.

    python benchmarks/startup.py [--runs 21] [--before DIR]

--before DIR runs the same siray cases from another checkout (PYTHONPATH=DIR, e.g. the branch's
starting commit) in the same rounds: before and after side by side. Both trees are byte-compiled
first (compileall), as a wheel install has them.

Notes: `import httpx` imports httpx's own command line (httpx/_main.py) whenever rich is
installed, and with it rich, pygments and click: every command that speaks HTTP pays for that, the
`import typer, httpx` line too. siray does not block it (that would mean reaching into a private
module of httpx); its own code imports no rich on a pipe (tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIRAY_CASES = {
    "siray --help": ["--help"],
    "siray run --help": ["run", "--help"],
    "siray status --help": ["status", "--help"],
    "siray --version": ["--version"],
    "complete `siray run a`": [],
    "complete `siray status i`": [],
}
COMPLETE = {
    "complete `siray run a`": {"COMP_WORDS": "siray run a", "COMP_CWORD": "2"},
    "complete `siray status i`": {"COMP_WORDS": "siray status i", "COMP_CWORD": "2"},
}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--before", type=Path, help="another checkout to run side by side")
    args = parser.parse_args()
    for tree in [ROOT, args.before] if args.before else [ROOT]:
        compileall.compile_dir(tree / "siray_cli", quiet=1)
    table = cases(args.before)
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.runs):
        for name, (command, extra) in table.items():
            started = time.perf_counter()
            cwd = extra.get("_BENCH_CWD", str(ROOT))  # `-m` puts the working directory first
            env = {**os.environ, **extra}
            subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
    typer_alone = statistics.median(times['python -c "import typer"'])
    print(f"{'case':<40}{'median':>8}{'min':>7}{'max':>7}  x import typer")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(
            f"{name:<40}{median * 1000:>6.0f}ms{min(measured) * 1000:>7.0f}"
            f"{max(measured) * 1000:>7.0f}  {median / typer_alone:>5.2f}"
        )
    print(f"(median, min and max of {args.runs} interleaved rounds, byte-compiled trees)")
    probe = (
        "import sys; from siray_cli.app import main; main(['--version']); "
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    print(f"heavy modules imported by --version: {loaded}")


if __name__ == "__main__":
    main()
