"""RSS/Atom source against feedparser's real-world test feeds, served from a local HTTP server.

Every file under ``fixtures/feeds/`` is served with the ``Header:`` lines of its leading comment
(status, Content-Type with charset, ETag, Last-Modified, Location) and, for ``compression/``, the
matching Content-Encoding. The expectation for each file is computed here with feedparser itself
on the bytes the server sends: the source must yield one mention per entry with the same ids and
links, and no file may make it raise anything but a SourceError.
"""

from __future__ import annotations

import calendar
import gzip
import html
import re
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from sources.base import PollResult, SourceError, TransientError
from sources.rss import FeedOptions, FeedSource, entry_id
from sources.text import MAX_TEXT_CHARS
from tests.fixtures_util import discover, fixture_params, fixtures_dir
from tests.replay_server import Reply, Request, Script, make_ctx

FEEDS = "feeds"
_ORIGINAL_ORIGIN = "http://localhost:8097/"
_REDIRECTS = {301, 302, 303, 307, 308}

pytest_plugins = ["tests.replay_fixtures"]


def _feed_files() -> list[object]:
    return fixture_params(FEEDS, [".xml", ".rdf", ".rss", ".atom", ".gz", ".z"])


def _comment_headers(body: bytes) -> list[tuple[str, str]]:
    """The ``Header: Name: value`` lines of the file's leading comment."""
    head = body[:4096].decode("latin-1")
    if "-->" not in head:
        return []
    comment = head.split("-->", 1)[0]
    headers: list[tuple[str, str]] = []
    for match in re.finditer(r"^Header:\s*([^:\r\n]+):\s*(.*?)\s*$", comment, flags=re.M):
        headers.append((match.group(1).strip(), match.group(2)))
    return headers


class FeedSite:
    """Serves the feeds folder the way feedparser's own test server does."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.root = fixtures_dir() / FEEDS
        script.fallback(self.answer)

    def url(self, path: Path) -> str:
        """Where a fixture file is served."""
        return f"{self.script.base_url}/feeds/{path.relative_to(self.root).as_posix()}"

    def rewrite(self, location: str) -> str:
        """Locations in the fixtures point at feedparser's server; point them here."""
        location = location.replace(_ORIGINAL_ORIGIN + "tests/", self.script.base_url + "/feeds/")
        return location.replace(_ORIGINAL_ORIGIN, self.script.base_url + "/")

    def served(self, path: Path) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body the server sends for a fixture file."""
        body = path.read_bytes()
        status = 200
        headers: list[tuple[str, str]] = []
        for name, value in _comment_headers(body):
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name.lower() == "location":
                headers.append((name, self.rewrite(value)))
            else:
                headers.append((name, value))
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/xml"))
        suffix = path.suffix.lower()
        if suffix == ".gz":
            headers.append(("Content-Encoding", "gzip"))
        elif suffix == ".z":
            headers.append(("Content-Encoding", "deflate"))
        return status, headers, body

    def answer(self, request: Request) -> Reply:
        """Serve a fixture file (with conditional GET), or the special 304 target."""
        if request.path.startswith("/-/return-304"):
            return Reply(304)
        if not request.path.startswith("/feeds/"):
            return Reply(404)
        path = self.root / request.path.removeprefix("/feeds/")
        if not path.is_file():
            return Reply(404)
        status, headers, body = self.served(path)
        etag = next((v for k, v in headers if k.lower() == "etag"), None)
        if etag and request.headers.get("if-none-match") == etag:
            return Reply(304, [(k, v) for k, v in headers if k.lower() in ("etag", "last-modified")])
        return Reply(status, headers, body)


def _lenient_decode(body: bytes, suffix: str) -> bytes:
    """The test's own undoing of the fixture's compression (falls back to the raw bytes)."""
    try:
        if suffix == ".gz":
            return gzip.decompress(body)
        if suffix == ".z":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        return body
    return body


def _expected(site: FeedSite, path: Path) -> tuple[str, Path | None]:
    """What polling ``path`` must give: ('entries', file parsed) | ('nothing', None) | ('error', None)."""
    status, headers, _ = site.served(path)
    if status in _REDIRECTS:
        location = next((v for k, v in headers if k.lower() == "location"), None)
        if location is None:
            return "error", None
        if "/-/return-304" in location:
            return "nothing", None
        return "entries", site.root / location.split("/feeds/", 1)[1]
    if status >= 400:
        return "error", None
    return "entries", path


def _reference(site: FeedSite, path: Path) -> feedparser.FeedParserDict:
    """feedparser's reading of the bytes and headers the server sends for ``path``."""
    _, headers, body = site.served(path)
    response_headers = {k.lower(): v for k, v in headers if k.lower() != "content-encoding"}
    response_headers["content-location"] = site.url(path)
    return feedparser.parse(_lenient_decode(body, path.suffix.lower()), response_headers=response_headers)


