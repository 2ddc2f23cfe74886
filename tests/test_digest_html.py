"""The HTML digest: self-contained, safe against hostile post text, and rendered by headless Chromium.

Hostile text comes from the feedparser sanitizer fixtures (scripts, iframes, event handlers), parsed
with sanitizing *off* so the raw markup reaches the report as mention text.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest

from alerts.digest import BrandDigest, PostRef, build_digest
from alerts.digest_chart import render_chart_png
from alerts.digest_html import CSP, render_html
from config.loader import parse_config
from monitor.db import Database
from monitor.migrate import upgrade
from tests.test_digest import CONFIG, WEEK, Seeder, local, mon, seed_week

CHROMIUM = os.environ.get("REPMON_CHROMIUM", "/usr/bin/chromium")
EVIL_BRAND = 'Evil <script>alert("brand")</script> & Co'
HOSTILE_URLS = [
    "javascript:alert(1)",
    " JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https://good.example@evil.example/",
    "//evil.example/no-scheme",
    'https://ok.example/p?a=1&b="><script>alert(1)</script>',
]
SAFE_URL = "https://example.org/post?id=1&lang=nl"


def hostile_texts(shared_dir: Path) -> list[str]:
    """Raw titles, summaries and contents of every feed in the sanitizer fixtures."""
    folder = shared_dir / "fixtures" / "feeds" / "wellformed" / "sanitize"
    texts: list[str] = []
    for path in sorted(folder.glob("*.xml")):
        feed = feedparser.parse(str(path), sanitize_html=False)
        for entry in feed.entries:
            texts.extend(v for v in (entry.get("title"), entry.get("summary")) if v)
            texts.extend(c.get("value", "") for c in entry.get("content", []) if c.get("value"))
        for key in ("title", "subtitle", "info", "rights"):
            value = feed.feed.get(key)
            if value:
                texts.append(value)
    return texts


@dataclass
class Hostile:
    """A digest whose posts, authors and brand name are hostile."""

    digest: BrandDigest
    texts: list[str]
    html: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    shared = (
        Path(os.environ.get("REPMON_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
    )
    if not (shared / "fixtures" / "feeds" / "wellformed" / "sanitize").is_dir():
        pytest.skip("sanitizer feed fixtures are not available")
    texts = hostile_texts(shared)
    assert len(texts) > 40, "expected the sanitizer fixtures to yield many hostile texts"
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'repmon.db'}")
    upgrade(db)
    s = Seeder(db)
    # Every hostile text as a complaint with "refund delayed" (so it is a theme example too), the
    # first ones also as praise; hostile URLs and author handles on the most-reached posts.
    for i, text in enumerate(texts):
        url = HOSTILE_URLS[i] if i < len(HOSTILE_URLS) else SAFE_URL
        s.mention(
            EVIL_BRAND,
            local(mon(i % 7), 9 + i % 12),
            f"refund delayed {text}",
            sentiment="negative",
            complaint=0.9,
            followers=100_000 - i,
            url=url,
            author='<img src=x onerror="alert(1)">',
            title='<iframe src="https://evil.example/"></iframe>' if i == 0 else None,
        )
        if i < 8:
            s.mention(
                EVIL_BRAND,
                local(mon(i % 7), 20),
                text,
                sentiment="positive",
                followers=50_000 - i,
                url=HOSTILE_URLS[i % len(HOSTILE_URLS)],
            )
    s.incident(EVIL_BRAND, local(mon(1), 8), local(mon(1), 9), None)
    digest = build_digest(db, parse_config(CONFIG).settings, EVIL_BRAND, WEEK.start, WEEK.end)
    html = render_html([digest], WEEK, generated_at=datetime(2024, 5, 6, 9, tzinfo=UTC))
    yield Hostile(digest, texts, html)
    db.dispose()


class _Collector(HTMLParser):
    """Every tag, attribute and text node of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._raw: str | None = None
        self.style_blocks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "style":
            self._raw = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._raw is not None:
            self.style_blocks.append(self._raw)
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None:
            self._raw += data
        else:
            self.text.append(data)


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


# ------------------------------------------------------------------------------ safety of the markup


def test_hostile_posts_are_escaped_not_executed(hostile: Hostile) -> None:
    doc = parse(hostile.html)
    tags = {tag for tag, _ in doc.tags}
    assert not tags & {
        "script",
        "iframe",
        "object",
        "embed",
        "applet",
        "frame",
        "frameset",
        "form",
        "base",
        "link",
        "svg",
        "math",
        "video",
        "audio",
        "source",
    }
    assert "<script" not in hostile.html.lower() and "<iframe" not in hostile.html.lower()
    for tag, attrs in doc.tags:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"<{tag}> carries event handler attributes {handlers}"
        assert "srcdoc" not in attrs and "formaction" not in attrs
    # The hostile markup is still there for the reader, as text.
    text = " ".join("".join(doc.text).split())
    shown = [*hostile.digest.top_complaints, *hostile.digest.top_praise]
    assert len(shown) == 10
    for post in shown:
        assert " ".join(post.text.split())[:80] in text
    assert "<script" in text.lower() and 'onerror="alert(1)"' in text
    assert EVIL_BRAND in text


