"""The gallery page: cards in, one self-contained HTML document out (a pure function, no I/O).

Every string from a server or a user is escaped where it lands (text and attributes alike); a
link or a source is an http(s) URL or a relative path to a saved file, never anything else
(`javascript:`, `data:`, ... are shown as text). The Content-Security-Policy lets no script run
but the page's own (allowed by its hash), and loads images and media only from the page's
directory, file: and http(s)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlsplit

VIDEO = (".mp4", ".webm", ".mov", ".m4v", ".ogv")
AUDIO = (".mp3", ".wav", ".ogg", ".m4a", ".aac", ".flac")
# an http(s) URL with a host and nothing a browser would strip or reinterpret (whitespace,
# control characters): anything else is never made a link or a source
_SAFE_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f-\x9f]+$", re.IGNORECASE)
GOOD = {"SUCCESS"}
BAD = {"FAILURE", "CANCELLED", "ERROR", "NSFW"}


@dataclass(frozen=True)
class Item:
    """One output: the URL the server gave, and its saved file when it is on disk."""

    url: str | None
    file: str | None = None  # an absolute path


@dataclass(frozen=True)
class Card:
    task_id: str | None
    model: str
    provider: str
    kind: str  # image or video ("" when unknown)
    prompt: str
    inputs: dict[str, Any]
    status: str  # the provider's word
    state: str  # siray's word (the status filter's)
    fail_reason: str
    submitted_at: float | None
    finished_at: float | None
    items: list[Item] = field(default_factory=list)
    name: str | None = None  # the batch line's name


def safe_url(url: str) -> str | None:
    """`url` when a browser may load or follow it (http or https, with a host), else None."""
    if not _SAFE_URL.match(url):
        return None
    try:
        return url if urlsplit(url).hostname else None
    except ValueError:
        return None


def relative_link(file: str, page_dir: str) -> str | None:
    """A saved file as a link relative to the page's directory (percent-encoded: a `:` in a
    name can never read as a scheme), or None when there is no relative way (another drive)."""
    try:
        relative = os.path.relpath(file, page_dir)
    except ValueError:
        return None
    return quote(relative.replace(os.sep, "/"), safe="/")


def _media(name: str, kind: str) -> str:
    suffix = PurePath(urlsplit(name).path if "://" in name else name).suffix.lower()
    if suffix in VIDEO:
        return "video"
    if suffix in AUDIO:
        return "audio"
    if suffix:
        return "image"
    return "video" if kind == "video" else "image"


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def took(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest}s"
    return f"{minutes // 60}h {minutes % 60}m"


def _tone(state: str) -> str:
    return "ok" if state in GOOD else "bad" if state in BAD else "wait"


class _Page:
    def __init__(self, page_path: str, clean: Callable[[str], str]) -> None:
        self.page_dir = os.path.dirname(os.path.abspath(page_path))
        self.clean = clean

    def text(self, value: object) -> str:
        """A server's or a user's string, safe in text and in a quoted attribute alike."""
        return escape(self.clean(value if isinstance(value, str) else str(value)), quote=True)

    def value(self, value: object) -> str:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return self.text(shown)

    def sources(self, item: Item) -> tuple[str | None, str | None]:
        """(where the page loads the output from, what it is named by): the saved file by a
        relative link, else the URL when it is safe."""
        if item.file is not None:
            link = relative_link(item.file, self.page_dir)
            if link is not None:
                return link, item.file
        if item.url is not None:
            url = safe_url(self.clean(item.url))
            if url is not None:
                return url, item.url
        return None, item.url

    def media(self, card: Card) -> str:
        shown = []
        for number, item in enumerate(card.items, 1):
            source, name = self.sources(item)
            if source is None:
                if item.url:
                    shown.append(
                        f'<p class="none">output {number}: not a link siray follows: '
                        f"<code>{self.text(item.url)}</code></p>"
                    )
                continue
            src = escape(source, quote=True)
            label = self.text(f"output {number} of {card.task_id or 'the task'}")
            kind = _media(name or source, card.kind)
            if kind == "video":
                shown.append(
                    f'<video controls preload="metadata" src="{src}" title="{label}"></video>'
                )
            elif kind == "audio":
                shown.append(f'<audio controls preload="metadata" src="{src}"></audio>')
            else:
                shown.append(
                    f'<a href="{src}" rel="noopener noreferrer"><img src="{src}" alt="{label}" '
                    "></a>"
                )
        if not shown:
            shown.append(f'<p class="none">{self.text(_no_output(card.state))}</p>')
        return f'<div class="media">{"".join(shown)}</div>'

    def links(self, card: Card) -> str:
        rows = []
        for item in card.items:
            if item.file is not None:
                link = relative_link(item.file, self.page_dir)
                if link is not None:
                    name = self.text(os.path.basename(item.file))
                    rows.append(f'<li>file <a href="{escape(link, quote=True)}">{name}</a></li>')
            if item.url is not None:
                url = safe_url(self.clean(item.url))
                if url is not None:
                    rows.append(
                        f'<li>URL <a href="{escape(url, quote=True)}" rel="noopener noreferrer">'
                        f"{self.text(item.url)}</a></li>"
                    )
        return f'<ul class="links">{"".join(rows)}</ul>' if rows else ""

    def facts(self, card: Card) -> str:
        rows = [
            ("model", self.text(card.model or "?")),
            ("provider", self.text(card.provider or "?")),
            (
                "task",
                f"<code>{self.text(card.task_id or 'none (the submit got no answer)')}</code>",
            ),
        ]
        if card.name:
            rows.append(("name", self.text(card.name)))
        if card.submitted_at is not None:
            rows.append(
                (
                    "submitted",
                    f'<time datetime="{_iso(card.submitted_at)}">{_when(card.submitted_at)}</time>',
                )
            )
            if card.finished_at is not None:
                rows.append(("took", took(card.finished_at - card.submitted_at)))
        cells = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
        return f"<dl>{cells}</dl>"

    def inputs(self, card: Card) -> str:
        if not card.inputs:
            return ""
        rows = "".join(
            f"<tr><th>{self.text(key)}</th><td>{self.value(value)}</td></tr>"
            for key, value in card.inputs.items()
        )
        return f'<table class="inputs"><caption>inputs</caption>{rows}</table>'

    def card(self, card: Card, order: int) -> str:
        searched = " ".join(
            part for part in (card.prompt, card.model, card.task_id or "", card.name or "") if part
        ).casefold()
        prompt = (
            f'<p class="prompt">{self.text(card.prompt)}</p>'
            if card.prompt
            else '<p class="prompt none">no prompt</p>'
        )
        state = f'<p class="state {_tone(card.state)}">{self.text(card.status)}</p>'
        why = f'<p class="why">{self.text(card.fail_reason)}</p>' if card.fail_reason else ""
        return (
            f'<article class="card" data-task="{self.text(card.task_id or "")}" '
            f'data-state="{self.text(card.state)}" '
            f'data-time="{card.submitted_at or 0:.3f}" data-order="{order}" '
            f'data-text="{self.text(searched)}">'
            f"{self.media(card)}"
            f'<div class="about">{prompt}{state}{why}{self.facts(card)}{self.inputs(card)}'
            f"{self.links(card)}</div></article>"
        )

    def states(self, cards: Sequence[Card]) -> str:
        counts: dict[str, int] = {}
        for card in cards:
            counts[card.state] = counts.get(card.state, 0) + 1
        options = "".join(
            f'<option value="{self.text(state)}">{self.text(state.lower())} ({count})</option>'
            for state, count in sorted(counts.items())
        )
        return f'<option value="">every status</option>{options}'


def _no_output(state: str) -> str:
    if state in GOOD:
        return "no output listed"
    if state in BAD:
        return "no output: the task did not succeed"
    return "no output yet"


def render_page(
    cards: Sequence[Card],
    page_path: str | os.PathLike[str],
    *,
    made_at: float,
    clean: Callable[[str], str] = lambda text: text,
) -> str:
    """The whole page for `cards` (in the order given: newest first), to be written at
    `page_path` (saved files are linked relative to its directory). `clean` is applied to every
    text shown before it is escaped (siray scrubs its secrets with it)."""
    page = _Page(os.fspath(page_path), clean)
    body = "".join(page.card(card, order) for order, card in enumerate(cards))
    if not cards:
        body = '<p class="empty">No task matches.</p>'
    count = f"{len(cards)} task{'s' if len(cards) != 1 else ''}"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP, quote=True)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>siray gallery</title><style>{STYLE}</style></head>\n"
        '<body data-ready="no"><header><h1>siray gallery</h1>'
        f'<span class="meta">{count}, made {_when(made_at)}; states as siray last saw them</span>'
        '<div class="controls">'
        '<input id="filter" type="search" placeholder="filter: prompt, model, task id" '
        'aria-label="filter by prompt, model or task id">'
        f'<select id="state" aria-label="status">{page.states(cards)}</select>'
        '<button id="sort" type="button" aria-pressed="false">newest first</button>'
        f'<span id="shown" class="meta">{count}</span></div></header>\n'
        f'<main id="cards">{body}</main>\n'
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


# The page's only script: the filter box, the status filter and the sort toggle. The URL's hash
# sets them (`page.html#filter=fox&status=failure&sort=oldest`: a link to a filtered view), and
# the script notes on <body> how many cards are shown, and, as they load, how many images decoded
# and videos are ready to play (data-visible, data-images, data-images-loaded, data-videos,
# data-videos-ready: what a headless browser reads in the tests).
SCRIPT = """
(function () {
  "use strict";
  var body = document.body;
  var list = document.getElementById("cards");
  var filter = document.getElementById("filter");
  var state = document.getElementById("state");
  var sort = document.getElementById("sort");
  var shown = document.getElementById("shown");
  var cards = Array.prototype.slice.call(list.querySelectorAll("article.card"));
  var newestFirst = true;

  function apply() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var wanted = state.value;
    var count = 0;
    cards.forEach(function (card) {
      var text = card.getAttribute("data-text");
      var match = (!wanted || card.getAttribute("data-state") === wanted) &&
        words.every(function (word) { return text.indexOf(word) !== -1; });
      card.hidden = !match;
      if (match) { count += 1; }
    });
    shown.textContent = count + " of " + cards.length + " shown";
    body.setAttribute("data-visible", String(count));
  }

  function order() {
    cards.sort(function (a, b) {
      var by = Number(b.getAttribute("data-time")) - Number(a.getAttribute("data-time"));
      if (by === 0) {
        by = Number(a.getAttribute("data-order")) - Number(b.getAttribute("data-order"));
      }
      return newestFirst ? by : -by;
    });
    cards.forEach(function (card) { list.appendChild(card); });
    sort.textContent = newestFirst ? "newest first" : "oldest first";
    sort.setAttribute("aria-pressed", newestFirst ? "false" : "true");
  }

  var asked = new URLSearchParams(window.location.hash.slice(1));
  if (asked.has("filter")) { filter.value = asked.get("filter"); }
  if (asked.has("status")) { state.value = asked.get("status").toUpperCase(); }
  if (asked.get("sort") === "oldest") { newestFirst = false; }
  filter.addEventListener("input", apply);
  state.addEventListener("change", apply);
  sort.addEventListener("click", function () { newestFirst = !newestFirst; order(); });
  order();
  apply();
  body.setAttribute("data-script", "ran");
  var videos = Array.prototype.slice.call(document.querySelectorAll("video"));
  var ready = 0;
  body.setAttribute("data-videos", String(videos.length));
  body.setAttribute("data-videos-ready", "0");
  videos.forEach(function (video) {
    function counted() {
      ready += 1;
      body.setAttribute("data-videos-ready", String(ready));
    }
    if (video.readyState >= 1) { counted(); } else {
      video.addEventListener("loadedmetadata", counted, { once: true });
    }
  });
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var loaded = images.filter(function (image) {
      return image.complete && image.naturalWidth > 0;
    });
    body.setAttribute("data-images", String(images.length));
    body.setAttribute("data-images-loaded", String(loaded.length));
    body.setAttribute("data-ready", "yes");
  });
}());
"""

SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
# no script but the one above, no plugin, no form, no <base>; images and media from the page's
# own directory, file: and http(s) only (data: is not needed: the page makes none)
CSP = (
    "default-src 'none'; img-src 'self' file: http: https:; media-src 'self' file: http: https:; "
    f"style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; "
    "form-action 'none'"
)

STYLE = """
:root { color-scheme: light dark; --bg: #f4f4f2; --card: #fff; --ink: #1d1d1f; --muted: #6b6b70;
  --line: #e0e0dc; --ok: #1a7f37; --bad: #c62828; --wait: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --bg: #151517; --card: #202024; --ink: #ececef;
  --muted: #a0a0a8; --line: #34343a; --ok: #4ac26b; --bad: #ff6b6b; --wait: #d4a72c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  background: var(--bg); color: var(--ink); }
header { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: .5rem 1rem;
  align-items: center; padding: .75rem 1.25rem; background: var(--card);
  border-bottom: 1px solid var(--line); }
h1 { font-size: 1.1rem; margin: 0; }
.meta { color: var(--muted); }
.controls { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-left: auto; }
input, select, button { font: inherit; padding: .3rem .6rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--ink); }
input[type=search] { min-width: 16rem; }
button { cursor: pointer; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 1rem;
  padding: 1.25rem; align-items: start; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  overflow: hidden; }
