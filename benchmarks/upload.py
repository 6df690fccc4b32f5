"""Upload benchmark: the same file to the same local S3 server (the emulator's store: moto behind
its proxy, on loopback, over https as the real store is), four ways, each in a process of its own
that first fetches its upload token from the gateway (as `siray upload` does):

- `siray upload`;
- boto3 like siray, the main comparison: boto3's `upload_file` with siray's settings, read from
  siray itself (the client configuration `siray_cli.providers.siray.upload.s3_client` builds:
  checksums only when required, payload signing off, path-style addressing, SigV4, standard
  retries, its connection pool; and its transfer settings: the default part size as threshold
  and part size, MAX_PARALLEL parts at once). Goal: siray at least 0.95 x its throughput;
- boto3 defaults: `upload_file` as boto3 ships (8 MiB parts, 10 threads, a CRC32 of every part);
- sequential 8 MiB parts, one after another, as the official SDK (`siray` 0.3.0 on PyPI) does.

Each way runs --rounds times (7 by default), the order rotating each round, after a warm-up of
each with a small file; it prints the median and the range (min-max) of each, side by side, and
the ratios paired round by round. Two times are kept apart: the transfer, measured inside the
process, from holding the token with boto3 imported to the last byte acknowledged (the S3 client
is built within it, as siray builds its own there); and the whole process, measured outside it
(Python's start-up, imports, the token request, the transfer; siray's own start-up, Typer and its
command, is benchmarks/startup.py's subject). Then the peak RSS of `siray upload`
for a file twice as large. siray's transfer time comes from a small driver that runs siray's own
entry point with `Uploader._round` (client plus transfer) wrapped in a timer, after importing boto3
as the boto3 ways do before their clock starts. The source is byte-compiled first (compileall),
as a wheel install has it.

    python benchmarks/upload.py [--mib 256] [--rounds 7]

Notes: why the emulator caps every way, and why only the ratios carry over to the real store.

- moto is one Python process (the emulator's, sharing it with the API and the proxy): every part
  of every connection is parsed by Werkzeug and Flask, hashed for its ETag (MD5) and written to a
  temporary file under one interpreter lock. However many parts a client sends at once, the store
  does about one core's worth of Python work at a time, and on a 2-core machine the client process
  competes with it for the other core.
- The proxy in front of moto (`siray_cli/emulator/storage.py`, there to expire tokens and inject
  faults) reads each request's whole body, a whole 8 MiB part, before it opens a connection to
  moto (a new one for every request) and forwards it, and reads moto's whole answer before it
  replies: the two hops never overlap, and a part is decrypted, buffered and copied once more on
  the way.
- When a multipart upload completes, moto joins the parts into the object (on disk, in the
  emulator: `siray_cli/emulator/moto_disk.py`) and computes a checksum of the whole object when
  the client declared none (CRC64NVME, or CRC32 without awscrt installed): one more pass over
  every byte, after the last part, while the client waits. siray and "boto3 like siray" declare none
  (checksums only when required); boto3's defaults declare CRC32, and moto then computes a
  checksum of each part at completion (a COMPOSITE one) instead: every way pays a pass at the end.

The real store is many machines: none of these caps applies, and the MiB/s printed here say
nothing about it. The same caps weigh on every way alike, so the ratios are what to read.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as handle:
        for index in range(mib):
            handle.write(block[index % 7 :] + block[: index % 7])


def siray_settings() -> dict:
    """siray's S3 client configuration and transfer settings, read from siray itself."""
    from siray_cli.domain import UploadToken
    from siray_cli.providers.siray.upload import MAX_PARALLEL, s3_client
    from siray_cli.settings import KEYS

    token = UploadToken("id", "secret", "", "us-east-1", "b", "/", "https://127.0.0.1:9", "x")
    config = s3_client(token).meta.config
    part = int(KEYS["upload_part_size"].default or 0)
    return {
        "client": {
            name: getattr(config, name)
            for name in (
                "signature_version",
                "s3",
                "retries",
                "request_checksum_calculation",
                "response_checksum_validation",
                "max_pool_connections",
            )
        },
        "transfer": {
            "multipart_threshold": part,
            "multipart_chunksize": part,
            "max_concurrency": MAX_PARALLEL,
            "use_threads": True,
        },
    }


