"""Upload benchmark: the same file to the same local S3 server (the emulator's store: moto behind
its proxy, on loopback, over https as the real store is) three ways in one run: `siray upload`,
boto3's `upload_file` called directly with default settings, and the official SDK's approach
(sequential 8 MiB parts, as `siray` 0.3.0 on PyPI does it), each in a process of its own that
fetches its token (as `siray upload` does). Prints the throughput of each and the ratios, then
the peak RSS of `siray upload` for a file twice as large. Each way runs --rounds times, in
rotating order, after a warm-up; the medians are compared.

    python benchmarks/upload.py [--mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PART = 8 * 1024 * 1024


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(block[index % 7 :] + block[: index % 7])


class Emulator:
    """`siray emulator` in its own process, so the store's work does not share this one's GIL
    (nor inflate the memory of the processes this one starts)."""

    def __enter__(self) -> Emulator:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "siray_cli", "emulator", "--port", "0", "--tls"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        lines = [self.process.stdout.readline().strip() for _ in range(4)]
        self.env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        self.url = self.env["SIRAY_BASE_URL"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def token(emulator: Emulator) -> dict:
    response = httpx.post(
        f"{emulator.url}/api/model-verse/sts-token",
        headers={"Authorization": f"API-KEY {emulator.env['SIRAY_API_KEY']}"},
        timeout=60,
        verify=emulator.env["SSL_CERT_FILE"],
    )
    return response.json()["data"]


def siray_upload(emulator: Emulator, path: Path, home: str) -> tuple[float, int]:
    env = {
        **os.environ,
        **emulator.env,
        "SIRAY_DATA_DIR": f"{home}/d",
        "SIRAY_CACHE_DIR": f"{home}/c",
        "SIRAY_CONFIG_DIR": f"{home}/cf",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "siray_cli", "upload", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"siray upload failed: {process.stderr.read().decode()}")  # type: ignore[union-attr]
    return elapsed, usage.ru_maxrss * 1024


WAYS = {
    "direct": """
client.upload_file(path, data["bucket_name"], data["upload_path"].lstrip("/") + "direct")
""",
    "sequential": """
bucket, key = data["bucket_name"], data["upload_path"].lstrip("/") + "sequential"
upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
parts = []
with open(path, "rb") as handle:
    number = 1
    while chunk := handle.read(8 * 1024 * 1024):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                  Body=chunk)["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
        number += 1
client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                 MultipartUpload={"Parts": parts})
""",
}
PRELUDE = """
import os, sys, boto3, httpx
path = sys.argv[1]
env = os.environ
data = httpx.post(env["SIRAY_GATEWAY_URL"] + "/api/model-verse/sts-token",
                  headers={"Authorization": "API-KEY " + env["SIRAY_API_KEY"]},
                  verify=env["SSL_CERT_FILE"], timeout=60).json()["data"]
c = data["credentials"]
client = boto3.client("s3", endpoint_url=data["upload_endpoint"], region_name=c["region"],
                      aws_access_key_id=c["access_key_id"],
                      aws_secret_access_key=c["access_key_secret"],
                      aws_session_token=c["security_token"], verify=env["SSL_CERT_FILE"])
"""


def sdk_way(emulator: Emulator, name: str, path: Path) -> float:
    """One of the SDKs' ways, in a process of its own like `siray upload` (token included)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PRELUDE + WAYS[name], str(path)],
        env={**os.environ, **emulator.env},
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Emulator() as emulator, tempfile.TemporaryDirectory() as home:
        path = Path(home) / "payload.bin"
        make_file(path, args.mib)
        warm = Path(home) / "warm.bin"
        make_file(warm, 16)
        sdk_way(emulator, "direct", warm)  # start the store and warm it before timing anything
        ways = {
            "siray": lambda: siray_upload(emulator, path, home)[0],
            "direct": lambda: sdk_way(emulator, "direct", path),
            "sequential": lambda: sdk_way(emulator, "sequential", path),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for round_number in range(args.rounds):
            for name in names[round_number % 3 :] + names[: round_number % 3]:
                times[name].append(ways[name]())
        siray_time, direct_time, sequential_time = (
            statistics.median(times[name]) for name in names
        )
        size = args.mib
        print(
            f"{args.mib} MiB to the emulator's S3 store (moto behind a proxy, https on loopback), "
            f"median of {args.rounds}"
        )
        for name, seconds in (
            ("siray upload", siray_time),
            ("boto3 upload_file", direct_time),
            ("sequential 8 MiB parts", sequential_time),
        ):
            print(f"  {name:<24}{seconds:>7.2f} s {size / seconds:>8.1f} MiB/s")
        print(f"  siray / boto3 direct      {direct_time / siray_time:>7.2f} x (target >= 0.95)")
        print(f"  siray / sequential        {sequential_time / siray_time:>7.2f} x (target >= 2)")
        path.unlink()
        big = Path(home) / "double.bin"
        make_file(big, 2 * args.mib)
        seconds, peak = siray_upload(emulator, big, home)
        print(
            f"  siray upload of {2 * args.mib} MiB: {seconds:.2f} s, peak RSS "
            f"{peak / 1048576:.0f} MiB (target < 150)"
        )


if __name__ == "__main__":
    main()