def test_only_data_images_and_http_links(hostile: Hostile) -> None:
    doc = parse(hostile.html)
    srcs = [attrs["src"] for _, attrs in doc.tags if "src" in attrs]
    assert srcs and all(s and s.startswith("data:image/png;base64,") for s in srcs)
    assert [tag for tag, attrs in doc.tags if "src" in attrs] == ["img"]
    hrefs = [attrs["href"] or "" for tag, attrs in doc.tags if "href" in attrs]
    post_links = [h for h in hrefs if not h.startswith("#")]
    assert post_links, "the safe post links are missing"
    assert all(h.startswith(("https://", "http://")) for h in post_links), post_links
    # Every non-http(s) URL lost its link; http(s) ones stay, attribute-escaped (the parser decoded them).
    assert set(post_links) == {SAFE_URL, HOSTILE_URLS[-1]}
    assert 'href="https://ok.example/p?a=1&amp;b=&#34;&gt;&lt;script&gt;' in hostile.html
    assert all(
        attrs.get("rel") == "noopener noreferrer nofollow"
        for tag, attrs in doc.tags
        if tag == "a" and not (attrs.get("href") or "").startswith("#")
    )
    assert "javascript:" not in " ".join(hrefs).lower()
    styles = [attrs["style"] for _, attrs in doc.tags if "style" in attrs]
    assert all(s and s.startswith("width: ") and s.endswith("%") for s in styles)


def test_document_is_self_contained(hostile: Hostile) -> None:
    doc = parse(hostile.html)
    metas = {attrs.get("http-equiv"): attrs.get("content") for tag, attrs in doc.tags if tag == "meta"}
    assert metas["Content-Security-Policy"] == CSP
    assert "script-src" not in CSP and "default-src 'none'" in CSP
    assert any(attrs.get("name") == "viewport" for tag, attrs in doc.tags if tag == "meta")
    css = "".join(doc.style_blocks)
    assert "@media (max-width: 600px)" in css and "url(" not in css and "@import" not in css
    assert '"Segoe UI"' in css  # the stylesheet is not HTML-escaped (that would break it)


def test_report_content_on_the_seeded_week(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(db)
    seed_week(Seeder(db))
    settings = parse_config(CONFIG).settings
    digests = [build_digest(db, settings, b, WEEK.start, WEEK.end) for b in ("Acme", "Ghost")]
    html = render_html(digests, (WEEK.start, WEEK.end), charts=False)
    text = " ".join("".join(parse(html).text).split())
    assert "Week 18, 2024 (29 Apr – 5 May)" in text
    assert "+100% vs previous period (5)" in text
    assert "refund delayed in 4 complaints" in text
    assert "Rival" in text and "+200%" in text
    assert "median 12m, p90 25m to claim" in text
    assert "median 40m, p90 1h 42m to handle" in text
    assert "No mentions of Ghost have been stored yet." in text
    assert "±0%: nothing in this or the previous period" in text and "new: nothing" not in text  # Ghost
    assert "positive 33% (3)" in text and "neutral 22% (2)" in text and "negative 45% (4)" in text  # sum 100
    assert 'aria-label="positive 33%, neutral 22%, negative 45%"' in html
    assert 'href="#brand-2"' in html
    dropped = render_html(
        [dataclasses.replace(digests[0], volume=1, previous_volume=402)], WEEK, charts=False
    )
    assert "-99.8% vs previous period (402)" in dropped and "-100%" not in dropped
    db.dispose()


def test_a_long_post_is_shortened_before_a_url_not_through_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'u.db'}")
    upgrade(db)
    seed_week(Seeder(db))
    acme = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    db.dispose()
    url = "https://example.com/a_b/_/?x=1&y=2"
    posts = tuple(
        PostRef(mention_id=i, source="x", created_at=WEEK.start, text=text, followers=10 - i)
        for i, text in enumerate([f"short {url}.", "v" * 380 + f" {url} tail", "w" * 395 + f" {url}"])
    )
    html = render_html([dataclasses.replace(acme, top_complaints=posts)], WEEK, charts=False)
    text = "".join(parse(html).text)
    assert f"short {url}." in text and "https://example.com/a_b/_/?x=1&amp;y=2." in html  # byte-exact
    assert "v" * 380 + "…" in text and "w" * 395 + "…" in text  # the 400-character cut is before the URL
    assert text.count("example.com") == 1


