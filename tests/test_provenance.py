"""What made a file, and that request again: a PNG siray saves carries its record (an iTXt chunk,
its pixels untouched), every saved file is known to the history by its SHA-256, `siray info`
reads either, and `siray rerun FILE|TASK_ID` submits the same request as one new task."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from helpers import (
    CREATE,
    NO_CERTIFICATES,
    STATUS,
    created,
    database,
    png_as_sent,
    png_chunks,
    png_pixels,
    recorded_ids,
    run_in_terminal,
    siray_command,
    start,
    write_jobs,
)
from helpers import Z_IMAGE as MODEL
from hostile import HostileServer, status_document, task_created

from siray_cli.emulator import media

VIDEO = "kuaishou/kling-2.6-pro-t2v"
OTHER = "google/gemini-2.5-flash-image-t2i"  # takes a prompt only
I2I = "google/gemini-2.5-flash-image-i2i"  # takes a prompt and an image
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\r\nerror: forged line\u202egnp.exe\u200b"


def made(siray, prompt: str, *extra: str) -> tuple[Path, dict]:
    """`run MODEL PROMPT -o out --json`: the one file saved, and the run's JSON document."""
    result = siray("run", MODEL, prompt, "-i", "size=1024x768", "-o", "out", "--json", *extra)
    assert result.exit_code == 0, result
    document = result.json()
    (path,) = [Path(p) for p in document["files"]]
    return path, document


def sent(url: str) -> bytes:
    """The file as the server sends it."""
    return httpx.get(url, follow_redirects=True, verify=NO_CERTIFICATES).content


def record_of(data: bytes) -> dict:
    """The `siray` record a PNG carries: an iTXt chunk right after IHDR, uncompressed UTF-8."""
    chunks = png_chunks(data)
    kind, body = chunks[1]
    assert kind == b"iTXt" and body.startswith(b"siray\0\0\0\0\0"), chunks[1]
    return json.loads(body[len(b"siray\0\0\0\0\0") :].decode("utf-8"))


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def info(siray, *args: str):
    result = siray("info", *args, "--json")
    assert result.exit_code == 0, result
    return [json.loads(line) for line in result.lines]


# -- the record a file carries --------------------------------------------------------------------


def test_a_png_from_run_carries_its_request_and_keeps_its_pixels(siray, emu):
    path, document = made(siray, "a provenance fox", "-i", "seed=11")
    data = path.read_bytes()
    original = sent(document["outputs"][0])
    record = record_of(data)
    assert record["task_id"] == document["task_id"]
    assert record["provider"] == "siray" and record["model"] == MODEL
    assert record["prompt"] == "a provenance fox"
    assert record["inputs"] == {"size": "1024x768", "seed": 11}
    assert record["kind"] == "image" and record["output"] == 1
    assert record["siray_version"] and record["created"].endswith("Z")
    # every chunk's CRC holds, the pixels are the server's, and every other byte is too
    assert png_pixels(data) == png_pixels(original)
    assert [c for c in png_chunks(data) if c[0] != b"iTXt"] == png_chunks(original)
    assert png_as_sent(data) == original
    # no key, no host (a URL may carry credentials)
    assert emu.config.api_key.encode() not in data and emu.url.encode() not in data


def test_info_reads_a_file_from_run_on_a_pipe_and_as_json(siray, isolated_environment):
    path, document = made(siray, "an info owl", "-i", "seed=3")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (found,) = info(siray, str(path))
    assert found["source"] == "embedded" and found["file"] == str(path)
    assert found["task_id"] == document["task_id"] and found["sha256"] == digest
    assert (found["model"], found["prompt"]) == (MODEL, "an info owl")
    assert found["inputs"] == {"size": "1024x768", "seed": 3}
    human = siray("info", str(path))
    assert human.exit_code == 0, human
    assert human.lines[0] == str(path)
    shown = dict(line.strip().split(": ", 1) for line in human.lines[1:])
    assert shown["task"].strip() == document["task_id"]
    assert shown["prompt"].strip() == "an info owl"
    assert shown["inputs"].strip() == "size=1024x768 seed=3"
    assert shown["sha256"].strip() == digest
    # the history knows the file by its bytes, as saved
    with sqlite3.connect(database(isolated_environment)) as db:
        files = db.execute("SELECT path, sha256 FROM files").fetchall()
    assert (str(path.resolve()), digest) in files


