"""`siray gallery` (and `run --batch -o DIR --gallery`): one self-contained HTML page of tasks,
checked as written (which cards, which links) and in a real browser (Debian's chromium,
headless, from file://): every image loads, the filter hides cards, no hostile string runs."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import CREATE, GEMINI_IMAGE, STATUS, start, write_jobs
from helpers import Z_IMAGE as MODEL
from hostile import HostileServer, status_document, task_created

PNG_SIZE = ["-i", "size=1024x768"]
VIDEO = "google/veo-3-fast-t2v"


# -- reading a page ------------------------------------------------------------------------------


@dataclass
class Page:
    cards: list[dict[str, str]] = field(default_factory=list)  # each card's attributes
    urls: list[str] = field(default_factory=list)  # every href and src
    scripts: int = 0
    text: str = ""

    @property
    def tasks(self) -> list[str]:
        return [card["data-task"] for card in self.cards]


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__()
        self.page = page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "article":
            self.page.cards.append(found)
        if tag == "script":
            self.page.scripts += 1
        self.page.urls += [found[name] for name in ("href", "src") if name in found]


def read_page(path: Path) -> Page:
    page = Page(text=path.read_text(encoding="utf-8"))
    _Reader(page).feed(page.text)
    return page


def task_of(result) -> str:
    """The task id a `run` told on stderr."""
    found = re.search(r"task (image_\w+) submitted", result.stderr)
    assert found, result
    return found.group(1)


# -- tasks to show ------------------------------------------------------------------------------


@dataclass
class Made:
    fox: str  # saved with -o out/
    owl: str  # not saved: shown by its URL (another model)
    failed: str  # [fail]
    batch_fox: str  # by run --batch -o batch --gallery
    batch_failed: str
    middle: float  # a moment between the owl and the failure
    results: Path  # what that batch printed with --json


def make_tasks(siray, tmp_path: Path) -> Made:
    fox = siray("run", MODEL, "a red fox", *PNG_SIZE, "-o", str(tmp_path / "out"))
    assert fox.exit_code == 0, fox
    owl = siray("run", GEMINI_IMAGE, "an owl at night")
    assert owl.exit_code == 0, owl
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    failed = siray("run", MODEL, "a lost fox [fail]", *PNG_SIZE)
    assert failed.exit_code == 1, failed
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "a batch fox", "name": "bfox", "inputs": {"size": "1024x768"}},
        {"prompt": "a batch crow [fail]", "name": "bcrow", "inputs": {"size": "1024x768"}},
    )
    batch = siray(
        "run",
        "--batch",
        str(jobs),
        "-m",
        MODEL,
        "-o",
        str(tmp_path / "batch"),
        "--gallery",
        "--json",
    )
    assert batch.exit_code == 1, batch  # one line failed
    records = [json.loads(line) for line in batch.lines]
    by_name = {r["name"]: r["task_id"] for r in records if r["type"] in ("result", "error")}
    results = tmp_path / "results.jsonl"
    results.write_text(batch.stdout)
    return Made(
        fox=task_of(fox),
        owl=task_of(owl),
        failed=task_of(failed),
        batch_fox=by_name["bfox"],
        batch_failed=by_name["bcrow"],
        middle=middle,
        results=results,
    )


# -- the command ---------------------------------------------------------------------------------


def test_each_filter_selects_its_tasks(siray, tmp_path):
    made = make_tasks(siray, tmp_path)
    everything = {made.fox, made.owl, made.failed, made.batch_fox, made.batch_failed}

    result = siray("gallery")
    assert result.exit_code == 0, result
    assert result.stdout == "siray-gallery.html\n"  # data: the page's path, alone
    assert "gallery: 5 tasks (2 failure, 3 success)" in result.stderr
    page = read_page(tmp_path / "siray-gallery.html")
    assert set(page.tasks) == everything
    assert page.tasks[-2:] == [made.owl, made.fox]  # newest first

    def shown(*args: str) -> list[str]:
        out = tmp_path / "pages" / "page.html"
        result = siray("gallery", *args, "-o", str(out))
        assert result.exit_code == 0, result
        assert result.stdout == f"{out}\n"
        return read_page(out).tasks

    assert set(shown("--last", "2")) == {made.batch_fox, made.batch_failed}
    assert set(shown("--since", datetime.fromtimestamp(made.middle).isoformat())) == (
        everything - {made.fox, made.owl}
    )
    assert set(shown("--since", "1h")) == everything
    assert shown("--model", "gemini") == [made.owl]
    assert set(shown("--status", "failed")) == {made.failed, made.batch_failed}
    assert set(shown("--status", "SUCCESS", "--model", "z-image")) == {made.fox, made.batch_fox}
    assert shown(made.owl, made.fox) == [made.owl, made.fox]
    assert shown(made.fox, "--status", "failed") == []
    # a results file: the batch's tasks, as the history knows them (prompt, model, inputs)
    assert set(shown("--batch", str(made.results))) == {made.batch_fox, made.batch_failed}
    page = read_page(tmp_path / "pages" / "page.html")
    assert "a batch fox" in page.text and "a batch crow [fail]" in page.text
    assert set(shown("--batch", str(made.results), "--status", "success")) == {made.batch_fox}


def test_a_card_shows_the_task_and_links_its_saved_file_relative_to_the_page(siray, tmp_path):
    made = make_tasks(siray, tmp_path)
    out = tmp_path / "site" / "pages" / "all.html"
    assert siray("gallery", "-o", str(out)).exit_code == 0
    page = read_page(out)
    fox = next(card for card in page.cards if card["data-task"] == made.fox)
    assert fox["data-state"] == "SUCCESS" and "a red fox" in fox["data-text"]
    # the saved file, by a link relative to the page's directory (so the page and out/ move
    # together); the owl, never saved, by the URL the server gave
    assert f"../../out/{made.fox}_1.png" in page.urls
    assert any(url.startswith("http://127.0.0.1:") and made.owl in url for url in page.urls)
    assert all(url.startswith(("http://", "../")) for url in page.urls), page.urls
    # the inputs (the request without prompt and model), the failure, the timing
    assert "<th>size</th><td>1024x768</td>" in page.text
    assert "emulator: the prompt asked for a failure ([fail])" in page.text
    assert "<dt>took</dt>" in page.text and "<dt>provider</dt><dd>siray</dd>" in page.text
    # run --batch -o batch --gallery wrote batch/index.html: its lines, files beside it
    batch = read_page(tmp_path / "batch" / "index.html")
    assert set(batch.tasks) == {made.batch_fox, made.batch_failed}
    assert "bfox.png" in batch.urls


def test_bad_input_is_one_line_and_exit_2(siray, tmp_path):
    made = make_tasks(siray, tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "result", "task_id": "x", "files": []}\nnot json\n[1]\n')
    for args, message in [
        (["--status", "finished"], "--status 'finished' is not a state siray knows"),
        (["--since", "yesterday"], "is neither a duration nor a date"),
        (["--batch", str(tmp_path / "none.jsonl")], "none.jsonl does not exist"),
        (["--batch", str(bad)], "line 2: not JSON; line 3: not a JSON object"),
        (["image_0123456789a"], "not in the history: image_0123456789a"),
        (["--last", "0"], "--last"),
    ]:
        result = siray("gallery", *args)
        assert result.exit_code == 2, (args, result)
        assert message in result.stderr, (args, result)
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert not (tmp_path / "siray-gallery.html").exists()
    # lines of older versions (no type) are taken; a summary line is no task
    old = tmp_path / "old.jsonl"
    lines = [json.loads(line) for line in made.results.read_text().splitlines()]
    untyped = [{k: v for k, v in r.items() if k != "type"} for r in lines if "task_id" in r]
    summary = {"type": "summary", "total": 2}
    old.write_text("".join(json.dumps(record) + "\n" for record in [*untyped, summary]))
    result = siray("gallery", "--batch", str(old), "--batch", str(made.results))
    assert result.exit_code == 0, result
    assert set(read_page(tmp_path / "siray-gallery.html").tasks) == {
        made.batch_fox,
        made.batch_failed,
    }


def test_gallery_with_run_needs_a_batch_and_a_directory(siray, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "x", "inputs": {"size": "1024x768"}})
    result = siray("run", "--batch", str(jobs), "-m", MODEL, "--gallery")
    assert result.exit_code == 2 and "give -o DIR" in result.stderr, result
    result = siray("run", MODEL, "x", *PNG_SIZE, "--gallery")
    assert result.exit_code == 2 and "--gallery is for --batch" in result.stderr, result


def test_an_interrupted_batch_still_writes_its_page_of_what_ended(emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "done before the signal", "name": "done", "inputs": {"size": "1024x768"}},
        {"prompt": "[hold] still queued", "name": "held", "inputs": {"size": "1024x768"}},
    )
    process = start(
        emu, "run", "--batch", str(jobs), "-m", MODEL, "-o", str(tmp_path / "out"), "--gallery"
    )
    assert process.stdout is not None
    ended = json.loads(process.stdout.readline())  # a line's result, as soon as it ends
    assert ended["name"] == "done", ended
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert f"gallery: {tmp_path / 'out' / 'index.html'}" in stderr
    page = read_page(tmp_path / "out" / "index.html")
    assert page.tasks == [ended["task_id"]]
    assert "done.png" in page.urls


# -- what the page lets through ----------------------------------------------------------------

HOSTILE_PROMPT = "<script>document.title='PWNED'</script> a hostile fox"
HOSTILE_REASON = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"> failed"
HOSTILE_URLS = [
    "javascript:document.title='PWNED'",
    " JavaScript:document.title='PWNED'",
    "data:text/html,<script>document.title='PWNED'</script>",
]
KEY = "sk-hostile-test-key-0123456789"


def hostile_tasks(siray) -> None:
    """Two tasks from a hostile server: one that 'succeeded' with script URLs as its outputs,
    one that failed with markup (and the key, echoed) as its reason."""
    server = HostileServer()
    ids = iter(["image_hostile1", "image_hostile2"])

    def create(handler) -> None:
        task_created(next(ids))(handler)

    succeeded = status_document("image_hostile1", "SUCCESS", outputs=HOSTILE_URLS, progress=100)
    failed = status_document("image_hostile2", "FAILURE", fail_reason=f"{HOSTILE_REASON} {KEY}")
    server.on("POST", CREATE, create)
    server.on("GET", STATUS.format("image_hostile1"), succeeded)
    server.on("GET", STATUS.format("image_hostile2"), failed)
    with server.running():
        for number in (1, 2):
            result = siray("run", MODEL, HOSTILE_PROMPT, "--no-validate", env=server.env())
            assert result.exit_code == (0 if number == 1 else 1), result


def test_hostile_strings_are_escaped_and_hostile_urls_never_linked(siray, tmp_path):
    hostile_tasks(siray)
    result = siray("gallery", "-o", "hostile.html", env={"SIRAY_API_KEY": KEY})
    assert result.exit_code == 0, result
    page = read_page(tmp_path / "hostile.html")
    assert page.tasks == ["image_hostile2", "image_hostile1"]
    assert page.scripts == 1  # the page's own
    assert "<script>document" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;" in page.text
    assert page.urls == []  # no output was a URL a browser may follow
    assert "not a link siray follows" in page.text
    assert KEY not in page.text and KEY[:12] not in page.text  # the echoed key is scrubbed
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page.text)
    assert csp, page.text[:1000]
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy


# -- in a real browser ---------------------------------------------------------------------------


@pytest.fixture
def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def chromium(browser: str, tmp_path: Path, url: str, *args: str) -> str:
    """Run headless chromium on `url` (virtual time: it ends once the page has loaded)."""
    completed = subprocess.run(
        [
            browser,
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def body_of(dom: str) -> dict[str, str]:
    """The attributes of the dumped DOM's <body> (where the page's script notes what it saw)."""
    found = re.search(r"<body([^>]*)>", dom)
    assert found, dom[:2000]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', found.group(1)))


def test_in_a_browser_every_image_loads_and_the_filter_hides_cards(siray, tmp_path, browser):
    made = make_tasks(siray, tmp_path)
    waves = siray("run", VIDEO, "waves at night", "-o", str(tmp_path / "out"))
    assert waves.exit_code == 0, waves
    out = tmp_path / "site" / "gallery.html"
    assert siray("gallery", "-o", str(out)).exit_code == 0
    assert 'src="../out/video_' in out.read_text()
    url = out.as_uri()
    shot = tmp_path / "gallery.png"  # drawn by the same load that is dumped
    screen = (f"--screenshot={shot}", "--window-size=1280,900")
    body = body_of(chromium(browser, tmp_path, url, "--dump-dom", *screen))
    assert body["data-script"] == "ran" and body["data-ready"] == "yes", body
    # the fox (a saved file, by a relative file: link), the owl (the emulator's URL), the batch
    # fox (a saved file): every image of a task that succeeded, each one decoded; the video
    # (a saved MP4) ready to play
    assert body["data-images"] == "3", body
    assert body["data-images-loaded"] == "3", body
    assert body["data-videos"] == "1" and body["data-videos-ready"] == "1", body
    assert body["data-visible"] == "6", body
    # the filter, from the URL's hash as the box would set it: prompt, model or id
    filtered = body_of(chromium(browser, tmp_path, url + "#filter=fox", "--dump-dom"))
    assert filtered["data-visible"] == "3", filtered  # a red fox, a lost fox, a batch fox
    by_id = body_of(chromium(browser, tmp_path, url + f"#filter={made.owl}", "--dump-dom"))
    assert by_id["data-visible"] == "1", by_id
    failed = body_of(chromium(browser, tmp_path, url + "#status=failure", "--dump-dom"))
    assert failed["data-visible"] == "2", failed
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if not Path("/tmp/gallery-screenshot.png").exists():  # once, for a person to look at
        shutil.copy(shot, "/tmp/gallery-screenshot.png")


def test_in_a_browser_no_hostile_string_runs(siray, tmp_path, browser):
    hostile_tasks(siray)
    assert siray("run", MODEL, "a friendly fox", *PNG_SIZE).exit_code == 0
    out = tmp_path / "hostile.html"
    assert siray("gallery", "-o", str(out)).exit_code == 0
    dom = chromium(browser, tmp_path, out.as_uri() + "#filter=hostile", "--dump-dom")
    body = body_of(dom)
    assert body["data-script"] == "ran", body  # the page's own script did run...
    assert body["data-visible"] == "2", body
    assert "data-pwned" not in body  # ...and neither the markup's handler
    assert "<title>siray gallery</title>" in dom  # nor the prompt's script
    assert 'src="javascript:' not in dom.lower() and 'href="javascript:' not in dom.lower()
