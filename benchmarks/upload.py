"""Upload benchmark: the same file to the same local S3 server (the emulator's store: moto behind
its proxy, on loopback) three ways in one run: `siray upload`, boto3's `upload_file` called
directly with default settings, and the official SDK's approach (sequential 8 MiB parts, as
`siray` 0.3.0 on PyPI does it). Prints the throughput of each and the ratios, then the peak RSS of
`siray upload` for a file twice as large. Each way runs --rounds times, in rotating order, after
a warm-up; the medians are compared.

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

import boto3
import httpx

from siray_cli.emulator.server import Emulator, EmulatorConfig

PART = 8 * 1024 * 1024


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(block[index % 7 :] + block[: index % 7])


def token(emulator: Emulator) -> dict:
    response = httpx.post(
        f"{emulator.url}/api/model-verse/sts-token",
        headers={"Authorization": f"API-KEY {emulator.config.api_key}"},
        timeout=60,
    )
    return response.json()["data"]


def client_for(data: dict):  # the SDKs' way: a plain boto3 client, default settings
    credentials = data["credentials"]
    return boto3.client(
        "s3",
        endpoint_url=data["upload_endpoint"],
        region_name=credentials["region"],
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["access_key_secret"],
        aws_session_token=credentials["security_token"],
    )


def siray_upload(emulator: Emulator, path: Path, home: str) -> tuple[float, int]:
    env = {
        **os.environ,
        **emulator.environment(),
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


def boto3_direct(emulator: Emulator, path: Path) -> float:
    data = token(emulator)
    client = client_for(data)
    started = time.perf_counter()
    client.upload_file(str(path), data["bucket_name"], data["upload_path"].lstrip("/") + "direct")
    return time.perf_counter() - started


def sequential_parts(emulator: Emulator, path: Path) -> float:
    data = token(emulator)
    client = client_for(data)
    bucket, key = data["bucket_name"], data["upload_path"].lstrip("/") + "sequential"
    started = time.perf_counter()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    with path.open("rb") as handle:
        number = 1
        while chunk := handle.read(PART):
            etag = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
            number += 1
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Emulator(EmulatorConfig(port=0)) as emulator, tempfile.TemporaryDirectory() as home:
        path = Path(home) / "payload.bin"
        make_file(path, args.mib)
        warm = Path(home) / "warm.bin"
        make_file(warm, 16)
        boto3_direct(emulator, warm)  # start the store and warm it before timing anything
        ways = {
            "siray": lambda: siray_upload(emulator, path, home)[0],
            "direct": lambda: boto3_direct(emulator, path),
            "sequential": lambda: sequential_parts(emulator, path),
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
            f"{args.mib} MiB to the emulator's S3 store (moto behind a proxy, loopback), "
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