def test_info_round_trips_the_files_of_a_batch(siray, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "a batch heron", "name": "heron", "inputs": {"size": "1024x768"}},
        {"prompt": "a batch crane", "name": "crane", "inputs": {"size": "768x1024", "seed": 4}},
    )
    result = siray("run", "--batch", str(jobs), "-m", MODEL, "-o", "shots", "--json")
    assert result.exit_code == 0, result
    lines = [json.loads(line) for line in result.lines]
    results = {r["name"]: r for r in lines if r.get("type") == "result"}
    assert set(results) == {"heron", "crane"}
    found = info(siray, results["heron"]["files"][0], results["crane"]["files"][0])
    assert [f["task_id"] for f in found] == [
        results["heron"]["task_id"],
        results["crane"]["task_id"],
    ]
    assert [f["prompt"] for f in found] == ["a batch heron", "a batch crane"]
    assert [f["source"] for f in found] == ["embedded", "embedded"]
    assert found[1]["inputs"] == {"size": "768x1024", "seed": 4}
    for one in found:
        png_chunks(Path(one["file"]).read_bytes())  # every CRC holds


def test_a_video_is_saved_byte_for_byte_and_known_by_its_hash(siray):
    result = siray("run", VIDEO, "provenance waves", "-i", "duration=5", "-o", "v", "--json")
    assert result.exit_code == 0, result
    (path,) = [Path(p) for p in result.json()["files"]]
    assert path.read_bytes() == sent(result.json()["outputs"][0]) == media.sample_video()
    (found,) = info(siray, str(path))
    assert found["source"] == "history" and found["task_id"] == result.json()["task_id"]
    assert found["prompt"] == "provenance waves" and found["saved_as"] == str(path.resolve())


JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\x11" * 64
    + b"\xff\xd9"
)