def test_chart_png_is_a_real_image(hostile: Hostile) -> None:
    from PIL import Image

    png = render_chart_png(hostile.digest)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size[0] >= 600 and image.size[1] >= 300
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 20  # bars, lines and text, not a blank canvas
    red = sum(n for n, (r, g, b) in colors if r > 180 and g < 90 and b < 90)
    assert red > 500, "the negative bars are missing"


def test_chart_of_an_empty_period(tmp_path: Path) -> None:
    from PIL import Image

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    upgrade(db)
    d = build_digest(db, parse_config(CONFIG).settings, "Ghost", WEEK.start, WEEK.end)
    image = Image.open(io.BytesIO(render_chart_png(d)))
    assert image.format == "PNG" and image.size[0] > 0
    db.dispose()


# ------------------------------------------------------------------------------- headless Chromium


@dataclass
class PageReport:
    """What Chromium saw while loading a page."""

    screenshot: bytes = b""
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class _DevTools:
    """A minimal Chrome DevTools Protocol client over aiohttp's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 30)
        assert "error" not in reply, reply
        return dict(reply.get("result", {}))

    async def wait_event(self, method: str, since: int, timeout: float = 30) -> None:
        async def poll() -> None:
            while not any(e.get("method") == method for e in self.events[since:]):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(poll(), timeout)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(json.dumps(params.get("args", []))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(params["entry"].get("text", "")[:500])
        elif method == "Network.loadingFailed":
            out.append(f"load failed: {params.get('errorText')}")
    return out


async def render_in_chromium(
    path: Path, profile: Path, *, width: int, height: int, mobile: bool
) -> PageReport:
    """Load ``path`` in headless Chromium; collect errors, requests, a screenshot and layout facts."""
    import aiohttp

    profile.mkdir(parents=True, exist_ok=True)
    log = (profile / "chromium.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    report = PageReport()
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().strip():
                break
            if proc.returncode is not None:
                raise AssertionError(f"chromium exited: {(profile / 'chromium.log').read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = _DevTools(ws)
                for domain in ("Runtime", "Log", "Network", "Page"):
                    await cdp.call(f"{domain}.enable")
                await cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=mobile,
                )
                mark = len(cdp.events)
                await cdp.call("Page.navigate", url=path.resolve().as_uri())
                await cdp.wait_event("Page.loadEventFired", mark)
                report.values = {
                    "title": await cdp.evaluate("document.title"),
                    "images_ok": await cdp.evaluate(
                        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
                    ),
                    "images": await cdp.evaluate("document.images.length"),
                    "scroll_width": await cdp.evaluate("document.documentElement.scrollWidth"),
                    "inner_width": await cdp.evaluate("window.innerWidth"),
                    "body_height": await cdp.evaluate("document.body.scrollHeight"),
                    "font_size": await cdp.evaluate("getComputedStyle(document.body).fontSize"),
                }
                shot = await cdp.call("Page.captureScreenshot", format="png")
                report.screenshot = base64.b64decode(shot["data"])
                await asyncio.sleep(0.2)  # late console messages
                report.errors = _errors(cdp.events)
                report.requests = [
                    e["params"]["request"]["url"]
                    for e in cdp.events
                    if e.get("method") == "Network.requestWillBeSent"
                ]
                cdp.reader.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
    return report


def _need_chromium() -> None:
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM)):
        if os.environ.get("REPMON_REQUIRE_CHROMIUM"):
            pytest.fail(
                f"REPMON_REQUIRE_CHROMIUM is set but {CHROMIUM} is missing (apt-get install -y chromium)"
            )
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")


def _non_white(png: bytes) -> float:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return 1 - sum(histogram[245:]) / (image.size[0] * image.size[1])


@pytest.mark.chromium
@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 2000, False), (390, 844, True)], ids=["laptop", "phone"]
)
async def test_report_renders_in_headless_chromium(
    hostile: Hostile, tmp_path: Path, width: int, height: int, mobile: bool
) -> None:
    _need_chromium()
    page = tmp_path / "digest.html"
    page.write_text(hostile.html, encoding="utf-8")
    report = await render_in_chromium(page, tmp_path / "profile", width=width, height=height, mobile=mobile)
    assert report.errors == [], report.errors
    assert report.requests and all(u.startswith(("file:", "data:")) for u in report.requests), report.requests
    assert report.values["title"].startswith("Sentiment digest")
    assert report.values["images"] == 1 and report.values["images_ok"] is True
    # Responsive: no sideways scrolling of the page, whatever the post text.
    assert report.values["scroll_width"] <= report.values["inner_width"], report.values
    assert report.values["body_height"] > height  # a long report, not an empty page
    assert 0.03 < _non_white(report.screenshot) < 0.9, "the screenshot is blank (or a solid block)"
