"""Mastodon source: replay of Mastodon.py's recorded traffic, and poller behaviour against a fake API."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sources.base import AuthError, Mention, RateLimitedError, TransientError
from sources.http import MAX_REDIRECTS
from sources.mastodon import MastodonOptions, MastodonSource
from sources.watermark import stream_prefix
from tests.fixtures_util import fixture_params, load_cassette
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

TOKEN = "mastodon-token-0123456789"
ENV = {"MASTODON_TOKEN": TOKEN}
_TAG = re.compile(r"^/api/v1/timelines/tag/([^/]+)$")
_SEARCH = "/api/v2/search"
_INSTANCE = "/api/v2/instance"

pytest_plugins = ["tests.replay_fixtures"]


def _plain(markup: str) -> str:
    """The test's own HTML-to-text: tags out, entities decoded, whitespace collapsed."""
    spaced = re.sub(r"</p>|<br\s*/?>", " ", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", spaced)).split())


def _local(acct: str, domain: str | None, url: str) -> str:
    """The full handle: the instance's recorded domain, else the profile URL's host."""
    return acct if "@" in acct else f"{acct}@{domain or urlsplit(url).netloc}"


def _check_status(mention: Mention, status: dict[str, Any], domain: str | None) -> None:
    """Compare a mention with the raw recorded status."""
    assert mention.source == "mastodon"
    assert mention.external_id == status["uri"]
    shown = status.get("reblog") or status
    # The content warning is plain text, the content HTML.
    cw = " ".join(shown.get("spoiler_text", "").split())
    assert " ".join(mention.text.split()) == " ".join(f"{cw} {_plain(shown['content'])}".split())
    assert mention.created_at.isoformat().replace("+00:00", "Z")[:19] == status["created_at"][:19]
    assert mention.created_at.microsecond // 1000 == int(status["created_at"][20:23] or 0)
    assert mention.url == status["url"]
    account = status["account"]
    assert mention.author.handle == _local(account["acct"], domain, account["url"])
    assert mention.author.followers == account["followers_count"]
    assert mention.language == status.get("language")
    for tagged in status.get("mentions") or []:
        assert _local(tagged["acct"], domain, tagged["url"]) in mention.mentioned_handles


@pytest.mark.parametrize("path", fixture_params("mastodon", [".yaml", ".yml"]))
async def test_replay_mastodon_cassette(path: Path, script: Script) -> None:
    """Every status in recorded tag timelines and searches becomes exactly one correct mention."""
    cassette = load_cassette(path)
    recorded = [r for r in cassette if r.method == "GET" and (_TAG.match(r.path) or r.path == _SEARCH)]
    instance = [r for r in cassette if r.method == "GET" and r.path == _INSTANCE and r.status == 200][:1]
    if not recorded:
        pytest.skip("no tag timeline or search in this recording")
    for rec in recorded + instance:
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
    domain = instance[0].json()["domain"] if instance else None  # type: ignore[index]
    expected: dict[str, dict[str, Any]] = {}
    for rec in recorded:
        payload = rec.json()
        statuses = payload if isinstance(payload, list) else payload.get("statuses", [])  # type: ignore[attr-defined]
        for status in statuses:
            expected[status["uri"]] = status
    assert set(got) == set(expected)
    for uri, status in expected.items():
        _check_status(got[uri], status, domain)
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

    def add_at(self, created: datetime, acct: str = "bob@remote.example", **extra: Any) -> str:
        """One status written at ``created``, with the id Mastodon gives it (Snowflake.id_at)."""
        ident = str((int(created.timestamp() * 1000) << 16) + len(self.statuses))
        host = acct.split("@")[1] if "@" in acct else "social.acme.example"
        self.statuses.append(
            {
                "id": ident,
                "uri": f"https://{host}/users/{acct.split('@')[0]}/statuses/{ident}",
                "url": f"https://{host}/@{acct.split('@')[0]}/{ident}",
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "content": f"<p>#acme post {len(self.statuses)}</p>",
                "spoiler_text": "",
                "account": {
                    "id": str(len(self.statuses)),
                    "acct": acct,
                    "url": f"https://{host}/@{acct.split('@')[0]}",
                    "followers_count": 10,
                },
                "mentions": [],
                **extra,
            }
        )
        return str(self.statuses[-1]["uri"])

    def tag(self, request: Request) -> Reply:
        """min_id: the page right after it; else the newest page below max_id (newest first)."""
        limit = int(request.param("limit") or 20)
        min_id = request.param("min_id")
        high = int(request.param("max_id") or 10**30)
        ordered = sorted((s for s in self.statuses if int(s["id"]) < high), key=lambda s: int(s["id"]))
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


async def test_tag_timeline_walks_down_and_resumes(script: Script) -> None:
    """Tag timelines page down with max_id to the mark: no gaps, the rest on the next poll."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(7)
    source = _source(script, clock, max_pages=2, lateness=0)
    first = await source.poll({})
    assert len(first.mentions) == 5
    assert "authorization" not in script.requests[-1].headers  # token is optional
    fresh = api.add(12)
    second = await source.poll(first.cursor)
    assert second.more and len(second.mentions) == 10
    assert script.requests[-1].param("max_id") == api.statuses[-5]["id"]
    third = await source.poll(second.cursor)
    delivered = [m.external_id for m in second.mentions + third.mentions]
    assert sorted(delivered) == sorted(fresh) and not third.more
    assert (await source.poll(third.cursor)).mentions == []
    mention = third.mentions[0]
    assert mention.mentioned_handles == (f"acme@{urlsplit(script.base_url).netloc}",)
    assert mention.text.startswith("Hello @acme")
    await source.aclose()


async def test_search_walks_down_to_the_mark(script: Script) -> None:
    """Status search walks newest first with max_id down to the mark, resumably."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(2)
    source = _source(
        script, clock, tags=[], queries=["acme"], max_pages=2, access_token_env="MASTODON_TOKEN", lateness=0
    )
    start = await source.poll({})
    fresh = api.add(13)
    first = await source.poll(start.cursor)
    assert first.more and len(first.mentions) == 10
    second = await source.poll(first.cursor)
    assert not second.more
    assert sorted(m.external_id for m in first.mentions + second.mentions) == sorted(fresh)
    assert script.requests[-1].param("max_id") == api.statuses[-10]["id"]
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


async def test_post_reaching_the_instance_late_is_delivered(script: Script) -> None:
    """A remote post dated before the mark (its id is made from its date) is read in the margin."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(seconds=2), "local_user")
    source = _source(script, clock, limit=40)
    first = await source.poll({})
    assert len(first.mentions) == 1
    # Written on another server 10 s before the first poll, it reaches this instance after it.
    late = api.add_at(clock() - timedelta(seconds=10), "bigcustomer@other.social")
    clock.advance(60)
    newer = api.add_at(clock() - timedelta(seconds=5), "local_user2")
    second = await source.poll(first.cursor)
    assert {late, newer} <= {m.external_id for m in second.mentions}
    # The margin hangs below the newest post delivered: once that is two hours on, the walk
    # stops above the older posts and reads them no more.
    clock.advance(2 * 3600)
    api.add_at(clock() - timedelta(seconds=1), "local_user3")
    third = await source.poll(second.cursor)
    fourth = await source.poll(third.cursor)
    assert [m.author.handle for m in fourth.mentions] == ["local_user3@social.acme.example"]
    assert len(script.served("GET", "/api/v1/timelines/tag/acme")) == 4
    await source.aclose()


async def test_lateness_zero_reads_down_to_the_mark_only(script: Script) -> None:
    """lateness: 0 delivers nothing twice (and misses posts dated below the mark)."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(seconds=2))
    source = _source(script, clock, lateness="0s")
    first = await source.poll({})
    api.add_at(clock() - timedelta(seconds=10))
    assert (await source.poll(first.cursor)).mentions == []
    await source.aclose()


async def test_min_id_cursor_of_older_versions_is_upgraded(script: Script) -> None:
    """A stored min_id (older versions) becomes the mark: nothing after it is skipped."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(minutes=30))
    api.add_at(clock() - timedelta(minutes=20))
    old_id = api.statuses[-1]["id"]
    fresh = [api.add_at(clock() - timedelta(minutes=10 - i)) for i in range(7)]
    prefix = stream_prefix("mt", "acme")
    source = _source(script, clock, lateness="5m", max_pages=3)
    result = await source.poll({prefix + "min_id": old_id, "other": "kept"})
    # The post at the old mark is within the 5 minute margin (the store drops it), 30 min is not.
    assert sorted(m.external_id for m in result.mentions) == sorted([api.statuses[1]["uri"], *fresh])
    assert prefix + "min_id" not in result.cursor and result.cursor["other"] == "kept"
    assert result.cursor[prefix + "at"] == "2024-01-15T11:56:00+00:00"
    await source.aclose()


async def test_post_dated_in_the_future_does_not_hide_later_posts(script: Script) -> None:
    """A remote clock a day ahead cannot push the mark past posts still to come."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(seconds=5))
    api.statuses[-1]["created_at"] = (clock() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    source = _source(script, clock)
    first = await source.poll({})
    clock.advance(7200)
    later = api.add_at(clock() - timedelta(seconds=5))
    assert later in {m.external_id for m in (await source.poll(first.cursor)).mentions}
    await source.aclose()


async def test_local_handles_use_the_instance_domain(script: Script) -> None:
    """Local accounts get the instance's account domain, not the configured host and port."""
    clock = FakeClock()
    api = _fake(script, clock)
    script.route("GET", "/api/v2/instance", lambda r: Reply.json({"domain": "acme.example"}))
    mention = {"id": "9", "acct": "care", "username": "care", "url": "https://social.acme.example/@care"}
    api.add_at(clock() - timedelta(seconds=5), "bob", mentions=[mention], in_reply_to_account_id="9")
    source = _source(script, clock)
    result = await source.poll({})
    got = result.mentions[0]
    assert got.author.handle == "bob@acme.example"
    assert got.mentioned_handles == ("care@acme.example",) and got.in_reply_to == "care@acme.example"
    assert len(script.served("GET", "/api/v2/instance")) == 1
    await source.poll(result.cursor)
    assert len(script.served("GET", "/api/v2/instance")) == 1  # asked once per source
    await source.aclose()


async def test_local_handles_without_instance_domain_use_the_profile_host(script: Script) -> None:
    """An instance that does not say its domain: the host of the profile URL, never the port."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(seconds=5), "bob")
    result = await _source(script, clock).poll({})
    assert result.mentions[0].author.handle == "bob@social.acme.example"


async def test_content_warning_is_plain_text(script: Script) -> None:
    """spoiler_text is not HTML: angle brackets and ampersands in it are kept."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add_at(clock() - timedelta(seconds=5), spoiler_text="CW: food <spoilers> &amp; stuff")
    result = await _source(script, clock).poll({})
    assert result.mentions[0].text.splitlines()[0] == "CW: food <spoilers> &amp; stuff"


async def test_reply_parent_is_the_parent_uri(script: Script) -> None:
    """parent_id is the parent's URI (its external_id) when the parent is known, never a local id."""
    clock = FakeClock()
    api = _fake(script, clock)
    parent = api.add_at(clock() - timedelta(seconds=9))
    api.add_at(clock() - timedelta(seconds=5), in_reply_to_id=api.statuses[-1]["id"])
    api.add_at(clock() - timedelta(seconds=3), in_reply_to_id="123")
    by_text = {m.text: m for m in (await _source(script, clock).poll({})).mentions}
    assert by_text["#acme post 1"].parent_id == parent
    assert by_text["#acme post 2"].parent_id is None
    assert by_text["#acme post 2"].raw["in_reply_to_id"] == "123"


async def test_instance_moved_on_the_same_host_is_followed(script: Script) -> None:
    """A 301 to another path of the same host is followed with the token (not "body is not JSON")."""
    clock = FakeClock()
    api = FakeMastodon(clock)
    moved = script.base_url + "/new"
    script.route(
        "GET", "/api/v1/timelines/tag/acme", lambda r: Reply(301, [("Location", moved + r.path)], b"Moved")
    )
    script.route("GET", "/new/api/v1/timelines/tag/acme", api.tag)
    api.add(2)
    source = _source(script, clock, access_token_env="MASTODON_TOKEN")
    result = await source.poll({})
    assert len(result.mentions) == 2
    (followed,) = script.served("GET", "/new/api/v1/timelines/tag/acme")
    assert followed.headers["authorization"] == f"Bearer {TOKEN}"
    await source.aclose()


async def test_redirect_loop_is_transient(script: Script) -> None:
    """Redirects are followed a bounded number of times; a loop is a TransientError."""
    script.fallback(lambda r: Reply(302, [("Location", script.base_url + r.path)], b""))
    source = _source(script, FakeClock())
    with pytest.raises(TransientError, match="redirect loop"):
        await source.poll({})
    assert len(script.requests) == 1 + MAX_REDIRECTS
    await source.aclose()