_TAGS = re.compile(r"<[^>]*>")
_CODE = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|$)", flags=re.I | re.S)


def _visible(markup: object) -> str:
    """What a reader sees of ``markup``: tags and script/style code gone, entities decoded."""
    return html.unescape(_TAGS.sub(" ", _CODE.sub(" ", str(markup or "")))).strip()


def _has_content(entry: feedparser.FeedParserDict) -> bool:
    """Entries with no text to show (no title, no body text, no link) are skipped, counted.

    An id alone or a body that is only an image is not enough; a link alone is (it stands in).
    """
    contents = [c.get("value") for c in entry.get("content") or []]
    texts = [entry.get("title"), *contents, entry.get("summary"), entry.get("description")]
    return bool(entry.get("link") or any(_visible(t) for t in texts))


def _entry_time(entry: feedparser.FeedParserDict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                return None
    return None


async def _poll(url: str, cursor: dict[str, str] | None = None) -> PollResult:
    source = FeedSource("feed", FeedOptions(url=url), make_ctx())
    try:
        return await source.poll(cursor or {})
    finally:
        await source.aclose()


@pytest.mark.parametrize("path", _feed_files())
async def test_replay_feed_file(path: Path, script: Script) -> None:
    """Each fixture feed yields feedparser's entries, one mention each, or a SourceError — never a crash."""
    site = FeedSite(script)
    outcome, final = _expected(site, path)
    try:
        result = await _poll(site.url(path))
    except SourceError as exc:
        if outcome == "error":
            return
        reference = _reference(site, final) if final else None
        # A feed feedparser itself cannot read may be refused, but only with a SourceError.
        assert reference is None or not reference.entries, f"{path.name}: {type(exc).__name__}: {exc}"
        return
    assert outcome != "error", f"{path.name} should have failed"
    if outcome == "nothing" or final is None:
        assert result.mentions == []
        return
    reference = _reference(site, final)
    entries = list(reference.entries)
    assert len(result.mentions) + result.skipped == len(entries)
    expected = [e for e in entries if _has_content(e)]
    assert len(result.mentions) == len(expected)
    for mention, entry in zip(result.mentions, expected, strict=True):
        want_id = entry_id(entry["id"], site.url(path)) if entry.get("id") else entry.get("link")
        if want_id:
            assert mention.external_id == want_id
        else:
            # a content hash, qualified by its feed like any id unique only within it
            assert mention.external_id.startswith(site.url(path) + "#sha1:")
        assert mention.url == (entry.get("link") or None)
        assert mention.source == "rss"
        assert mention.created_at.tzinfo is not None and mention.created_at.utcoffset() == timedelta(0)
        when = _entry_time(entry)
        if when is not None:
            assert mention.created_at == when
        assert "\x00" not in mention.text
    if "sanitize" in path.parts:
        for mention in result.mentions:
            lowered = (mention.text + (mention.title or "")).lower()
            assert "<script" not in lowered
            assert "javascript:" not in lowered


def test_replay_feeds_are_discovered() -> None:
    """The feeds folder is found at run time (skips cleanly when the data is absent)."""
    if not (fixtures_dir() / FEEDS).is_dir():
        pytest.skip("no feeds fixtures")
    assert len(discover(FEEDS, [".xml"])) > 100


def _fixture(rel: str) -> Path:
    path = fixtures_dir() / FEEDS / rel
    if not path.is_file():
        pytest.skip(f"fixture {rel} absent")
    return path


async def test_conditional_get_304_keeps_cursor(script: Script) -> None:
    """ETag/Last-Modified are stored; the next poll sends them and a 304 yields nothing, cursor kept."""
    site = FeedSite(script)
    url = site.url(_fixture("http/http_status_304.xml"))
    first = await _poll(url)
    assert first.cursor["etag"] == '"abc123"'
    assert first.cursor["last_modified"] == "Thu, 21 Apr 2011 19:02:20 GMT"
    second = await _poll(url, first.cursor)
    assert second.mentions == []
    assert second.cursor == first.cursor
    last = script.requests[-1]
    assert last.headers["if-none-match"] == '"abc123"'
    assert last.headers["if-modified-since"] == "Thu, 21 Apr 2011 19:02:20 GMT"


async def test_permanent_redirect_updates_cursor_url(script: Script) -> None:
    """A 301 stores the new URL; the next poll goes there directly."""
    site = FeedSite(script)
    target = _fixture("http/target.xml")
    first = await _poll(site.url(_fixture("http/http_status_301.xml")))
    assert first.cursor["url"] == site.url(target)
    await _poll(site.url(_fixture("http/http_status_301.xml")), first.cursor)
    assert script.requests[-1].path == "/feeds/http/target.xml"


async def test_temporary_redirect_keeps_configured_url(script: Script) -> None:
    """A 302/307 is followed but not remembered."""
    site = FeedSite(script)
    result = await _poll(site.url(_fixture("http/http_status_307.xml")))
    assert "url" not in result.cursor


async def test_gone_stops_the_source(script: Script) -> None:
    """HTTP 410 marks the source gone; later polls do not request the URL again."""
    script.route("GET", "/gone.xml", lambda r: Reply(410))
    url = script.base_url + "/gone.xml"
    first = await _poll(url)
    assert first.gone and first.mentions == []
    count = len(script.requests)
    second = await _poll(url, first.cursor)
    assert second.gone and len(script.requests) == count


async def test_changed_config_url_drops_old_state(script: Script) -> None:
    """State stored for another configured URL (redirect, validators, 410) is not applied."""
    site = FeedSite(script)
    url = site.url(_fixture("http/target.xml"))
    stale = {"config_url": "http://old.example/feed", "url": "http://old.example/moved", "gone_url": url}
    result = await _poll(url, stale)
    assert not result.gone and len(result.mentions) == 1
    assert result.cursor["config_url"] == url


async def test_server_errors_are_transient(script: Script) -> None:
    """5xx and a redirect without Location are TransientError."""
    script.route("GET", "/boom.xml", lambda r: Reply(503))
    with pytest.raises(TransientError):
        await _poll(script.base_url + "/boom.xml")
    site = FeedSite(script)
    with pytest.raises(TransientError):
        await _poll(site.url(_fixture("http/http_status_302-no-location.xml")))


async def test_connection_refused_is_transient() -> None:
    """Nothing listening is a TransientError, not a crash."""
    with pytest.raises(TransientError):
        await _poll("http://127.0.0.1:9/feed.xml")


async def test_compression_bomb_is_refused(script: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that inflates past the size limit is refused with a SourceError."""
    monkeypatch.setattr("sources.rss.MAX_FEED_BYTES", 10_000)
    bomb = gzip.compress(b"<rss>" + b" " * 100_000 + b"</rss>")
    script.route("GET", "/bomb.xml", lambda r: Reply(200, [("Content-Encoding", "gzip")], bomb))
    with pytest.raises(SourceError):
        await _poll(script.base_url + "/bomb.xml")


async def test_hostile_markup_never_reaches_text(script: Script) -> None:
    """Scripts and event handlers in titles and bodies are dropped from the plain text."""
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>&lt;script&gt;alert(1)&lt;/script&gt;Hello</title>"
        b'<description>&lt;p onclick="x()"&gt;ok&lt;/p&gt;&lt;script&gt;bad()&lt;/script&gt;</description>'
        b"<guid>g1</guid></item></channel></rss>"
    )
    script.route("GET", "/evil.xml", lambda r: Reply(200, [("Content-Type", "application/rss+xml")], feed))
    result = await _poll(script.base_url + "/evil.xml")
    (mention,) = result.mentions
    assert "<script" not in mention.text.lower() and "alert(1)" not in mention.text
    assert "bad()" not in mention.text and "ok" in mention.text


def _one_item_feed(guid: str, title: str, body: str, author: str = "") -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Site</title><item>'
        f"<title>{title}</title><description>{body}</description>{author}"
        f'<guid isPermaLink="false">{guid}</guid></item></channel></rss>'
    ).encode()


async def test_two_feeds_numbering_their_items_alike_give_two_mentions(script: Script) -> None:
    # many sites number their items: "1" on one site is not "1" on another
    for name, text in (("a", "Acme is great"), ("b", "Acme is terrible")):
        feed = _one_item_feed("1", text, text)
        script.route(
            "GET", f"/{name}.xml", lambda r, f=feed: Reply(200, [("Content-Type", "application/rss+xml")], f)
        )
    (a,) = (await _poll(script.base_url + "/a.xml")).mentions
    (b,) = (await _poll(script.base_url + "/b.xml")).mentions
    assert a.external_id != b.external_id and a.external_id.endswith("/a.xml#1")
    assert entry_id("https://site.example/p/1", "https://x.example/feed") == "https://site.example/p/1"
    assert entry_id("tag:site.example,2026:1", "https://x.example/feed") == "tag:site.example,2026:1"


async def test_huge_title_and_body_keep_the_text_limit_and_authors_their_name(script: Script) -> None:
    feed = _one_item_feed(
        "g", "Acme title " * 3000, "x" * 100_000, "<author>a@example.com (Alice A)</author>"
    )
    script.route("GET", "/huge.xml", lambda r: Reply(200, [("Content-Type", "application/rss+xml")], feed))
    (mention,) = (await _poll(script.base_url + "/huge.xml")).mentions
    assert len(mention.text) <= MAX_TEXT_CHARS and mention.text.endswith("…")
    assert mention.author.name == "Alice A"


async def test_script_code_in_broken_tags_never_reaches_text(script: Script) -> None:
    # feedparser's sanitizer drops a '<script\n\n>' tag but keeps its code as text; repmon's own
    # extractor, given the markup, drops the whole script element
    site = FeedSite(script)
    path = _fixture("wellformed/sanitize/item_description_crazy.xml")
    (mention,) = (await _poll(site.url(path))).mentions
    assert "executeMe" not in mention.text and "Did The Javascript Execute?" in mention.text


async def test_entries_without_text_are_skipped_and_counted(script: Script) -> None:
    # an id alone, or an image with no link to stand in, gives nothing to read: no empty mentions
    feed = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Site</title>
<item><guid isPermaLink="false">only-an-id</guid></item>
<item><description>&lt;img src="https://site.example/a.png"&gt;</description><guid isPermaLink="false">img-no-link</guid></item>
<item><title>  </title><description>&lt;p&gt; &lt;/p&gt;</description></item>
<item><description>&lt;img src="https://site.example/b.png"&gt;</description>
  <link>https://site.example/b</link></item>
<item><content:encoded>&lt;img src="https://site.example/c.png"&gt;</content:encoded>
  <description>Acme opens a shop</description><guid>https://site.example/c</guid></item>
</channel></rss>"""
    script.route("GET", "/sparse.xml", lambda r: Reply(200, [("Content-Type", "application/rss+xml")], feed))
    result = await _poll(script.base_url + "/sparse.xml")
    assert [m.text for m in result.mentions] == ["https://site.example/b", "Acme opens a shop"]
    assert result.skipped == 3 and result.skip_reasons == {"empty_entry": 3}


@pytest.mark.parametrize(
    ("rel", "title"),
    [
        pytest.param("illformed/chardet/eucjp.xml", "ゲーム三昧な正月", id="euc-jp"),
        pytest.param("illformed/chardet/koi8r.xml", "Как пережить новогоднюю ночь", id="koi8-r"),
        pytest.param("illformed/chardet/gb2312.xml", "不归移民漫画系列：专业工作", id="gb2312"),
    ],
)
async def test_feeds_without_a_declared_charset_are_decoded(rel: str, title: str, script: Script) -> None:
    # neither the HTTP header nor the XML declaration names the charset: feedparser needs chardet
    # to find it, and without it reads the bytes as windows-1252 (mojibake)
    site = FeedSite(script)
    (mention,) = (await _poll(site.url(_fixture(rel)))).mentions
    assert mention.title == title and mention.text.startswith(title)


async def test_entries_take_the_feed_language_when_they_have_none(script: Script) -> None:
    # RSS declares the language once on the channel; `lang:nl` must see it on every item
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Site</title><language>nl-BE</language>'
        b"<item><title>Acme levert te laat</title><guid>https://site.example/1</guid></item></channel></rss>"
    )
    atom = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:lang="nl"><title>Site</title>'
        b'<entry xml:lang="en"><title>Acme is late</title><id>tag:site.example,2026:1</id></entry>'
        b"<entry><title>Acme is te laat</title><id>tag:site.example,2026:2</id></entry></feed>"
    )
    for path, feed in (("/rss.xml", rss), ("/atom.xml", atom)):
        script.route("GET", path, lambda r, f=feed: Reply(200, [("Content-Type", "application/xml")], f))
    (item,) = (await _poll(script.base_url + "/rss.xml")).mentions
    assert item.language == "nl"  # the channel's nl-BE, without its region like every source
    english, dutch = (await _poll(script.base_url + "/atom.xml")).mentions
    assert (english.language, dutch.language) == ("en", "nl")  # an entry's own language wins
