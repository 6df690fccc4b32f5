"""`siray --provider higgsfield`: the same commands, output, exit codes and history against the
emulator's Higgsfield routes, and the safety the official client lacks (idempotent resends, no
credential printed or sent elsewhere)."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers import (
    HF,
    NO_CERTIFICATES,
    created,
    emulator_stats,
    rows,
    run_in_terminal,
    run_process,
    siray_command,
    siray_in_process,
    start,
    subprocess_env,
)
from helpers import HF_IMAGE as IMAGE

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.server import HIGGSFIELD_KEY

VIDEO = "kling-video/v2.1/pro/image-to-video"
SECRET = HIGGSFIELD_KEY.split(":")[1]


def test_run_an_image_end_to_end(siray, emu, tmp_path, isolated_environment):
    result = siray("run", IMAGE, "a fox in the snow", "-o", str(tmp_path / "out"), env=HF)
    assert result.exit_code == 0, result
    (path,) = [Path(line) for line in result.lines]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (record,) = rows(isolated_environment)
    assert record["provider"] == "higgsfield" and record["state"] == "SUCCESS"
    assert uuid.UUID(record["task_id"]) and record["idempotency_key"]


def test_a_video_from_a_local_image_is_uploaded_then_generated(siray, emu, tmp_path):
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"frame" * 100)
    result = siray("run", VIDEO, "waves", "--image", str(tmp_path / "in.png"), "--json", env=HF)
    assert result.exit_code == 0, result
    document = result.json()
    assert document["kind"] == "video" and document["outputs"][0].endswith(".mp4")
    task = emu.state.tasks[document["task_id"]]
    uploaded = httpx.get(task.body["image_url"], verify=NO_CERTIFICATES)
    assert uploaded.content == (tmp_path / "in.png").read_bytes()
    assert "model" not in task.body  # a flat body: the application is the path


def test_info_and_rerun_of_files_made_on_higgsfield(siray, emu, tmp_path):
    """A PNG carries its record, a video is known by its hash; a rerun of a video made from a
    local image sends the URL the image was uploaded to then (the file is not needed again)."""
    image = siray("run", IMAGE, "a recorded heron", "-o", "out", env=HF)
    assert image.exit_code == 0, image
    found = siray("info", image.stdout.strip(), "--json", env=HF).json()
    assert (found["source"], found["provider"]) == ("embedded", "higgsfield")
    assert (found["model"], found["prompt"]) == (IMAGE, "a recorded heron")
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"frame" * 100)
    made = siray("run", VIDEO, "rerun waves", "--image", "in.png", "-o", "v", "--json", env=HF)
    assert made.exit_code == 0, made
    (path,) = made.json()["files"]
    found = siray("info", path, "--json", env=HF).json()
    assert found["source"] == "history" and found["task_id"] == made.json()["task_id"]
    (tmp_path / "in.png").unlink()
    again = siray("rerun", path, "--json", env=HF)
    assert again.exit_code == 0, again
    bodies = [emu.state.tasks[d.json()["task_id"]].body for d in (made, again)]
    assert bodies[0] == bodies[1] and bodies[1]["image_url"].startswith("http")
    assert created(emu, "rerun waves") == 2
    refused = siray("rerun", path)  # on the provider in effect, Siray: said, nothing sent
    assert refused.exit_code == 2 and "--provider higgsfield" in refused.stderr
    capped = siray("rerun", path, "--max-cost", "0.000001", env=HF)  # a spending cap holds
    assert capped.exit_code != 0 and "not submitted" in capped.stderr, capped
    assert created(emu, "rerun waves") == 2


def test_status_cancel_and_the_six_states(siray, emu):
    held = siray("generate", IMAGE, "[hold] to cancel", env=HF).stdout.strip()
    cancelled = siray("cancel", held, env=HF)
    assert cancelled.exit_code == 0, cancelled
    assert cancelled.stdout.strip() == f"{held}\tCANCELLED"
    again = siray("cancel", held, env=HF)  # cancelled already: what was asked, as on Siray
    assert again.exit_code == 0 and again.stdout.strip() == f"{held}\tCANCELLED", again
    unknown = siray("cancel", "00000000-0000-4000-8000-000000000000", env=HF)
    assert unknown.exit_code == 2 and "no request 00000000-" in unknown.stderr, unknown
    assert "hint: check the id" in unknown.stderr
    done = siray("run", IMAGE, "finished", env=HF)
    finished_id = next(
        t.task_id for t in emu.state.tasks.values() if t.body["prompt"] == "finished"
    )
    refused = siray("cancel", finished_id, env=HF)
    assert done.exit_code == 0 and refused.exit_code == 5, refused
    assert "has already ended (SUCCESS), and cannot be cancelled" in refused.stderr
    nsfw = siray("run", IMAGE, "[nsfw] rejected", env=HF)
    assert nsfw.exit_code == 1 and "rejected by content moderation" in nsfw.stderr
    failed = siray("run", IMAGE, "[fail] broken", env=HF)
    assert failed.exit_code == 1 and "FAILURE" in failed.stderr
    waited = siray("status", held, "--json", env=HF)
    assert waited.json()["status"] == "CANCELLED"


def test_errors_are_spelled_out_with_their_exit_codes(siray, emu):
    missing = siray("run", VIDEO, "no image", "--no-validate", env=HF)
    assert missing.exit_code == 2 and "image_url: Field required" in missing.stderr
    checked = siray("run", VIDEO, "no image", env=HF)  # caught before anything is sent
    assert checked.exit_code == 2 and "missing required input: image_url" in checked.stderr
    # the account's concurrency limit is waited out, as far as --timeout allows: then exit 4
    busy = siray("run", IMAGE, "[busy] too many", "--timeout", "0.5", env=HF)
    assert busy.exit_code == 4 and "concurrency limit was still reached" in busy.stderr, busy
    assert "nothing was submitted" in busy.stderr
    # generate waits for a slot too, bounded by its own --timeout (it once had none)
    started = time.monotonic()
    held = siray("generate", IMAGE, "[busy] too many to generate", "--timeout", "0.8", env=HF)
    assert held.exit_code == 4 and "nothing was submitted" in held.stderr, held
    # it waits out its --timeout (a new user saw it give up at once when the pause between
    # tries, 5 s by default, was longer than the timeout): the last try is at the end
    assert time.monotonic() - started >= 0.8
    credits = siray("run", IMAGE, "[credits] poor", env=HF)
    assert credits.exit_code == 3 and "not enough credits" in credits.stderr
    blocked = siray("run", IMAGE, "[blocked] later", env=HF)
    assert blocked.exit_code == 5 and "temporarily blocked" in blocked.stderr
    wrong = siray("generate", IMAGE, "x", env={**HF, "HF_KEY": "someone:else"})
    assert wrong.exit_code == 3 and "Invalid credentials" in wrong.stderr
    unknown = siray("run", "acme/brand-new", "x", env=HF)
    assert "note: acme/brand-new is not one of the higgsfield applications" in unknown.stderr
    assert unknown.exit_code == 2 and "not found" in unknown.stderr


def test_a_502_after_the_submit_was_accepted_creates_one_job(siray, emu, isolated_environment):
    """The duplicate hazard of the official client: the emulator accepts the submit, then the
    answer is lost (a 502 from a proxy). siray sends it again with the same Idempotency-Key, and
    the service answers with the original request."""
    prompt = "accepted then lost"
    emu.state.faults.add(Fault(action="drop-after", method="POST", path=f"^/{IMAGE}$", count=1))
    result = siray("generate", IMAGE, prompt, env=HF)
    assert result.exit_code == 0, result
    assert created(emu, prompt) == 1
    assert emulator_stats(emu)["requests"].get(f"POST /{IMAGE}", 0) >= 2
    (record,) = [r for r in rows(isolated_environment) if r["task_id"] == result.stdout.strip()]
    assert record["idempotency_key"]


def test_a_resumed_unanswered_submit_is_sent_again_exactly_as_it_was(
    siray, emu, tmp_path, isolated_environment
):
    # the answer to a submit naming a local image is lost every time; on --resume, the request
    # goes again with its key and the very body first sent (the image uploaded then), not with a
    # new upload's URL, which the service would refuse as another request under the same key
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"kept" * 50)
    jobs = tmp_path / "jobs.jsonl"
    line = {"prompt": "once", "model": VIDEO, "inputs": {"image_url": str(image)}}
    jobs.write_text(json.dumps(line) + "\n")
    lost = Fault(action="drop-after", method="POST", path=f"^/{VIDEO}$", count=0)
    emu.state.faults.add(lost)
    first = siray("run", "--batch", str(jobs), "--poll-interval", "0.1", env=HF)
    emu.state.faults.clear()
    assert first.exit_code != 0, first
    (unanswered,) = rows(isolated_environment)
    assert unanswered["task_id"] is None and unanswered["idempotency_key"]
    again = siray("run", "--batch", str(jobs), "--resume", "--poll-interval", "0.1", env=HF)
    assert again.exit_code == 0, again
    assert created(emu, "once") == 1
    (task,) = [t for t in emu.state.tasks.values() if t.body.get("prompt") == "once"]
    assert task.body["image_url"] == json.loads(unanswered["request"])["image_url"]


def test_the_credential_is_never_printed_nor_sent_to_siray(siray, emu):
    runs = [
        siray("--debug", "run", IMAGE, "secret", env=HF),
        siray("--debug", "auth", "status", env=HF),
        siray("--debug", "generate", IMAGE, "x", env={**HF, "HF_KEY": "id-x:" + SECRET + "zz"}),
    ]
    for result in runs:
        everything = result.stdout + result.stderr
        assert SECRET not in everything and HIGGSFIELD_KEY not in everything, result
    status = siray("auth", "status", "--json", env=HF).json()
    assert status["key"] == HIGGSFIELD_KEY.split(":")[0] + ":***"
    assert status["gateway_url"] is None  # Siray's gateway is not Higgsfield's
    assert "gateway_url" not in siray("auth", "status", "--offline", env=HF).stdout
    # the Siray key is not sent to Higgsfield, nor the other way round
    assert siray("generate", IMAGE, "x", env={**HF, "HF_KEY": ""}).exit_code == 3


def test_separate_key_and_secret_variables(siray, emu):
    key_id, secret = HIGGSFIELD_KEY.split(":")
    env = {**HF, "HF_KEY": "", "HF_API_KEY": key_id, "HF_API_SECRET": secret}
    result = siray("generate", IMAGE, "split credential", env=env)
    assert result.exit_code == 0, result


def test_half_a_pair_of_variables_is_named_in_the_providers_own_hint(siray):
    key_id, secret = HIGGSFIELD_KEY.split(":")
    for given, absent in (
        ({"HF_API_KEY": key_id}, "HF_API_SECRET"),
        ({"HF_API_SECRET": secret}, "HF_API_KEY"),
    ):
        env = {**HF, "HF_KEY": "", **given}
        for args in (("auth", "status", "--offline"), ("generate", IMAGE, "half a pair")):
            result = siray(*args, env=env)
            assert result.exit_code == 3, result
            assert "error: no Higgsfield credential" in result.stderr
            assert (
                f"hint: {absent} is not set ({next(iter(given))} is): set HF_KEY" in result.stderr
            )
            assert "siray --provider higgsfield auth login" in result.stderr
            assert "SIRAY_API_KEY" not in result.stderr  # Siray's advice is not Higgsfield's


def test_login_refuses_a_credential_not_of_the_id_secret_form_before_sending_or_saving_it(
    siray, make_emulator, isolated_environment
):
    server = make_emulator()
    for verify in ([], ["--no-verify"]):
        result = siray(
            "auth", "login", "--with-token", *verify, input="nocolon\n", env=HF, server=server
        )
        assert result.exit_code == 3, result  # as every command refuses such an HF_KEY
        assert "must be key_id:key_secret" in result.stderr
        assert "nothing was sent or saved" in result.stderr
        assert "--no-verify" not in result.stderr  # no hint that would save it anyway
    assert sum(server.state.requests.values()) == 0
    config = isolated_environment / "config" / "config.toml"
    assert not config.exists() or "nocolon" not in config.read_text()
    saved = siray("auth", "login", "--with-token", input=HIGGSFIELD_KEY, env=HF, server=server)
    assert saved.exit_code == 0, saved  # the form as issued is checked, then saved


def test_a_task_is_asked_about_on_the_provider_that_made_it(siray, emu):
    task_id = siray("generate", IMAGE, "made by higgsfield", env=HF).stdout.strip()
    result = siray("status", task_id, "--wait", "--json")  # the provider in effect is siray
    assert result.exit_code == 0, result
    assert result.json()["status"] == "SUCCESS"


def test_models_list_offers_the_known_applications(siray):
    result = siray("models", "list", "--json", env=HF)
    names = {m["name"]: m["kind"] for m in result.json()}
    assert names[IMAGE] == "image" and names[VIDEO] == "video"


def test_hints_name_the_provider_so_a_copied_command_reaches_the_same_api(siray):
    refused = siray("--provider", "higgsfield", "run", VIDEO, "waves")
    assert refused.exit_code == 2
    assert f"see `siray --provider higgsfield models show {VIDEO}`" in refused.stderr
    shown = siray("--provider", "higgsfield", "models", "show", VIDEO)
    assert f"example: siray --provider higgsfield run {VIDEO} " in shown.stderr
    siray_model = siray("models", "show", "alibaba/z-image-turbo-t2i")
    assert "example: siray run alibaba/z-image-turbo-t2i " in siray_model.stderr


def test_webhooks_are_delivered_to_loopback(siray, emu):
    from hostile import HostileServer

    received: list[dict] = []

    def hook(handler) -> None:
        received.append(json.loads(handler.body or b"{}"))
        handler.send_response(200)
        handler.end_headers()

    server = HostileServer()
    server.on("POST", "/hook", hook)
    with server.running():
        result = siray("run", IMAGE, "hooked", "--webhook", server.url + "/hook", env=HF)
        assert result.exit_code == 0, result
        import time

        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert received and received[0]["status"] == "completed"
    siray_webhook = siray("run", IMAGE, "x", "--webhook", "http://x/", "--provider", "siray")
    assert siray_webhook.exit_code == 2


def test_a_batch_holds_back_at_the_concurrency_limit(siray, make_emulator, tmp_path):
    """Over the account's limit, a submit answers 400 "concurrent requests": nothing was made,
    so the batch waits for one of its tasks to end and submits again. No job fails."""
    server = make_emulator(higgsfield_concurrency=2)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"prompt": f"limited {n}"}) + "\n" for n in range(5)))
    result = siray(
        "run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "5", env=HF, server=server
    )
    assert result.exit_code == 0, result
    assert all(json.loads(line)["status"] == "SUCCESS" for line in result.lines)
    stats = emulator_stats(server)
    assert stats["tasks_created"] == 5
    assert stats["requests"][f"POST /{IMAGE}"] > 5  # some were refused, then sent again


def test_a_batch_line_may_name_its_provider(siray, emu, tmp_path, isolated_environment):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"prompt": "on siray", "model": "google/gemini-2.5-flash-image-t2i"})
        + "\n"
        + json.dumps({"prompt": "on higgsfield", "model": IMAGE, "provider": "higgsfield"})
        + "\n"
    )
    result = siray("run", "--batch", str(jobs), "--poll-interval", "0.1")
    assert result.exit_code == 0, result
    providers = {r["model"]: r["provider"] for r in rows(isolated_environment)}
    assert providers == {"google/gemini-2.5-flash-image-t2i": "siray", IMAGE: "higgsfield"}
    again = siray("run", "--batch", str(jobs), "--resume")
    assert [json.loads(line)["resumed"] for line in again.lines] == ["skipped", "skipped"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "model": IMAGE, "provider": "acme"}) + "\n")
    refused = siray("run", "--batch", str(bad))
    assert refused.exit_code == 2 and "unknown provider 'acme'" in refused.stderr


def test_a_mixed_batch_uploads_a_file_through_each_lines_own_provider(siray, emu, tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"shared" * 100)
    jobs = tmp_path / "jobs.jsonl"
    siray_line = {"prompt": "on siray", "model": "ideogram/ideogram-v3-turbo-i2i",
                  "inputs": {"image": str(image), "aspect_ratio": "1:1"}}  # fmt: skip
    hf_line = {"prompt": "on higgsfield", "model": VIDEO, "provider": "higgsfield",
               "inputs": {"image_url": str(image)}}  # fmt: skip
    again = {**hf_line, "prompt": "on higgsfield again"}
    jobs.write_text("".join(json.dumps(j) + "\n" for j in (siray_line, hf_line, again)))
    before = emulator_stats(emu)["requests"].get("POST /files/generate-upload-url", 0)
    result = siray("run", "--batch", str(jobs), "--poll-interval", "0.1")
    assert result.exit_code == 0, result
    sent = {t.body["prompt"]: t.body for t in emu.state.tasks.values()}
    on_siray = sent["on siray"]["image"]
    on_higgsfield = sent["on higgsfield"]["image_url"]
    # each provider got the file in its own storage; the two Higgsfield lines share one upload
    assert on_siray != on_higgsfield
    assert sent["on higgsfield again"]["image_url"] == on_higgsfield
    assert emulator_stats(emu)["requests"]["POST /files/generate-upload-url"] == before + 1
    for url in (on_siray, on_higgsfield):
        assert httpx.get(url, verify=NO_CERTIFICATES).content == image.read_bytes()


def test_upload_prints_the_public_url_and_checks_the_type_first(siray, emu, tmp_path):
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"upload" * 100)
    result = siray("upload", str(tmp_path / "in.png"), env=HF)
    assert result.exit_code == 0, result
    (url,) = result.lines
    assert httpx.get(url, verify=NO_CERTIFICATES).content == (tmp_path / "in.png").read_bytes()
    (tmp_path / "notes.txt").write_text("not a medium Higgsfield takes")
    refused = siray("upload", str(tmp_path / "notes.txt"), env=HF)
    assert refused.exit_code == 2 and "does not accept text/plain" in refused.stderr
    piped = siray("upload", "-", "--name", "p.png", "--content-type", "image/png", "--json",
                  input="\x89PNG piped", env=HF)  # fmt: skip
    assert piped.exit_code == 0 and piped.json()[0]["bytes"] == len("\x89PNG piped".encode())


def test_completion_offers_the_providers_own_model_names(siray, emu):
    def complete(words: str, **env: str) -> list[str]:
        protocol = {"COMP_LINE": words, "_SIRAY_COMPLETE": "complete_bash", **env}
        return siray_in_process(env=protocol).stdout.split()

    assert IMAGE in complete("siray --provider higgsfield run bytedance/")
    assert VIDEO in complete("siray run kling", SIRAY_PROVIDER="higgsfield")
    siray("models", "list", env=HF)  # caches the Higgsfield list too
    assert not [n for n in complete("siray run bytedance/seedream/") if "v4" in n]


def test_higgsfield_input_is_checked_before_anything_is_sent(siray, emu):
    """A credential not of the id:secret form is refused here (exit 3), not by a 401; a webhook
    must be an http(s) URL; a mistyped application id is sent as given, with the closest one."""
    before = created(emu)
    bad_key = siray("generate", IMAGE, "x", env={**HF, "HF_KEY": "no-colon-in-it"})
    assert bad_key.exit_code == 3, bad_key
    assert "must be key_id:key_secret" in bad_key.stderr and "no-colon" not in bad_key.stderr
    hook = siray("generate", IMAGE, "x", "--webhook", "ftp://example.com/hook", env=HF)
    assert hook.exit_code == 2 and "must be an http(s) URL" in hook.stderr, hook
    assert created(emu) == before
    typo = siray("generate", IMAGE[:-1], "x", env=HF)
    assert f"(did you mean {IMAGE}?)" in typo.stderr, typo


def test_estimate_gives_numbers_to_scripts_and_the_price_as_given_to_people(siray, emu):
    before = created(emu)
    priced = siray("estimate", IMAGE, "a priced fox", "--json", env=HF)
    assert priced.exit_code == 0, priced
    document = priced.json()
    assert document["model"] == IMAGE
    assert isinstance(document["credits"], float) and isinstance(document["usd"], float)
    shown = siray("estimate", IMAGE, "a priced fox", env=HF)
    assert [line.split("\t")[0] for line in shown.lines] == ["credits", "usd"]
    assert float(shown.lines[1].split("\t")[1]) == document["usd"]
    assert created(emu) == before  # pricing creates nothing
    siray_side = siray("estimate", "alibaba/z-image-turbo-t2i", "x", "--no-validate")
    assert siray_side.exit_code == 2 and "no price endpoint" in siray_side.stderr, siray_side


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", ""])
def test_an_estimate_that_is_not_a_number_is_no_price(value):
    from siray_cli.errors import ProtocolError
    from siray_cli.providers.higgsfield.parse import parse_estimate

    with pytest.raises(ProtocolError, match="not a number"):
        parse_estimate({"credits": value, "usd": "0.1"})


def test_a_run_waits_out_the_concurrency_limit_and_says_so(make_emulator, tmp_path):
    """A single run refused for the account's concurrency limit is held back, visibly, until a
    slot frees (here: the task holding it is cancelled), then runs: a temporary condition, not
    a usage error."""
    server = make_emulator(higgsfield_concurrency=1)
    env = {**HF, "SIRAY_RETRY_BACKOFF": "0.02"}  # tries every 0.2 s
    holder = run_process(
        siray_command("generate", IMAGE, "[hold] the one slot"),
        subprocess_env(server, **env),
        check=True,
    ).stdout.strip()
    waiting = start(server, "run", IMAGE, "waits for a slot", "--timeout", "30", env=env)
    assert waiting.stderr is not None
    line = waiting.stderr.readline()
    assert "the provider's concurrency limit is reached (nothing was submitted)" in line, line
    assert "trying again every 0.2s, until" in line
    run_process(siray_command("cancel", holder), subprocess_env(server, **env), check=True)
    out, rest = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, rest
    assert out.startswith(server.url)
    assert emulator_stats(server)["tasks_created"] == 2


def test_a_run_held_back_on_a_terminal_counts_down(make_emulator):
    # on a terminal the wait for a free slot is a live row: the next try and when it gives up
    server = make_emulator(higgsfield_concurrency=1)
    env = subprocess_env(server, **HF, SIRAY_RETRY_BACKOFF="0.1")  # tries every second
    run_process(siray_command("generate", IMAGE, "[hold] the only slot"), env, check=True)
    code, screen = run_in_terminal(
        siray_command("run", IMAGE, "waits on a terminal", "--timeout", "2.5"), env
    )
    assert code == 4, screen
    screen = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert "HELD · try in 1s · gives up in 0:0" in screen, screen
    assert "nothing was submitted" in screen


def test_a_batch_line_held_back_on_a_terminal_counts_down(make_emulator, tmp_path):
    server = make_emulator(higgsfield_concurrency=1, task_seconds=1.5)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "first", "name": "a"}\n{"prompt": "second", "name": "b"}\n')
    code, screen = run_in_terminal(
        siray_command("run", "--batch", str(jobs), "-m", IMAGE, "--concurrency", "2"),
        subprocess_env(server, **HF, SIRAY_RETRY_BACKOFF="0.1"),
    )
    assert code == 0, screen
    screen = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert re.search(r"line \d \([ab]\)\s+HELD · try in \ds", screen), screen
    assert "done 2 · failed 0 · running 0" in screen


def test_dry_run_shows_the_flat_body_and_its_price_and_sends_nothing(
    siray, make_emulator, tmp_path, isolated_environment
):
    server = make_emulator()
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"frame" * 100)
    args = ("run", VIDEO, "waves at dusk", "--image", "in.png", "-i", "duration=5")
    hook = "https://example.com/hook"
    dry = siray(*args, "--webhook", hook, "--dry-run", "--json", env=HF, server=server)
    assert dry.exit_code == 0, dry
    shown = dry.json()
    assert shown["url"] == f"{server.url}/{VIDEO}?hf_webhook=https%3A%2F%2Fexample.com%2Fhook"
    assert shown["body"]["image_url"] == "@in.png (would be uploaded, 508 bytes)"
    remote = ("--image", "https://example.com/in.png")
    price = siray("estimate", VIDEO, "waves at dusk", *remote, "-i", "duration=5", "--json", env=HF)
    assert shown["price"] == {k: v for k, v in price.json().items() if k != "model"}
    assert SECRET not in dry.stdout + dry.stderr
    # only the price was asked: no upload slot, no submit, no history
    assert all(r.startswith("POST /estimate/") for r in emulator_stats(server)["requests"])
    assert server.state.tasks == {} and rows(isolated_environment) == []
    real = siray(*args, "--json", env=HF, server=server)
    assert real.exit_code == 0, real
    (task,) = server.state.tasks.values()
    assert {**shown["body"], "image_url": task.body["image_url"]} == task.body  # flat, no model
