"""Start-up benchmark: wall time of `siray --version`, `siray run --help` and a shell-completion
request (model names from the cache, task ids from the history), median of --runs, next to a bare
`python -c pass`; and which heavy modules `--version` imports (none should be).

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": ([sys.executable, "-c", "pass"], {}),
    "siray --version": ([sys.executable, "-m", "siray_cli", "--version"], {}),
    "siray run --help": ([sys.executable, "-m", "siray_cli", "run", "--help"], {}),
    "complete `siray run a`": (
        [sys.executable, "-m", "siray_cli"],
        {"_SIRAY_COMPLETE": "complete_bash", "COMP_WORDS": "siray run a", "COMP_CWORD": "2"},
    ),
    "complete `siray status i`": (
        [sys.executable, "-m", "siray_cli"],
        {"_SIRAY_COMPLETE": "complete_bash", "COMP_WORDS": "siray status i", "COMP_CWORD": "2"},
    ),
}
HEAVY = ("boto3", "botocore", "httpx", "jsonschema", "rich", "siray_cli.emulator", "sqlite3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for name, (command, extra) in CASES.items():
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(command, env={**os.environ, **extra}, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        print(f"{name:<28}{statistics.median(times) * 1000:>8.0f} ms (median of {args.runs})")
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
