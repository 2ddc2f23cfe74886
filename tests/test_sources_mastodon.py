"""Mastodon source: replay of Mastodon.py's recorded traffic, and poller behaviour against a fake API."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sources.base import AuthError, Mention, RateLimitedError
from sources.mastodon import MastodonOptions, MastodonSource
from tests.fixtures_util import fixture_params, load_cassette
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

TOKEN = "mastodon-token-0123456789"
ENV = {"MASTODON_TOKEN": TOKEN}
_TAG = re.compile(r"^/api/v1/timelines/tag/([^/]+)$")
_SEARCH = "/api/v2/search"

pytest_plugins = ["tests.replay_fixtures"]


def _plain(markup: str) -> str:
    """The test's own HTML-to-text: tags out, entities decoded, whitespace collapsed."""
    spaced = re.sub(r"</p>|<br\s*/?>", " ", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", spaced)).split())


def _check_status(mention: Mention, status: dict[str, Any], host: str) -> None:
    """Compare a mention with the raw recorded status."""
    assert mention.source == "mastodon"
    assert mention.external_id == status["uri"]
    shown = status.get("reblog") or status
    assert " ".join(mention.text.split()) == _plain(shown.get("spoiler_text", "") + " " + shown["content"])
    assert mention.created_at.isoformat().replace("+00:00", "Z")[:19] == status["created_at"][:19]
    assert mention.created_at.microsecond // 1000 == int(status["created_at"][20:23] or 0)
    assert mention.url == status["url"]
    acct = status["account"]["acct"]
    assert mention.author.handle == (acct if "@" in acct else f"{acct}@{host}")
    assert mention.author.followers == status["account"]["followers_count"]
    assert mention.language == status.get("language")
    for tagged in status.get("mentions") or []:
        full = tagged["acct"] if "@" in tagged["acct"] else f"{tagged['acct']}@{host}"
        assert full in mention.mentioned_handles


@pytest.mark.parametrize("path", fixture_params("mastodon", [".yaml", ".yml"]))
async def test_replay_mastodon_cassette(path: Path, script: Script) -> None:
    """Every status in recorded tag timelines and searches becomes exactly one correct mention."""
    recorded = [
        r for r in load_cassette(path) if r.method == "GET" and (_TAG.match(r.path) or r.path == _SEARCH)
    ]
    if not recorded:
        pytest.skip("no tag timeline or search in this recording")
    for rec in recorded:
        script.queue("GET", rec.path, Reply(rec.status, rec.headers, rec.body))
    script.fallback(lambda r: Reply.json([] if r.path.startswith("/api/v1/") else {"statuses": []}))
    options = MastodonOptions(
        instance_url=script.base_url,
        tags=sorted({_TAG.match(r.path).group(1) for r in recorded if _TAG.match(r.path)}),  # type: ignore[union-attr]
        queries=sorted({r.query["q"][0] for r in recorded if r.path == _SEARCH}),
        access_token_env="MASTODON_TOKEN",
    )
    source = MastodonSource("mastodon-replay", options, make_ctx(ENV))
    got: dict[str, Mention] = {}
    cursor: dict[str, str] = {}
    for _ in range(len(recorded) + 1):
        result = await source.poll(cursor)
        for mention in result.mentions:
            got.setdefault(mention.external_id, mention)
        cursor = result.cursor
        if not script.pending():
            break
    await source.aclose()
    assert script.pending() == 0
    host = urlsplit(script.base_url).netloc
    expected: dict[str, dict[str, Any]] = {}
    for rec in recorded:
        payload = rec.json()
        statuses = payload if isinstance(payload, list) else payload.get("statuses", [])  # type: ignore[attr-defined]
        for status in statuses:
            expected[status["uri"]] = status
    assert set(got) == set(expected)
    for uri, status in expected.items():
        _check_status(got[uri], status, host)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in script.requests)


