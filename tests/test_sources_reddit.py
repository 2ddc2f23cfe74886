"""Reddit source: replay of praw's recorded traffic, and poller behaviour against a fake API."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import BrandSettings
from monitor.watch import Watchlist
from sources.base import AuthError, Mention, NotConfiguredError, RateLimitedError
from sources.reddit import RedditOptions, RedditSource
from tests.fixtures_util import Recorded, fixture_params, load_cassette
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

CLIENT_ID = "reddit-client-id-abc"
SECRET = "reddit-secret-0123456789"
ENV = {"REDDIT_CLIENT_ID": CLIENT_ID, "REDDIT_CLIENT_SECRET": SECRET}
USER_AGENT = "test:repmon:0.1 (by /u/repmon-tests)"
_LISTING = re.compile(r"^/r/([^/]+)/(new|comments|search)$")
_THREAD = re.compile(r"^/comments/([a-z0-9]+)$")
_EMPTY = {"kind": "Listing", "data": {"children": [], "after": None, "before": None}}

pytest_plugins = ["tests.replay_fixtures"]


def _things(payload: object) -> list[dict[str, Any]]:
    """Every submission/comment in a recorded answer, replies included (the test's own walk)."""
    found: list[dict[str, Any]] = []
    listings = payload if isinstance(payload, list) else [payload]
    for listing in listings:
        if not isinstance(listing, dict):
            continue
        for child in (listing.get("data") or {}).get("children") or []:
            if child.get("kind") in ("t1", "t3"):
                found.append(child["data"])
                replies = child["data"].get("replies")
                if isinstance(replies, dict):
                    found.extend(_things(replies))
    return found


def _check_thing(mention: Mention, data: dict[str, Any]) -> None:
    """Compare a mention with the raw recorded submission/comment."""
    assert mention.source == "reddit"
    assert mention.external_id == data["name"]
    if data["name"].startswith("t1_"):
        assert mention.text == data["body"]
        assert mention.parent_id == data["parent_id"]
        assert mention.thread_id == data["link_id"]
    else:
        body = (data.get("selftext") or "").strip()
        # A link post shows its link under the title; a crosspost's is relative to reddit.com.
        link = "" if data.get("is_self") else data["url"]
        link = "https://www.reddit.com" + link if link.startswith("/") else link
        assert mention.text == "\n\n".join(p for p in (data["title"], link, body) if p)
        assert mention.title == data["title"]
        assert mention.thread_id == data["name"]
    assert mention.created_at == datetime.fromtimestamp(float(data["created_utc"]), UTC)
    if data.get("permalink"):
        assert mention.url == "https://www.reddit.com" + data["permalink"]
    else:
        # Older comment listings carry no permalink: /r/<sub>/comments/<post>/_/<comment>/ is canonical.
        post = data["link_id"].removeprefix("t3_")
        assert mention.url == f"https://www.reddit.com/r/{data['subreddit']}/comments/{post}/_/{data['id']}/"
    author = data.get("author")
    assert mention.author.handle == (None if author in (None, "[deleted]") else author)


def _queue(script: Script, recorded: list[Recorded]) -> None:
    for rec in recorded:
        script.queue(rec.method, rec.path, Reply(rec.status, rec.headers, rec.body))


def _options(script: Script, recorded: list[Recorded], **extra: Any) -> RedditOptions:
    """Configure the source to read exactly the listings the recording holds."""
    queries, subreddits, threads = set(), set(), set()
    kinds: set[str] = set()
    search_sub = "all"
    for rec in recorded:
        listing = _LISTING.match(rec.path)
        thread = _THREAD.match(rec.path)
        if listing and listing.group(2) == "search":
            queries.add(rec.query["q"][0])
            search_sub = listing.group(1)
        elif listing:
            subreddits.add(listing.group(1))
            kinds.add(listing.group(2))
        elif thread:
            threads.add(thread.group(1))
    return RedditOptions(
        queries=sorted(queries),
        search_subreddit=search_sub,
        subreddits=sorted(subreddits),
        submissions="new" in kinds,
        comments="comments" in kinds,
        threads=sorted(threads),
        user_agent=USER_AGENT,
        auth_url=script.base_url,
        api_url=script.base_url,
        **extra,
    )


@pytest.mark.parametrize("path", fixture_params("reddit", [".json"]))
async def test_replay_reddit_cassette(path: Path, script: Script) -> None:
    """Every submission and comment in the recorded listings becomes exactly one correct mention."""
    recorded = load_cassette(path)
    if not any(r.path == "/api/v1/access_token" for r in recorded):
        pytest.skip("not a Reddit API recording")
    _queue(script, recorded)
    # After the recording runs out, a listing simply has nothing new.
    script.fallback(lambda r: Reply.json(_EMPTY))
    source = RedditSource("reddit-replay", _options(script, recorded), make_ctx(ENV))
    gets = [r for r in recorded if r.method == "GET"]
    got: dict[str, Mention] = {}
    cursor: dict[str, str] = {}
    for _ in range(len(gets) + 3):
        result = await source.poll(cursor)
        ids = [m.external_id for m in result.mentions]
        assert len(ids) == len(set(ids)), "a poll returned an item twice"
        for mention in result.mentions:
            got.setdefault(mention.external_id, mention)
        cursor = result.cursor
        if not script.pending("GET"):
            break
    await source.aclose()
    assert script.pending() == 0, "the source did not read every recorded answer"
    expected = {t["name"]: t for rec in gets if rec.status == 200 for t in _things(rec.json())}
    assert set(got) == set(expected)
    for name, data in expected.items():
        _check_thing(got[name], data)
    token_requests = script.served("POST", "/api/v1/access_token")
    assert len(token_requests) == 1, "the token is fetched once and reused"
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert token_requests[0].headers["authorization"] == f"Basic {basic}"
    for request in script.requests:
        assert request.headers["user-agent"] == USER_AGENT
        if request.method == "GET":
            assert request.headers["authorization"].startswith("bearer ")
            assert request.param("raw_json") == "1"


class FakeReddit:
    """Listings with Reddit's ``before`` semantics over an in-memory list (oldest first)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.items: list[dict[str, Any]] = []
        self.serial = 1000
        self.tokens = 0
        self.headers: dict[str, str] = {}
        self.reject_token: str | None = None

    def add(self, count: int) -> list[str]:
        """New submissions, one second apart."""
        names = []
        for _ in range(count):
            self.serial += 1
            base36 = _base36(self.serial)
            self.items.append(
                {
                    "name": f"t3_{base36}",
                    "id": base36,
                    "title": f"post {base36} about u/acme_help",
                    "selftext": "",
                    "author": "someone",
                    "created_utc": 1_700_000_000 + self.serial,
                    "permalink": f"/r/test/comments/{base36}/post/",
                    "subreddit": "test",
                }
            )
            names.append(f"t3_{base36}")
        return names

    def token(self, request: Request) -> Reply:
        """Issue a token."""
        self.tokens += 1
        return Reply.json({"access_token": f"tok{self.tokens}", "token_type": "bearer", "expires_in": 3600})

    def listing(self, request: Request) -> Reply:
        """``before=X``: the ``limit`` items right after X, newest first; else the newest ``limit``."""
        if self.reject_token and request.headers.get("authorization") == f"bearer {self.reject_token}":
            return Reply.json({"message": "Unauthorized", "error": 401}, 401)
        limit = int(request.param("limit") or 25)
        before = request.param("before")
        names = [i["name"] for i in self.items]
        if before:
            if before not in names:
                page = []
            else:
                start = names.index(before) + 1
                page = self.items[start : start + limit]
        else:
            page = self.items[-limit:]
        children = [{"kind": "t3", "data": item} for item in reversed(page)]
        return Reply.json({"kind": "Listing", "data": {"children": children}}, headers=self.headers)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out


def _fake(script: Script, clock: FakeClock) -> FakeReddit:
    api = FakeReddit(clock)
    script.route("POST", "/api/v1/access_token", api.token)
    script.route("GET", "/r/test/new", api.listing)
    return api


def _source(script: Script, clock: FakeClock, **extra: Any) -> RedditSource:
    options = RedditOptions(
        subreddits=["test"],
        comments=False,
        user_agent=USER_AGENT,
        auth_url=script.base_url,
        api_url=script.base_url,
        **{"limit": 5, **extra},
    )
    return RedditSource("reddit-test", options, make_ctx(ENV, clock))


async def test_before_cursor_resumes_without_duplicates(script: Script) -> None:
    """The second poll asks before=<newest fullname> and gets only the new posts."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(8)
    source = _source(script, clock)
    first = await source.poll({})
    assert len(first.mentions) == 5
    fresh = api.add(3)
    second = await source.poll(first.cursor)
    assert script.requests[-1].param("before") == api.items[7]["name"]
    assert sorted(m.external_id for m in second.mentions) == sorted(fresh)
    assert (await source.poll(second.cursor)).mentions == []
    assert api.tokens == 1
    assert second.mentions[0].mentioned_handles == ("acme_help",)
    await source.aclose()


async def test_paging_forward_resumes_across_polls(script: Script) -> None:
    """More new posts than max_pages x limit are read over two polls, in order, without gaps."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(1)
    source = _source(script, clock, max_pages=2)
    start = await source.poll({})
    fresh = api.add(12)
    first = await source.poll(start.cursor)
    assert first.more and len(first.mentions) == 10
    second = await source.poll(first.cursor)
    assert not second.more
    delivered = [m.external_id for m in first.mentions + second.mentions]
    assert sorted(delivered) == sorted(fresh)
    await source.aclose()


async def test_deleted_anchor_is_reanchored(script: Script) -> None:
    """When the anchor vanishes, ``before`` answers nothing; after N empty polls the source re-anchors."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(3)
    source = _source(script, clock, reanchor_after_empty=2)
    cursor = (await source.poll({})).cursor
    api.items.pop()  # the anchor is deleted
    fresh = api.add(2)
    first = await source.poll(cursor)
    assert first.mentions == []
    second = await source.poll(first.cursor)
    assert sorted(m.external_id for m in second.mentions) == sorted(fresh)
    third = await source.poll(second.cursor)
    assert third.mentions == []
    await source.aclose()


async def test_token_refresh_on_expiry_and_on_401(script: Script) -> None:
    """Tokens are reused until they expire; a 401 fetches a new one once and retries."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(2)
    source = _source(script, clock)
    cursor = (await source.poll({})).cursor
    cursor = (await source.poll(cursor)).cursor
    assert api.tokens == 1
    clock.advance(3600)
    cursor = (await source.poll(cursor)).cursor
    assert api.tokens == 2
    api.reject_token = "tok2"
    await source.poll(cursor)
    assert api.tokens == 3
    await source.aclose()


async def test_spent_budget_waits_for_reset(script: Script) -> None:
    """X-Ratelimit-Remaining 0 lets this poll finish and makes the next one wait X-Ratelimit-Reset."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(2)
    api.headers = {"X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "42", "X-Ratelimit-Used": "600"}
    source = _source(script, clock)
    first = await source.poll({})
    assert len(first.mentions) == 2
    with pytest.raises(RateLimitedError) as caught:
        await source.poll(first.cursor)
    assert caught.value.retry_after == pytest.approx(42)
    clock.advance(43)
    api.headers = {}
    await source.poll(first.cursor)
    await source.aclose()


async def test_429_uses_ratelimit_reset(script: Script) -> None:
    """HTTP 429 becomes RateLimitedError with X-Ratelimit-Reset seconds."""
    _fake(script, FakeClock())
    script.route("GET", "/r/test/new", lambda r: Reply.json({}, 429, {"X-Ratelimit-Reset": "17"}))
    with pytest.raises(RateLimitedError) as caught:
        await _source(script, FakeClock()).poll({})
    assert caught.value.retry_after == pytest.approx(17)


async def test_wrong_password_is_auth_error(script: Script) -> None:
    """Reddit answers a bad script-app password with 200 {"error": "invalid_grant"}: AuthError."""
    script.route("POST", "/api/v1/access_token", lambda r: Reply.json({"error": "invalid_grant"}))
    env = {**ENV, "REDDIT_USER": "me", "REDDIT_PASSWORD": "hunter2-secret"}
    source = _source(script, FakeClock(), username_env="REDDIT_USER", password_env="REDDIT_PASSWORD")
    source._ctx = make_ctx(env)
    with pytest.raises(AuthError) as caught:
        await source.poll({})
    assert "hunter2-secret" not in str(caught.value) and SECRET not in str(caught.value)
    body = script.served("POST", "/api/v1/access_token")[0].body.decode()
    assert "grant_type=password" in body


async def test_private_subreddit_is_config_error(script: Script) -> None:
    """403 with a reason (private/quarantined) is a configuration problem, not revoked credentials."""
    _fake(script, FakeClock())
    script.route("GET", "/r/test/new", lambda r: Reply.json({"reason": "private", "error": 403}, 403))
    with pytest.raises(NotConfiguredError, match="private"):
        await _source(script, FakeClock()).poll({})


async def test_thread_comment_tree_only_new_comments(script: Script) -> None:
    """A watched thread delivers its post and comments once, then only comments added later."""
    tree: list[dict[str, Any]] = [
        {"kind": "t1", "data": _comment("c1", "t3_abc", 10, "first")},
    ]

    def answer(request: Request) -> Reply:
        post = {
            "kind": "t3",
            "data": {
                "name": "t3_abc",
                "title": "Our launch",
                "selftext": "",
                "author": "acme",
                "created_utc": 5,
                "permalink": "/r/x/comments/abc/launch/",
            },
        }
        return Reply.json([_listing([post]), _listing(tree)])

    script.route("POST", "/api/v1/access_token", FakeReddit(FakeClock()).token)
    script.route("GET", "/comments/abc", answer)
    options = RedditOptions(threads=["t3_abc"], auth_url=script.base_url, api_url=script.base_url)
    source = RedditSource("thread", options, make_ctx(ENV))
    first = await source.poll({})
    assert [m.external_id for m in first.mentions] == ["t3_abc", "t1_c1"]
    assert first.mentions[1].in_reply_to == "acme"
    reply = _comment("c2", "t1_c1", 20, "a reply")
    tree[0]["data"]["replies"] = _listing([{"kind": "t1", "data": reply}])
    tree.append({"kind": "more", "data": {"count": 3, "children": ["x", "y", "z"]}})
    second = await source.poll(first.cursor)
    assert [m.external_id for m in second.mentions] == ["t1_c2"]
    assert second.mentions[0].in_reply_to == "someone" and second.skip_reasons == {"more_comments": 1}
    await source.aclose()


async def test_deleted_and_removed_items_are_skipped_and_counted(script: Script) -> None:
    """[deleted]/[removed] posts and comments are not kept (Reddit's terms), but the cursor passes them."""
    clock = FakeClock()
    api = _fake(script, clock)
    api.add(1)
    source = _source(script, clock)
    start = await source.poll({})
    names = api.add(4)
    api.items[-4]["selftext"] = "[removed]"  # removed by a moderator: the title stays on Reddit
    api.items[-4]["removed_by_category"] = "moderator"
    api.items[-3].update(selftext="[deleted]", author="[deleted]")
    api.items[-2]["removed_by_category"] = "reddit"  # a link post has no self text to replace
    api.items[-1]["author"] = "[deleted]"  # a deleted account; the post itself is still shown
    first = await source.poll(start.cursor)
    assert [m.external_id for m in first.mentions] == [names[-1]]
    assert first.mentions[0].author.handle is None
    assert first.skip_reasons == {"removed": 2, "deleted": 1} and first.skipped == 3
    assert (await source.poll(first.cursor)).mentions == []
    assert script.requests[-1].param("before") == names[-1]
    await source.aclose()


async def test_deleted_and_removed_comments_in_a_thread_are_skipped(script: Script) -> None:
    """Comment trees keep the comments still shown; [deleted] and [removed] ones are counted."""
    tree = [
        {"kind": "t1", "data": _comment("c1", "t3_abc", 10, "[removed]")},
        {"kind": "t1", "data": {**_comment("c2", "t3_abc", 11, "[deleted]"), "author": "[deleted]"}},
        {"kind": "t1", "data": _comment("c3", "t3_abc", 12, "still here")},
    ]
    script.route("POST", "/api/v1/access_token", FakeReddit(FakeClock()).token)
    script.route("GET", "/comments/abc", lambda r: Reply.json([_listing([]), _listing(tree)]))
    options = RedditOptions(threads=["abc"], auth_url=script.base_url, api_url=script.base_url)
    source = RedditSource("thread", options, make_ctx(ENV))
    result = await source.poll({})
    assert [m.external_id for m in result.mentions] == ["t1_c3"]
    assert result.skip_reasons == {"removed": 1, "deleted": 1}
    await source.aclose()


def _comment(ident: str, parent: str, created: int, body: str) -> dict[str, Any]:
    return {
        "name": f"t1_{ident}",
        "id": ident,
        "body": body,
        "author": "someone",
        "parent_id": parent,
        "link_id": "t3_abc",
        "created_utc": created,
        "permalink": f"/r/x/comments/abc/launch/{ident}/",
        "replies": "",
    }


def _listing(children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"children": children}}


def test_options_validate_names() -> None:
    """Subreddit and thread ids are checked at configuration time."""
    assert RedditOptions(subreddits=["r/Python"]).subreddits == ["Python"]
    with pytest.raises(ValueError):
        RedditOptions(subreddits=["no spaces allowed"])
    with pytest.raises(ValueError):
        RedditOptions()
    assert json.dumps(RedditOptions(threads=["t3_2gmzqe"]).threads) == '["2gmzqe"]'


_KLM_PAGE = "https://www.klm.com/nl/information/storing-bagage?utm_source=reddit&utm_medium=social"
_LINK_BRANDS = [
    BrandSettings(name="domain", keywords=("klm.com",)),
    BrandSettings(name="site", query="site:klm.com"),
    BrandSettings(name="url", query="url:storing-bagage"),
]


async def test_link_posts_show_and_match_their_link(script: Script) -> None:
    """A link post's external URL is in its text, under the title: site:, url: and keywords see it."""
    clock = FakeClock()
    api = _fake(script, clock)
    names = api.add(4)
    link, self_post, crosspost, image = api.items
    link.update(
        is_self=False, url=_KLM_PAGE, domain="klm.com", title="KLM raakt weer koffers kwijt, u/acme_help"
    )
    self_post.update(
        is_self=True, url="https://www.reddit.com" + self_post["permalink"], selftext="Zie klm.com"
    )
    crosspost.update(is_self=False, url="/r/klm/comments/abc123/koffers/", crosspost_parent="t3_abc123")
    image.update(is_self=False, url="https://i.redd.it/h8vzqktd215y.png", domain="i.redd.it")
    source = _source(script, clock)
    by_name = {m.external_id: m for m in (await source.poll({})).mentions}
    await source.aclose()
    assert set(by_name) == set(names)
    got = by_name[link["name"]]
    assert got.text == f"KLM raakt weer koffers kwijt, u/acme_help\n\n{_KLM_PAGE}"
    assert got.title == link["title"] and got.url == "https://www.reddit.com" + link["permalink"]
    assert got.mentioned_handles == ("acme_help",)
    assert [h.brand for h in Watchlist(_LINK_BRANDS).match(got)] == ["domain", "site", "url"]
    # A self post's url is its own permalink: not repeated in the text.
    assert by_name[self_post["name"]].text == f"{self_post['title']}\n\nZie klm.com"
    # A crosspost links to the original post on Reddit; media to where it is hosted.
    crossposted = "https://www.reddit.com/r/klm/comments/abc123/koffers/"
    assert by_name[crosspost["name"]].text == f"{crosspost['title']}\n\n{crossposted}"
    assert by_name[image["name"]].text == f"{image['title']}\n\nhttps://i.redd.it/h8vzqktd215y.png"
