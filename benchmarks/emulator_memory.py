"""The emulator's memory as files are uploaded to it: `siray emulator` in a process of its own,
then --files uploads of --mib MiB each (`siray upload`, each in its own process, the same file
under a new name every time), printing the emulator's resident memory (VmRSS) after each, its
peak (VmHWM) and the bytes its temporary directory holds.

An S3 store keeps what it was sent; the emulator keeps it on disk, in its temporary directory
(removed when it stops), so its memory should stay flat however many files it holds: what grows is
that directory. --source DIR runs the emulator from another checkout of siray (e.g. `git archive
main | tar -x -C /tmp/main`), for a before/after comparison; the uploads always run from this one.

    python benchmarks/emulator_memory.py [--files 8] [--mib 256] [--source DIR]
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(block[index % 7 :] + block[: index % 7])


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (Linux)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def held_on_disk(pid: int) -> int:
    """The bytes of the regular files a process holds open (moto's spooled temporary files are
    unlinked as soon as they are made, so they are found through /proc/PID/fd, not by name)."""
    total = 0
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found = entry.stat()
        except (FileNotFoundError, PermissionError):
            continue
        if stat.S_ISREG(found.st_mode):
            total += found.st_blocks * 512
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--source", type=Path, default=ROOT, help="the siray checkout to serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siray-bench-") as home:
        # the emulator's temporary files go under `spool`, so that what it holds can be counted
        spool = Path(home) / "spool"
        spool.mkdir()
        env = {**os.environ, "TMPDIR": str(spool), "PYTHONPATH": str(args.source.resolve())}
        emulator = subprocess.Popen(
            [sys.executable, "-m", "siray_cli", "emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=home,
        )
        try:
            assert emulator.stdout is not None
            lines = [emulator.stdout.readline().strip() for _ in range(5)]
            served = dict(
                line.removeprefix("export ").split("=", 1) for line in lines if "=" in line
            )
            client = {
                **os.environ,
                **served,
                "PYTHONPATH": str(ROOT),
                "SIRAY_DATA_DIR": f"{home}/d",
                "SIRAY_CACHE_DIR": f"{home}/c",
                "SIRAY_CONFIG_DIR": f"{home}/cf",
            }
            payload = Path(home) / "payload.bin"
            make_file(payload, args.mib)
            print(
                f"{args.files} uploads of {args.mib} MiB to `siray emulator` "
                f"(served from {args.source})"
            )
            print(f"  {'after':>8}{'RSS':>10}{'peak RSS':>12}{'on disk':>11}{'upload':>9}")
            start = status(emulator.pid)
            print(
                f"  {'start':>8}{start['VmRSS'] / 2**20:>6.0f} MiB{start['VmHWM'] / 2**20:>8.0f}"
                f" MiB{held_on_disk(emulator.pid) / 2**20:>7.0f} MiB"
            )
            for number in range(1, args.files + 1):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "siray_cli", "upload", str(payload)],
                    env=client,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=True,
                    cwd=home,
                )
                seconds = time.perf_counter() - started
                now = status(emulator.pid)
                print(
                    f"  {number:>8}{now['VmRSS'] / 2**20:>6.0f} MiB{now['VmHWM'] / 2**20:>8.0f}"
                    f" MiB{held_on_disk(emulator.pid) / 2**20:>7.0f} MiB{seconds:>7.1f} s"
                )
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
        left = [path for path in spool.rglob("*")]
        print(f"  left in its temporary directory after it stopped: {len(left)} entries")


if __name__ == "__main__":
    main()
