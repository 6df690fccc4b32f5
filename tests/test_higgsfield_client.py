"""Fidelity: the official Higgsfield client (PyPI `higgsfield-client` 0.2.0) runs its documented
flows against `siray emulator`: submit and wait for an image and a video, cancel, upload, and a
wrong key. Its by-id calls use the module constant BASE_URL (not the client's base_url), so the
test points that constant at the emulator."""

from __future__ import annotations

import httpx
import pytest

higgsfield_client = pytest.importorskip("higgsfield_client")

from helpers import NO_CERTIFICATES  # noqa: E402
from higgsfield_client.http import client as official  # noqa: E402

from siray_cli.emulator.server import HIGGSFIELD_KEY  # noqa: E402


@pytest.fixture
def client(emu, monkeypatch):
    monkeypatch.setattr(official, "BASE_URL", emu.url)
    return higgsfield_client.SyncClient(base_url=emu.url, api_key=HIGGSFIELD_KEY)


@pytest.fixture
def quick(make_emulator, monkeypatch):
    """(client, on_enqueue): an emulator of its own whose clock the subscribe's documented
    on_enqueue callback moves past the task's end, so the first status look finds it done instead
    of the client sleeping its fixed polling delay (0.5 s) for it."""
    server = make_emulator()
    monkeypatch.setattr(official, "BASE_URL", server.url)
    client = higgsfield_client.SyncClient(base_url=server.url, api_key=HIGGSFIELD_KEY)
    return client, lambda request_id: server.state.clock.advance(60)


def test_subscribe_to_an_image_and_a_video(quick):
    client, on_enqueue = quick
    image = client.subscribe(
        "bytedance/seedream/v4/text-to-image", {"prompt": "a fox"}, on_enqueue=on_enqueue
    )
    assert image["status"] == "completed"
    assert (
        httpx.get(image["images"][0]["url"], verify=NO_CERTIFICATES).content[:8]
        == b"\x89PNG\r\n\x1a\n"
    )
    video = client.subscribe(
        "kling-video/v2.1/pro/image-to-video",
        {"prompt": "waves", "image_url": image["images"][0]["url"]},
        on_enqueue=on_enqueue,
    )
    assert video["status"] == "completed" and video["video"]["url"].endswith(".mp4")


def test_submit_status_result_and_cancel(client):
    controller = client.submit("bytedance/seedream/v4/text-to-image", {"prompt": "[hold] wait"})
    assert isinstance(client.status(controller.request_id), higgsfield_client.Queued)
    client.cancel(controller.request_id)
    assert client.result(controller.request_id)["status"] == "canceled"
    done = client.submit("bytedance/seedream/v4/text-to-image", {"prompt": "done"})
    assert done.get()["status"] == "completed"
    with pytest.raises(higgsfield_client.HiggsfieldClientError):
        client.cancel(done.request_id)  # already finished: a 400


def test_upload_then_use_the_public_url(client, tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"pixels" * 50)
    url = client.upload_file(path)
    assert httpx.get(url, verify=NO_CERTIFICATES).content == path.read_bytes()


def test_a_wrong_key_is_refused(emu, monkeypatch):
    monkeypatch.setattr(official, "BASE_URL", emu.url)
    wrong = higgsfield_client.SyncClient(base_url=emu.url, api_key="someone:else")
    with pytest.raises(higgsfield_client.HiggsfieldClientError):
        wrong.submit("bytedance/seedream/v4/text-to-image", {"prompt": "x"})


def test_nsfw_and_failed_are_answers_not_errors(quick):
    client, on_enqueue = quick
    model = "bytedance/seedream/v4/text-to-image"
    nsfw = client.subscribe(model, {"prompt": "[nsfw] x"}, on_enqueue=on_enqueue)
    failed = client.subscribe(model, {"prompt": "[fail] x"}, on_enqueue=on_enqueue)
    assert nsfw["status"] == "nsfw" and failed["status"] == "failed" and failed["error"]