class FakeMastodon:
    """Tag timeline and search with Mastodon's min_id / max_id semantics (ids grow over time)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.statuses: list[dict[str, Any]] = []
        self.serial = 110_000_000_000_000_000
        self.headers: dict[str, str] = {}

    def add(self, count: int, **extra: Any) -> list[str]:
        """New public statuses; returns their URIs."""
        uris = []
        for _ in range(count):
            self.serial += 1000
            ident = str(self.serial)
            self.statuses.append(
                {
                    "id": ident,
                    "uri": f"https://remote.example/users/bob/statuses/{ident}",
                    "url": f"https://remote.example/@bob/{ident}",
                    "created_at": (self.clock() - timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
                    "content": f'<p>Hello <span class="h-card">@acme</span> #{ident}</p>',
                    "spoiler_text": "",
                    "language": "en",
                    "account": {
                        "id": "7",
                        "acct": "bob@remote.example",
                        "display_name": "Bob",
                        "followers_count": 3,
                    },
                    "mentions": [{"id": "1", "acct": "acme", "username": "acme"}],
                    **extra,
                }
            )
            uris.append(self.statuses[-1]["uri"])
        return uris

    def tag(self, request: Request) -> Reply:
        """min_id: the page right after it (newest first); none: the newest page."""
        limit = int(request.param("limit") or 20)
        min_id = request.param("min_id")
        ordered = sorted(self.statuses, key=lambda s: int(s["id"]))
        page = [s for s in ordered if int(s["id"]) > int(min_id)][:limit] if min_id else ordered[-limit:]
        return Reply.json(list(reversed(page)), headers=self.headers)

    def search(self, request: Request) -> Reply:
        """min_id filters, max_id pages down; newest first."""
        limit = int(request.param("limit") or 20)
        low = int(request.param("min_id") or 0)
        high = int(request.param("max_id") or 10**30)
        hits = sorted((s for s in self.statuses if low < int(s["id"]) < high), key=lambda s: -int(s["id"]))
        return Reply.json({"accounts": [], "statuses": hits[:limit], "hashtags": []}, headers=self.headers)


def _source(script: Script, clock: FakeClock, **extra: Any) -> MastodonSource:
    options = MastodonOptions(instance_url=script.base_url, **{"tags": ["acme"], "limit": 5, **extra})
    return MastodonSource("mastodon-test", options, make_ctx(ENV, clock))


def _fake(script: Script, clock: FakeClock) -> FakeMastodon:
    api = FakeMastodon(clock)
    script.route("GET", "/api/v1/timelines/tag/acme", api.tag)
    script.route("GET", _SEARCH, api.search)
    return api


async def test_tag_timeline_min_id_resume_and_paging(script: Script) -> None:
    """min_id pages forward: no duplicates, no gaps, the rest on the next poll."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(7)
    source = _source(script, clock, max_pages=2)
    first = await source.poll({})
    assert len(first.mentions) == 5
    assert "authorization" not in script.requests[-1].headers  # token is optional
    fresh = api.add(12)
    second = await source.poll(first.cursor)
    assert second.more and len(second.mentions) == 10
    assert script.requests[-2].param("min_id") == api.statuses[6]["id"]
    third = await source.poll(second.cursor)
    delivered = [m.external_id for m in second.mentions + third.mentions]
    assert sorted(delivered) == sorted(fresh) and not third.more
    assert (await source.poll(third.cursor)).mentions == []
    mention = third.mentions[0]
    assert mention.mentioned_handles == (f"acme@{urlsplit(script.base_url).netloc}",)
    assert mention.text.startswith("Hello @acme")
    await source.aclose()


async def test_search_walks_down_to_min_id(script: Script) -> None:
    """Status search walks newest first with max_id, below the stored min_id, resumably."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(2)
    source = _source(script, clock, tags=[], queries=["acme"], max_pages=2, access_token_env="MASTODON_TOKEN")
    start = await source.poll({})
    fresh = api.add(13)
    first = await source.poll(start.cursor)
    assert first.more and len(first.mentions) == 10
    second = await source.poll(first.cursor)
    assert not second.more
    assert sorted(m.external_id for m in first.mentions + second.mentions) == sorted(fresh)
    assert script.requests[-1].param("min_id") == api.statuses[1]["id"]
    assert script.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    await source.aclose()


async def test_boosts_link_to_the_original(script: Script) -> None:
    """A boost carries repost_of = the boosted status URI."""
    clock = FakeClock()
    api = _fake(script, clock)
    original = {"uri": "https://x.example/s/1", "content": "<p>orig</p>", "url": "https://x.example/@a/1"}
    api.add(1, reblog=original)
    result = await _source(script, clock).poll({})
    assert result.mentions[0].repost_of == "https://x.example/s/1" and result.mentions[0].text == "orig"


async def test_rate_limit_iso_reset(script: Script) -> None:
    """Mastodon's ISO X-RateLimit-Reset: 429 waits until then; a spent budget delays the next poll."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(1)
    reset = (clock() + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    api.headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    source = _source(script, clock)
    first = await source.poll({})
    with pytest.raises(RateLimitedError) as caught:
        await source.poll(first.cursor)
    assert caught.value.retry_after == pytest.approx(90)
    script.route(
        "GET", "/api/v1/timelines/tag/acme", lambda r: Reply.json({}, 429, {"X-RateLimit-Reset": reset})
    )
    clock.advance(30)
    with pytest.raises(RateLimitedError) as caught:
        await _source(script, clock).poll({})
    assert caught.value.retry_after == pytest.approx(60)


async def test_configured_token_missing_is_auth_error() -> None:
    """A token variable that is configured but unset is an AuthError naming it."""
    options = MastodonOptions(instance_url="http://127.0.0.1:9", tags=["a"], access_token_env="MY_MASTODON")
    with pytest.raises(AuthError, match="MY_MASTODON"):
        await MastodonSource("m", options, make_ctx({})).poll({})


async def test_malformed_statuses_are_skipped_and_counted(script: Script) -> None:
    """A status without id or creation time is left out and counted."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(1)
    api.statuses.append({"id": str(api.serial + 5), "uri": "u", "content": "no date"})
    result = await _source(script, clock).poll({})
    assert len(result.mentions) == 1 and result.skip_reasons == {"malformed": 1}