def serving(body: bytes, content_type: str):
    def answer(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def finished_task(server: HostileServer, task_id: str, body: bytes, content_type: str) -> None:
    """A fake Siray API whose task `task_id` succeeds at once with one output, `body`."""
    server.on("POST", CREATE, task_created(task_id))
    server.on(
        "GET", STATUS.format(task_id), status_document(task_id, outputs=[server.url + "/out"])
    )
    server.on("GET", "/out", serving(body, content_type))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(JPEG, "image/jpeg"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")],
    ids=["jpeg", "malformed png"],
)
def test_a_jpeg_or_a_malformed_png_is_saved_as_sent_and_known_by_its_hash(
    siray, body, content_type
):
    server = HostileServer()
    finished_task(server, "image_asis", body, content_type)
    with server.running():
        result = siray("run", MODEL, "as sent", "--no-validate", "-o", "out", env=server.env())
    assert result.exit_code == 0, result
    (path,) = [Path(p) for p in result.lines]
    assert path.read_bytes() == body
    (found,) = info(siray, str(path))
    assert found["source"] == "history" and found["task_id"] == "image_asis"


# -- the history, by hash -----------------------------------------------------------------------


def test_a_file_whose_record_was_stripped_is_found_by_its_hash(siray, tmp_path):
    path, document = made(siray, "a stripped lynx")
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    moved.write_bytes(png_as_sent(path.read_bytes()))
    (found,) = info(siray, str(moved))
    assert found["source"] == "history" and found["task_id"] == document["task_id"]
    assert found["prompt"] == "a stripped lynx" and found["saved_as"] == str(path.resolve())
    assert found["sha256"] == hashlib.sha256(moved.read_bytes()).hexdigest()
    human = siray("info", str(moved))
    assert "the history, by SHA-256" in human.stdout and str(path.resolve()) in human.stdout
    # forgotten with its task: the file is no longer known, the one with its record still is
    assert siray("history", "forget", document["task_id"]).exit_code == 0
    assert siray("info", str(moved)).exit_code == 2
    assert info(siray, str(path))[0]["task_id"] == document["task_id"]


def test_a_file_siray_did_not_make_exits_2_with_one_line(siray, tmp_path):
    stranger = tmp_path / "stranger.png"
    stranger.write_bytes(media.render_png("not ours", 1, 8, 8))
    result = siray("info", str(stranger))
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {stranger}: not made by siray (it carries no siray record, and the history "
        "knows no file with its SHA-256)"
    ]
    missing = siray("info", str(tmp_path / "missing.png"), "--json")
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1
    assert missing.json()["error"]["type"] == "usage_error"


# -- rerun ----------------------------------------------------------------------------------------


def body_of(emu, task_id: str) -> dict:
    return dict(emu.state.tasks[task_id].body)


def test_rerun_of_a_file_submits_the_same_body_once_with_the_overrides(siray, emu):
    path, document = made(siray, "a rerun fox", "-i", "seed=5")
    assert created(emu, "a rerun fox") == 1
    again = siray("rerun", str(path), "--json")
    assert again.exit_code == 0, again
    assert created(emu, "a rerun fox") == 2
    assert "a new task (paid again)" in again.stderr
    rerun_id = again.json()["task_id"]
    assert rerun_id != document["task_id"]
    assert body_of(emu, rerun_id) == body_of(emu, document["task_id"])
    # overrides on top: a new seed, and another model (the inputs it does not take left out)
    seeded = siray("rerun", str(path), "-i", "seed=7", "-o", "again", "--json")
    assert seeded.exit_code == 0, seeded
    assert body_of(emu, seeded.json()["task_id"]) == {**body_of(emu, rerun_id), "seed": 7}
    (saved,) = seeded.json()["files"]
    assert record_of(Path(saved).read_bytes())["inputs"]["seed"] == 7
    other = siray("rerun", str(path), "--model", OTHER, "--prompt", "an other fox", "--json")
    assert other.exit_code == 0, other
    assert body_of(emu, other.json()["task_id"]) == {"model": OTHER, "prompt": "an other fox"}
    assert "takes no size, seed: left out" in other.stderr
    # one task per rerun, never more
    assert (created(emu, "a rerun fox"), created(emu, "an other fox")) == (3, 1)


def test_rerun_of_a_task_id_and_of_a_task_not_handed_over_pays_for_a_new_one(siray, emu):
    task_id = siray("generate", MODEL, "a rerun by id", "-i", "size=1024x768").stdout.strip()
    again = siray("rerun", task_id, "--json")
    assert again.exit_code == 0, again
    assert created(emu, "a rerun by id") == 2
    assert body_of(emu, again.json()["task_id"]) == body_of(emu, task_id)
    # a run that timed out is followed by `run` again; `rerun` pays for a new task instead
    timed_out = siray("run", MODEL, "a rerun [hold]", "-i", "size=1024x768", "--timeout", "0.3")
    assert timed_out.exit_code == 4, timed_out
    held = next(t for t in emu.state.tasks.values() if t.body["prompt"] == "a rerun [hold]")
    dry = siray("rerun", held.task_id, "--dry-run")
    assert dry.exit_code == 0 and '"prompt": "a rerun [hold]"' in dry.stdout
    assert created(emu, "a rerun [hold]") == 1  # (the dry run sent nothing)
    paid = siray("rerun", held.task_id, "--timeout", "0.3")
    assert paid.exit_code == 4 and created(emu, "a rerun [hold]") == 2, paid


def test_rerun_refuses_what_it_cannot_send_again(siray, tmp_path):
    unknown = siray("rerun", "image_nowhere")
    assert unknown.exit_code == 2 and "neither a file nor a task in the history" in unknown.stderr
    path, _ = made(siray, "a provider fox")
    elsewhere = siray("rerun", str(path), env={"SIRAY_PROVIDER": "higgsfield"})
    assert elsewhere.exit_code == 2, elsewhere
    assert "made with siray" in elsewhere.stderr and "--provider siray" in elsewhere.stderr


def test_an_interrupted_rerun_keeps_its_task_and_says_how_to_resume(
    siray, emu, isolated_environment
):
    task_id = siray("generate", MODEL, "a rerun to interrupt [hold]", "-i", "size=1024x768")
    assert task_id.exit_code == 0, task_id
    process = start(emu, "rerun", task_id.stdout.strip())
    assert process.stderr is not None
    said = [process.stderr.readline(), process.stderr.readline()]
    assert "a new task (paid again)" in said[0] and "submitted" in said[1], said
    new_id = said[1].split()[1]
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert f"siray status {new_id} --wait" in stderr and "Traceback" not in stderr
    assert stdout == "" and new_id in emu.state.tasks
    assert new_id in recorded_ids(isolated_environment)


def test_a_file_sent_inline_keeps_no_bytes_of_it_and_is_not_sent_again_without_it(siray, tmp_path):
    picture = tmp_path / "in.png"
    picture.write_bytes(media.render_png("an input", 3, 8, 8))
    result = siray("run", I2I, "an inline edit", "--image", str(picture), "--inline", "-o", "out")
    assert result.exit_code == 0, result
    data = Path(result.stdout.strip()).read_bytes()
    recorded = record_of(data)["inputs"]["image"]
    assert recorded == f"<data:image/png, {picture.stat().st_size} bytes>"
    assert b"base64" not in data
    refused = siray("rerun", result.stdout.strip())
    assert refused.exit_code == 2, refused
    assert "sent inline" in refused.stderr and "-i image=@FILE" in refused.stderr
    again = siray("rerun", result.stdout.strip(), "-i", f"image=@{picture}", "--json")
    assert again.exit_code == 0, again


def test_a_task_fetched_by_id_without_its_request_is_told_but_not_rerun(siray):
    generated = siray("--no-history", "generate", MODEL, "an unrecorded fox", "-i", "size=1024x768")
    assert generated.exit_code == 0, generated
    task_id = generated.stdout.strip()
    fetched = siray("status", task_id, "--wait", "-o", "out")
    assert fetched.exit_code == 0, fetched
    (path,) = Path("out").iterdir()
    (found,) = info(siray, str(path))
    assert (found["task_id"], found["prompt"], found["inputs"]) == (task_id, None, None)
    assert "prompt:   (not recorded)" in siray("info", str(path)).stdout
    refused = siray("rerun", str(path))
    assert refused.exit_code == 2 and "holds no request to send again" in refused.stderr


# -- hostile files and servers -------------------------------------------------------------------


def forged(record: dict) -> bytes:
    """A well-formed PNG that carries a `siray` record someone else wrote."""
    original = media.render_png("forged", 2, 8, 8)
    text = b"siray\0\0\0\0\0" + json.dumps(record).encode()
    return original[:33] + chunk(b"iTXt", text) + original[33:]


EVIL = {"task_id": "image_" + HOSTILE, "provider": "siray", "model": HOSTILE, "prompt": HOSTILE}


def test_a_forged_record_reaches_neither_a_pipe_nor_a_terminal_raw(siray, tmp_path):
    path = tmp_path / "forged.png"
    path.write_bytes(forged({**EVIL, "inputs": {HOSTILE: HOSTILE}}))
    result = siray("info", str(path))
    assert result.exit_code == 0, result
    everything = result.stdout + result.stderr
    assert not any(c in everything for c in "\x1b\r\x07\u202e\u200b")
    assert not any(line.startswith("error: forged") for line in everything.splitlines())
    assert info(siray, str(path))[0]["prompt"] == HOSTILE  # exact in JSON
    code, screen = run_in_terminal(siray_command("info", str(path)), dict(os.environ))
    assert code == 0, screen
    assert "\x1b]0;pwned" not in screen and "\x1b[2J" not in screen and "\u202e" not in screen
    assert "\\x1b[2J" in screen


def test_a_servers_own_record_is_replaced_by_sirays(siray):
    server = HostileServer()
    finished_task(server, "image_honest", forged(EVIL), "image/png")
    with server.running():
        result = siray(
            "run", MODEL, "an honest fox", "--no-validate", "-o", "out", env=server.env()
        )
    assert result.exit_code == 0, result
    (path,) = [Path(p) for p in result.lines]
    data = path.read_bytes()
    assert [c for c in png_chunks(data) if c[0] == b"iTXt"] == [png_chunks(data)[1]]  # one
    assert record_of(data)["task_id"] == "image_honest"
    assert png_pixels(data) == png_pixels(forged(EVIL))
    shown = siray("info", str(path))
    assert "image_honest" in shown.stdout and "\x1b" not in shown.stdout
