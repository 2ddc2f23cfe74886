"""Bluesky source against a local ``app.bsky.feed.searchPosts`` that follows the real lexicon shape.

No recording exists; the answers below are hand-made postViews (uri, cid, author, record with text,
createdAt, langs, facets, reply; indexedAt, counts) as the AppView serves them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sources.base import AuthError, RateLimitedError
from sources.bluesky import BlueskyOptions, BlueskySource
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"

pytest_plugins = ["tests.replay_fixtures"]


def _post(serial: int, indexed: datetime, text: str = "", reply_to: str | None = None) -> dict[str, Any]:
    did = f"did:plc:user{serial % 3}"
    body = text or f"🚂 @acme.nl waarom is trein {serial} weer te laat?"
    start = body.encode("utf-8").index(b"@acme.nl")
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": body,
        "createdAt": (indexed - timedelta(seconds=2)).isoformat().replace("+00:00", "Z"),
        "langs": ["nl"],
        "facets": [
            {
                "$type": "app.bsky.richtext.facet",
                "index": {"byteStart": start, "byteEnd": start + len(b"@acme.nl")},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:acmebrand"}],
            }
        ],
    }
    if reply_to:
        record["reply"] = {
            "root": {"uri": reply_to, "cid": "bafyroot"},
            "parent": {"uri": reply_to, "cid": "bafyp"},
        }
    return {
        "uri": f"at://{did}/app.bsky.feed.post/3k{serial:011d}",
        "cid": f"bafyreib{serial:040d}",
        "author": {
            "did": did,
            "handle": f"user{serial % 3}.bsky.social",
            "displayName": f"User {serial % 3}",
            "avatar": "https://cdn.bsky.app/img/avatar/plain/x/y@jpeg",
            "labels": [],
            "createdAt": "2023-05-01T00:00:00.000Z",
        },
        "record": record,
        "replyCount": 0,
        "repostCount": 1,
        "likeCount": 2,
        "quoteCount": 0,
        "indexedAt": indexed.isoformat().replace("+00:00", "Z"),
        "labels": [],
    }


class FakeAppView:
    """searchPosts with sort=latest, ``since`` (on the creation-based sort time), ``cursor`` and ``limit``."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.when = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
        self.jwt = "jwt-token-xyz"

    def add(self, count: int, **kwargs: Any) -> list[str]:
        """New posts, 30 seconds apart; returns their URIs."""
        uris = []
        for _ in range(count):
            self.when += timedelta(seconds=30)
            self.posts.append(_post(len(self.posts) + 1, self.when, **kwargs))
            uris.append(self.posts[-1]["uri"])
        return uris

    def search(self, request: Request) -> Reply:
        """One page of results (newest first)."""
        assert request.param("sort") == "latest"
        limit = int(request.param("limit") or 25)
        offset = int(request.param("cursor") or 0)
        since = request.param("since")
        hits = sorted(self.posts, key=lambda p: p["indexedAt"], reverse=True)
        if since:
            hits = [p for p in hits if p["record"]["createdAt"] >= since]
        page = hits[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(hits)}
        if offset + limit < len(hits):
            body["cursor"] = str(offset + limit)
        return Reply.json(body)

    def session(self, request: Request) -> Reply:
        """createSession: accepts exactly one app password."""
        login = json.loads(request.body)
        if login.get("password") != APP_PASSWORD:
            return Reply.json(
                {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, 401
            )
        return Reply.json(
            {"accessJwt": self.jwt, "refreshJwt": "r", "handle": login["identifier"], "did": "did:plc:me"}
        )


def _source(script: Script, **extra: Any) -> BlueskySource:
    options = BlueskyOptions(**{"queries": ["acme"], "api_url": script.base_url, "limit": 5, **extra})
    env = {"BSKY_ID": "acme-monitor.bsky.social", "BSKY_PASSWORD": APP_PASSWORD}
    return BlueskySource("bsky", options, make_ctx(env, FakeClock()))


async def test_search_posts_normalised(script: Script) -> None:
    """A postView becomes a mention: at:// URI id, bsky.app link, handle, language, tagged handles."""
    api = FakeAppView()
    script.route("GET", SEARCH, api.search)
    parent = api.add(1)[0]
    api.add(1, reply_to=parent)
    result = await _source(script).poll({})
    reply, first = result.mentions
    raw = api.posts[1]
    assert reply.external_id == raw["uri"] and reply.text == raw["record"]["text"]
    assert (
        reply.url == f"https://bsky.app/profile/{raw['author']['handle']}/post/{raw['uri'].rsplit('/', 1)[1]}"
    )
    assert (
        reply.author.handle == raw["author"]["handle"] and reply.author.name == raw["author"]["displayName"]
    )
    assert reply.created_at == datetime.fromisoformat(raw["record"]["createdAt"].replace("Z", "+00:00"))
    assert reply.language == "nl" and reply.mentioned_handles == ("acme.nl",)
    assert reply.parent_id == parent and reply.thread_id == parent
    assert first.parent_id is None


async def test_watermark_resume_and_cursor_paging(script: Script) -> None:
    """No duplicates across polls; a walk longer than max_pages resumes from the API cursor."""
    api = FakeAppView()
    script.route("GET", SEARCH, api.search)
    api.add(7)
    source = _source(script, max_pages=2)
    first = await source.poll({})
    assert len(first.mentions) == 5 and "since" not in script.requests[-1].query
    assert (await source.poll(first.cursor)).mentions == []
    assert script.requests[-1].param("since") is not None
    fresh = api.add(13)
    second = await source.poll(first.cursor)
    assert second.more and len(second.mentions) == 10
    assert script.requests[-1].param("cursor") == "5"
    third = await source.poll(second.cursor)
    assert not third.more
    assert sorted(m.external_id for m in second.mentions + third.mentions) == sorted(fresh)
    assert (await source.poll(third.cursor)).mentions == []
    await source.aclose()


async def test_login_with_app_password(script: Script) -> None:
    """With an account configured, the source logs in once and searches through the PDS with the JWT."""
    api = FakeAppView()
    script.route("POST", "/xrpc/com.atproto.server.createSession", api.session)
    script.route("GET", SEARCH, api.search)
    api.add(2)
    source = _source(script, pds_url=script.base_url, api_url="http://127.0.0.1:9", **_LOGIN)
    first = await source.poll({})
    await source.poll(first.cursor)
    assert len(first.mentions) == 2
    assert len(script.served("POST", "/xrpc/com.atproto.server.createSession")) == 1
    assert script.served("GET", SEARCH)[-1].headers["authorization"] == f"Bearer {api.jwt}"
    await source.aclose()


_LOGIN = {"identifier_env": "BSKY_ID", "app_password_env": "BSKY_PASSWORD"}


async def test_refused_login_is_auth_error_without_the_password(script: Script) -> None:
    """A refused app password is AuthError; the password is never in the message."""
    api = FakeAppView()
    api_session = api.session
    script.route("POST", "/xrpc/com.atproto.server.createSession", lambda r: api_session(_wrong(r)))
    source = _source(script, pds_url=script.base_url, **_LOGIN)
    with pytest.raises(AuthError) as caught:
        await source.poll({})
    assert APP_PASSWORD not in str(caught.value)


def _wrong(request: Request) -> Request:
    request.body = json.dumps({"identifier": "x", "password": "nope"}).encode()
    return request


async def test_rate_limit_reset_epoch(script: Script) -> None:
    """The AppView's 429 carries RateLimit-Reset as an epoch: the wait is computed with our clock."""
    clock = FakeClock()
    reset = int(clock().timestamp()) + 75
    script.route(
        "GET",
        SEARCH,
        lambda r: Reply.json({"error": "RateLimitExceeded"}, 429, {"RateLimit-Reset": str(reset)}),
    )
    options = BlueskyOptions(queries=["acme"], api_url=script.base_url)
    with pytest.raises(RateLimitedError) as caught:
        await BlueskySource("b", options, make_ctx({}, clock)).poll({})
    assert caught.value.retry_after == pytest.approx(75)


def test_login_needs_both_variables() -> None:
    """identifier without password (or the reverse) is refused at configuration time."""
    with pytest.raises(ValueError, match="both"):
        BlueskyOptions(queries=["a"], identifier_env="X")
