"""What an install weighs: for each extra asked for, a fresh venv, `pip install '.[EXTRA]'` (no
extra: the plain install), then the number of distributions `pip list` shows (pip and
setuptools included) and the disk space of site-packages in MiB (`du`, as pip left it: byte-code
included).

    python benchmarks/install_size.py [--extras '' emulator test] [--source DIR]

--source DIR measures another checkout (the branch's starting commit, say).

The `emulator` extra is the emulator's S3 store (moto's S3, IAM and STS backends behind its
Werkzeug/Flask server). Measured on Python 3.11 (2026-12-07): the plain install is 35 packages
and 91 MiB; with the emulator extra, 52 and 168 (the extra adds 17 and 77). With `moto[server]`,
which the extra used to be, it was 78 and 341 when the plain install was 33 and 90 (sympy,
cfn-lint, networkx, docker, ... for services the emulator never starts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(source: Path, extra: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="siray-install-") as place:
        venv = Path(place) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        target = f"{source}[{extra}]" if extra else str(source)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", target],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format", "json"],
            check=True,
            capture_output=True,
            text=True,
        )
        (site,) = venv.glob("lib/python*/site-packages")
        used = subprocess.run(["du", "-sk", site], check=True, capture_output=True, text=True)
        return len(json.loads(listed.stdout)), int(used.stdout.split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=["", "emulator"])
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    print("extra\tpackages\tMB")
    for extra in args.extras:
        packages, megabytes = measure(args.source.resolve(), extra)
        print(f"{extra or '(none)'}\t{packages}\t{megabytes:.0f}", flush=True)


if __name__ == "__main__":
    main()