class Emulator:
    """`siray emulator` in its own process, so the store's work does not share this one's GIL
    (nor inflate the memory of the processes this one starts)."""

    def __init__(self, spool: str) -> None:
        self.spool = spool

    def __enter__(self) -> Emulator:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "siray_cli", "emulator", "--port", "0", "--tls"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TMPDIR": self.spool},  # what it stores goes there (unlinked)
        )
        assert self.process.stdout is not None
        self.env = {}
        while "SSL_CERT_FILE" not in self.env:  # the last of the variables it prints
            line = self.process.stdout.readline().strip()
            if not line:
                raise SystemExit("the emulator did not start")
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value
        self.url = self.env["SIRAY_BASE_URL"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# each way is a script run as `python -c SCRIPT FILE REPORT SETTINGS`; it writes the seconds its
# transfer took to REPORT
SIRAY = """
import sys, time
import boto3.s3.transfer, botocore.session, s3transfer.manager  # as the boto3 ways, off the clock
from siray_cli.providers.siray import upload
spent = []
round_ = upload.Uploader._round
def timed(*args, **kwargs):
    started = time.perf_counter()
    try:
        return round_(*args, **kwargs)
    finally:
        spent.append(time.perf_counter() - started)
upload.Uploader._round = timed
from siray_cli.main import main
path, report = sys.argv[1], sys.argv[2]
sys.argv = ["siray", "upload", path]
code = main()
with open(report, "w") as handle:
    handle.write(str(sum(spent)))
raise SystemExit(code)
"""
PRELUDE = """
import json, os, sys, time, httpx
path, report, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
env = os.environ
data = httpx.post(env["SIRAY_GATEWAY_URL"] + "/api/model-verse/sts-token",
                  headers={"Authorization": "API-KEY " + env["SIRAY_API_KEY"]},
                  verify=env["SSL_CERT_FILE"], timeout=60).json()["data"]
c = data["credentials"]
bucket = data["bucket_name"]
key = data["upload_path"].lstrip("/") + os.urandom(6).hex() + "-" + os.path.basename(path)
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
started = time.perf_counter()
"""
CLIENT = """
client = boto3.client("s3", endpoint_url=data["upload_endpoint"], region_name=c["region"],
                      aws_access_key_id=c["access_key_id"],
                      aws_secret_access_key=c["access_key_secret"],
                      aws_session_token=c["security_token"], verify=env["SSL_CERT_FILE"],
                      config=Config(**settings["client"]) if settings else None)
"""
POSTLUDE = """
with open(report, "w") as handle:
    handle.write(str(time.perf_counter() - started))
"""
WAYS = {
    "boto3 like siray": CLIENT
    + """
client.upload_file(path, bucket, key, ExtraArgs={"ContentType": "application/octet-stream"},
                   Config=TransferConfig(**settings["transfer"]))
""",
    "boto3 defaults": CLIENT
    + """
client.upload_file(path, bucket, key)
""",
    "sequential 8 MiB parts": CLIENT
    + """
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


@dataclass
class Run:
    transfer: float  # seconds, measured inside the process
    whole: float  # seconds, the process from start to exit
    peak: int  # bytes of resident memory at most


def run(script: str, path: Path, settings: dict | None, env: dict[str, str], home: str) -> Run:
    report = Path(home) / "report"
    report.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(report), json.dumps(settings)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=home,
    )
    _, status, usage = os.wait4(process.pid, 0)
    whole = time.perf_counter() - started
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if status != 0 or not report.exists():
        raise SystemExit(f"an upload failed:\n{errors}")
    return Run(float(report.read_text()), whole, usage.ru_maxrss * 1024)


def spread(values: list[float], unit: str = " s") -> str:
    """The median and the range."""
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "siray_cli", quiet=1)
    settings = siray_settings()
    with tempfile.TemporaryDirectory(prefix="siray-bench-") as home:
        spool = Path(home) / "store"
        spool.mkdir()
        with Emulator(str(spool)) as emulator:
            env = {
                **os.environ,
                **emulator.env,
                "PYTHONPATH": str(ROOT),
                "SIRAY_DATA_DIR": f"{home}/d",
                "SIRAY_CACHE_DIR": f"{home}/c",
                "SIRAY_CONFIG_DIR": f"{home}/cf",
            }
            ways: dict[str, Callable[[Path], Run]] = {
                "siray upload": lambda path: run(SIRAY, path, None, env, home),
                "boto3 like siray": lambda path: run(
                    PRELUDE + WAYS["boto3 like siray"] + POSTLUDE, path, settings, env, home
                ),
                "boto3 defaults": lambda path: run(
                    PRELUDE + WAYS["boto3 defaults"] + POSTLUDE, path, None, env, home
                ),
                "sequential 8 MiB parts": lambda path: run(
                    PRELUDE + WAYS["sequential 8 MiB parts"] + POSTLUDE, path, None, env, home
                ),
            }
            warm = Path(home) / "warm.bin"
            make_file(warm, 16)
            for way in ways.values():  # the store started, every way's files in the page cache
                way(warm)
            path = Path(home) / "payload.bin"
            make_file(path, args.mib)
            runs: dict[str, list[Run]] = {name: [] for name in ways}
            names = list(ways)
            for number in range(args.rounds):
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    runs[name].append(ways[name](path))
            report(args, settings, runs)
            path.unlink()
            big = Path(home) / "double.bin"
            make_file(big, 2 * args.mib)
            double = ways["siray upload"](big)
            print(
                f"  siray upload of {2 * args.mib} MiB: transfer {double.transfer:.2f} s, whole "
                f"{double.whole:.2f} s, peak RSS {double.peak / MiB:.0f} MiB (target < 150)"
            )


def report(args: argparse.Namespace, settings: dict, runs: dict[str, list[Run]]) -> None:
    client, transfer = settings["client"], settings["transfer"]
    print(
        f"{args.mib} MiB to the emulator's S3 store (moto behind its proxy, https on loopback), "
        f"{args.rounds} round(s) in rotating order after a warm-up; median (min-max)"
    )
    print(
        f"siray's settings, also those of boto3 like siray: "
        f"{transfer['multipart_chunksize'] // MiB} MiB parts, {transfer['max_concurrency']} at "
        f"once, checksums {client['request_checksum_calculation']}, payload signing "
        f"{'on' if client['s3'].get('payload_signing_enabled') else 'off'}, "
        f"{client['s3'].get('addressing_style')}-style, {client['signature_version']}"
    )
    print(
        f"  {'':<24}{'transfer (in the process)':<27}{'MiB/s':>7}   "
        f"{'whole process':<23}{'peak RSS':>9}"
    )
    for name, measured in runs.items():
        transfers = [r.transfer for r in measured]
        print(
            f"  {name:<24}{spread(transfers):<27}{args.mib / statistics.median(transfers):>7.1f}"
            f"   {spread([r.whole for r in measured]):<23}"
            f"{statistics.median(r.peak for r in measured) / MiB:>5.0f} MiB"
        )
    print("  siray's speed against each, paired round by round (its time / siray's):")
    siray = runs["siray upload"]
    for name, goal in (
        ("boto3 like siray", "goal >= 0.95"),
        ("boto3 defaults", ""),
        ("sequential 8 MiB parts", "target >= 2"),
    ):
        paired = [o.transfer / s.transfer for s, o in zip(siray, runs[name], strict=True)]
        whole = [o.whole / s.whole for s, o in zip(siray, runs[name], strict=True)]
        print(
            f"    {name:<24}transfer {spread(paired, ' x'):<22}whole process "
            f"{spread(whole, ' x')}" + (f"  ({goal})" if goal else "")
        )


if __name__ == "__main__":
    main()
