"""`siray upload` and local files as inputs, against the emulator's S3 store (moto, with
authentication on) through real boto3 transfers."""

from __future__ import annotations

import os

import httpx
import pytest
from helpers import NO_CERTIFICATES

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.media import render_png, sample_video

PART = str(5 * 1024 * 1024)


def store(server):
    return server.state.store


def read_back(url: str) -> bytes:
    response = httpx.get(url, verify=NO_CERTIFICATES)
    assert response.status_code == 200, url
    return response.content


def test_small_upload_reads_back_byte_for_byte(siray, emu, tmp_path):
    data = os.urandom(1000)
    (tmp_path / "photo.png").write_bytes(data)
    # an AWS profile of the user's is none of siray's business, even one that does not exist
    result = siray("upload", str(tmp_path / "photo.png"), env={"AWS_PROFILE": "nonexistent"})
    assert result.exit_code == 0, result
    (url,) = result.lines
    assert url.startswith(f"{emu.url}/uploads/user/123/") and url.endswith("-photo.png")
    assert read_back(url) == data


def test_multipart_upload_reads_back_and_leaves_no_parts(siray, emu, tmp_path):
    data = os.urandom(12 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(data)
    result = siray(
        "upload", str(tmp_path / "big.bin"), "--json", env={"SIRAY_UPLOAD_PART_SIZE": PART}
    )
    assert result.exit_code == 0, result
    (entry,) = result.json()
    assert entry["bytes"] == len(data) and entry["content_type"] == "application/octet-stream"
    assert read_back(entry["url"]) == data
    assert store(emu).multipart_uploads() == []


def stored(key: str):
    """moto's record of an object (the emulator runs moto in this process)."""
    from moto.s3.models import s3_backends

    from siray_cli.emulator.storage import BUCKET

    for backends in s3_backends.values():
        for backend in backends.values():
            bucket = backend.buckets.get(BUCKET)
            if bucket is not None and key in bucket.keys:
                return bucket.keys[key]
    raise AssertionError(f"{key} is not in the store")


def test_the_store_keeps_uploaded_bodies_on_disk_not_in_memory(siray, emu, tmp_path):
    """What the emulator is sent stays in unlinked temporary files (moto spools every body; a
    multipart upload is completed on disk by emulator/moto_disk.py), so its memory does not grow
    with the files it holds (benchmarks/emulator_memory.py measures it)."""
    from siray_cli.emulator import moto_disk

    big, small = os.urandom(5 * 1024 * 1024 + 17), os.urandom(100_000)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.bin").write_bytes(small)
    result = siray(
        "upload",
        str(tmp_path / "big.bin"),
        str(tmp_path / "small.bin"),
        "--json",
        env={"SIRAY_UPLOAD_PART_SIZE": PART},
    )
    assert result.exit_code == 0, result
    assert moto_disk.installed(), "moto changed: see emulator/moto_disk.py"
    for entry, data in zip(result.json(), (big, small), strict=True):
        key = stored(entry["url"].split("/uploads/", 1)[1])
        assert (key.multipart is not None) == (data is big)  # the big one came in parts
        body = key._value_buffer
        assert body._rolled, "the body is in memory"  # a file, not the spool's BytesIO
        body.flush()
        on_disk = os.fstat(body.fileno())
        assert on_disk.st_size == len(data) and on_disk.st_nlink == 0  # unlinked: gone at exit
        assert read_back(entry["url"]) == data


def test_the_store_keeps_no_request_once_answered(siray, emu, tmp_path):
    """In Flask's debug mode, which moto turns on, each request sits in a reference cycle with
    its body until the cyclic collector runs: hundreds of MB after a large upload."""
    import gc

    from moto.moto_server.werkzeug_app import BackendRequest

    (tmp_path / "photo.png").write_bytes(os.urandom(100_000))
    gc.collect()
    gc.disable()
    try:
        result = siray("upload", str(tmp_path / "photo.png"))
        assert result.exit_code == 0, result
        kept = [thing for thing in gc.get_objects() if isinstance(thing, BackendRequest)]
    finally:
        gc.enable()
    assert kept == []


def test_several_files_keep_argument_order_and_same_names_do_not_collide(siray, tmp_path):
    paths = []
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "same.txt"
        path.write_text(f"content of {folder}")
        paths.append(path)
    result = siray("upload", *map(str, paths), "--json")
    assert result.exit_code == 0, result
    entries = result.json()
    assert [e["file"] for e in entries] == list(map(str, paths))
    assert len({e["url"] for e in entries}) == 3
    assert [read_back(e["url"]).decode() for e in entries] == [
        "content of a",
        "content of b",
        "content of c",
    ]
    assert all(e["content_type"] == "text/plain" for e in entries)


def test_standard_input_takes_the_name_and_type_given(siray, emu):
    result = siray(
        "upload", "-", "--name", "notes.txt", "--content-type", "text/plain", input="piped bytes"
    )
    assert result.exit_code == 0, result
    assert result.stdout.strip().endswith("-notes.txt")
    assert read_back(result.stdout.strip()) == b"piped bytes"


def test_standard_input_is_named_and_typed_from_what_it_holds(siray, emu):
    # `echo hi | siray upload -` asks for --name/--content-type only when siray cannot guess,
    # and says the name it chose
    png = render_png("a pixel", seed=1, width=4, height=4)
    for given, data, name, content_type in (
        ((), b"hi\n", "stdin.txt", "text/plain"),
        ((), png, "stdin.png", "image/png"),
        ((), sample_video(), "stdin.mp4", "video/mp4"),
        (("--name", "notes.md"), b"# hi\n", "notes.md", "text/markdown"),
        (("--content-type", "image/png"), png, "stdin.png", "image/png"),
    ):
        result = siray("upload", "-", *given, "--json", input=data)
        assert result.exit_code == 0, result
        [entry] = result.json()
        assert entry["url"].endswith(f"-{name}") and entry["content_type"] == content_type
        assert read_back(entry["url"]) == data
        assert f"uploading standard input as {name} ({content_type})" in result.stderr
    before = store(emu).tokens_issued
    unknown = siray("upload", "-", input=bytes(range(256)) * 4)
    assert unknown.exit_code == 2, unknown
    assert "cannot tell what standard input (-) holds" in unknown.stderr
    assert "--name" in unknown.stderr and "--content-type" in unknown.stderr
    assert store(emu).tokens_issued == before


def test_bad_inputs_fail_before_anything_is_uploaded(siray, emu, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "big.png").write_bytes(b"x" * 100)
    (tmp_path / "ok.png").write_bytes(b"fine")
    (tmp_path / "folder").mkdir()
    before = store(emu).tokens_issued
    for argument, message in (
        ("missing.png", "missing.png: no such file"),
        (str(tmp_path / "folder"), "is a directory"),
        (str(tmp_path / "empty.png"), "empty.png: is empty"),
        (str(tmp_path / "big.png"), "over the limit of 50"),
    ):
        result = siray(
            "upload", str(tmp_path / "ok.png"), argument, env={"SIRAY_UPLOAD_MAX_SIZE": "50"}
        )
        assert result.exit_code == 2, result
        assert message in result.stderr and "nothing was uploaded" in result.stderr
        assert result.stdout == ""
    assert store(emu).tokens_issued == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_an_unreadable_file_fails_before_upload(siray, tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(b"x")
    path.chmod(0)
    result = siray("upload", str(path))
    assert result.exit_code == 2 and "not readable" in result.stderr


def test_an_injected_part_failure_aborts_the_multipart_upload(siray, emu, tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(11 * 1024 * 1024))
    emu.state.faults.add(Fault(action="status", status=500, path=r"partNumber=2", count=0))
    result = siray(
        "upload", str(tmp_path / "big.bin"), "--json", env={"SIRAY_UPLOAD_PART_SIZE": PART}
    )
    assert result.exit_code == 5, result
    assert "uploading" in result.stderr and "failed" in result.stderr
    assert result.json()["error"]["type"] == "upload_error"
    assert store(emu).multipart_uploads() == []


def test_an_expired_token_is_replaced_and_the_upload_goes_on(siray, make_emulator, tmp_path):
    server = make_emulator(sts_token_requests=1)
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_text(name)
    result = siray("upload", str(tmp_path / "one.txt"), str(tmp_path / "two.txt"), server=server)
    assert result.exit_code == 0, result
    assert [read_back(url) for url in result.lines] == [b"one.txt", b"two.txt"]
    assert store(server).tokens_issued >= 2


@pytest.mark.parametrize(
    ("mode", "code"), [("bad-secret", "SignatureDoesNotMatch"), ("no-token", "InvalidAccessKeyId")]
)
def test_credentials_the_store_refuses_exit_5_without_showing_them(
    siray, make_emulator, tmp_path, mode, code
):
    server = make_emulator(sts_mode=mode)
    (tmp_path / "x.txt").write_text("x")
    result = siray("--debug", "upload", str(tmp_path / "x.txt"), server=server)
    assert result.exit_code == 5, result
    assert code in result.stderr and "Traceback" not in result.stderr
    issued = store(server).issued[-1]
    for secret in (
        issued["access_key_secret"],
        issued["access_key_secret"][5:],
        issued["security_token"],
    ):
        assert secret not in result.stdout + result.stderr


def test_no_secret_appears_under_debug(siray, emu, tmp_path):
    (tmp_path / "x.txt").write_text("x")
    result = siray("--debug", "upload", str(tmp_path / "x.txt"), "--json")
    assert result.exit_code == 0, result
    issued = store(emu).issued[-1]
    everything = result.stdout + result.stderr
    assert issued["access_key_secret"] not in everything
    assert issued["security_token"] not in everything
    assert emu.config.api_key not in everything
    assert "POST " in result.stderr and "sts-token -> 200" in result.stderr


def test_a_local_image_flows_through_upload_into_a_run(siray, emu, tmp_path):
    (tmp_path / "input.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    result = siray(
        "run",
        "black-forest-labs/flux-kontext-i2i-max",
        "make it blue",
        "--image",
        str(tmp_path / "input.png"),
        "--json",
    )
    assert result.exit_code == 0, result
    task = emu.state.tasks[result.json()["task_id"]]
    url = task.body["image"]
    assert url.startswith(f"{emu.url}/uploads/user/123/")
    assert read_back(url) == (tmp_path / "input.png").read_bytes()


def test_at_path_uploads_any_field_and_double_at_is_literal(siray, emu, tmp_path):
    (tmp_path / "style.png").write_bytes(b"style bytes")
    result = siray(
        "generate",
        "ideogram/ideogram-v3-turbo-i2i",
        "poster",
        "-i",
        "aspect_ratio=1:1",
        "-i",
        "image=https://example.com/a.png",
        "-i",
        f"style_reference_images=@{tmp_path / 'style.png'}",
        "-i",
        "mask=@@not-a-file",
    )
    assert result.exit_code == 0, result
    body = max(emu.state.tasks.values(), key=lambda t: t.created).body
    (reference,) = body["style_reference_images"]
    assert read_back(reference) == b"style bytes"
    assert body["mask"] == "@not-a-file"


def test_a_missing_local_input_fails_before_anything_is_sent(siray, emu):
    before = (store(emu).tokens_issued, len(emu.state.tasks))
    result = siray(
        "generate", "google/gemini-2.5-flash-image-i2i", "edit", "--image", "nowhere.png"
    )
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert (store(emu).tokens_issued, len(emu.state.tasks)) == before


def test_large_inline_files_warn(siray, emu, tmp_path):
    (tmp_path / "huge.png").write_bytes(b"\x89PNG" + b"x" * (5 * 1024 * 1024))
    result = siray(
        "generate",
        "google/gemini-2.5-flash-image-i2i",
        "edit",
        "--image",
        str(tmp_path / "huge.png"),
        "--inline",
    )
    assert result.exit_code == 0, result
    assert "sent inline as a data URL" in result.stderr


def test_uploaded_file_names_cannot_escape(siray, emu, tmp_path):
    result = siray(
        "upload", "-", "--name", "../../etc/passwd", "--content-type", "text/plain", input="x"
    )
    assert result.exit_code == 0, result
    url = result.stdout.strip()
    name = url.split("/uploads/user/123/", 1)[1]
    assert "/" not in name and name.endswith("-_.._etc_passwd")