.card[hidden] { display: none; }
.media { display: grid; gap: 2px; background: #111; }
.media img, .media video { display: block; width: 100%; height: auto; max-height: 420px;
  object-fit: contain; }
.media audio { width: 100%; }
.media .none { margin: 0; padding: 2.5rem 1rem; color: #bbb; text-align: center;
  overflow-wrap: anywhere; }
.about { display: flex; flex-direction: column; gap: .45rem; padding: .75rem .9rem 1rem; }
.prompt { margin: 0; font-size: 1rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.prompt.none { color: var(--muted); font-style: italic; }
.state { margin: 0; font-size: .8rem; font-weight: 600; letter-spacing: .04em; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .wait { color: var(--wait); }
.why { margin: 0; color: var(--bad); overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .75rem; margin: 0; }
dt, th, caption { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: .85rem; }
caption { text-align: left; font-size: .8rem; }
th, td { text-align: left; vertical-align: top; padding: .1rem .6rem .1rem 0;
  overflow-wrap: anywhere; font-weight: normal; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, monospace; }
.links { margin: 0; padding-left: 1.1rem; font-size: .8rem; overflow-wrap: anywhere; }
a { color: inherit; }
.empty { grid-column: 1 / -1; padding: 3rem; text-align: center; color: var(--muted); }
"""
