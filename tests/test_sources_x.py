"""X source: replay of tweepy's recorded API v2 traffic, and poller behaviour against a fake API."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import BrandSettings
from monitor.watch import Watchlist
from sources.base import AuthError, Mention, NotConfiguredError, RateLimitedError
from sources.x import XOptions, XSource, tweets_from_payload
from tests.fixtures_util import Recorded, fixture_params, load_cassette
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

TOKEN = "x-test-bearer-0123456789"
ENV = {"X_BEARER_TOKEN": TOKEN}
_MENTIONS_PATH = re.compile(r"^/2/users/(\d+)/mentions$")

pytest_plugins = ["tests.replay_fixtures"]


def _snowflake(tweet_id: str) -> datetime:
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + 1288834974657) / 1000, UTC)


def _first_version(tweet: dict[str, Any]) -> str:
    """The id an edited post is known by: the first of its edit history."""
    return str((tweet.get("edit_history_tweet_ids") or [tweet["id"]])[0])


def _check_tweet(
    mention: Mention,
    tweet: dict[str, Any],
    users: dict[str, dict[str, Any]],
    included: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Compare one mention with the raw recorded post (expectations computed here, independently)."""
    included = included or {}
    retweeted = [r["id"] for r in tweet.get("referenced_tweets") or [] if r.get("type") == "retweeted"]
    original = included.get(retweeted[0]) if retweeted else None
    shown = original or tweet
    note = shown.get("note_tweet") or {}
    text = html.unescape(note.get("text") or shown["text"])
    # t.co links read as the addresses they stand for (the entities of the post shown).
    for entities in (shown.get("entities") or {}, note.get("entities") or {}):
        for link in entities.get("urls") or []:
            target: str | None = link.get("unwound_url") or link.get("expanded_url")
            if target:
                text = re.sub(re.escape(link["url"]) + r"(?!\w)", target.replace("\\", "\\\\"), text)
    if original is not None and (prefix := re.match(r"RT @\w+: ", tweet["text"])):
        text = prefix.group(0) + text
    assert mention.source == "x"
    assert mention.external_id == _first_version(tweet)
    assert mention.text == text
    if tweet.get("created_at"):
        assert mention.created_at == datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
    else:
        assert mention.created_at == _snowflake(tweet["id"])
    user = users.get(tweet.get("author_id", ""), {})
    assert mention.author.handle == user.get("username")
    if user.get("username"):
        assert mention.url == f"https://x.com/{user['username']}/status/{tweet['id']}"
        followers = (user.get("public_metrics") or {}).get("followers_count")
        assert mention.author.followers == followers
    else:
        assert mention.url == f"https://x.com/i/web/status/{tweet['id']}"
    if original is not None:
        assert mention.repost_of == _first_version(original)
    else:
        assert mention.repost_of == (retweeted[0] if retweeted else None)
    for handle in re.findall(r"(?<![\w@])@(\w{1,15})", re.sub(r"https?://\S+", " ", mention.text)):
        assert handle in mention.mentioned_handles


def _users(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["id"]: u for u in (payload.get("includes") or {}).get("users") or []}


def _included(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in (payload.get("includes") or {}).get("tweets") or [] if "text" in t}


def _posts(payload: object) -> list[dict[str, Any]]:
    """The posts in ``data`` of a recorded answer (objects with an id and a text)."""
    if not isinstance(payload, dict):
        return []
    data = payload.get("data")
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return [d for d in items if isinstance(d, dict) and "id" in d and "text" in d]


def _queue(script: Script, recorded: list[Recorded]) -> None:
    for rec in recorded:
        script.queue(rec.method, rec.path, Reply(rec.status, rec.headers, rec.body))


@pytest.mark.parametrize("path", fixture_params("x", [".yaml", ".yml"]))
async def test_replay_x_cassette(path: Path, script: Script) -> None:
    """Every post in a recorded search / mentions answer becomes exactly one correct mention."""
    recorded = load_cassette(path)
    _queue(script, recorded)
    search = [r for r in recorded if r.path == "/2/tweets/search/recent"]
    timelines = [r for r in recorded if _MENTIONS_PATH.match(r.path)]
    lookups = [r for r in recorded if r.path.startswith("/2/users/by/username/") and r.status == 200]
    polled = search + timelines
    if polled:
        pages = max(Counter(r.path for r in polled).values())
        options = XOptions(
            queries=sorted({r.query["query"][0] for r in search}),
            mentions_of=sorted({_MENTIONS_PATH.match(r.path).group(1) for r in timelines}),  # type: ignore[union-attr]
            api_url=script.base_url,
            max_pages=pages,
            first_pages=pages,
        )
        source = XSource("x-replay", options, make_ctx(ENV))
        got: dict[str, Mention] = {}
        cursor: dict[str, str] = {}
        for _ in range(len(polled)):
            result = await source.poll(cursor)
            for mention in result.mentions:
                assert mention.external_id not in got, "a post was delivered twice"
                got[mention.external_id] = mention
            cursor = result.cursor
            if not script.pending("GET"):
                break
        await source.aclose()
        assert script.overruns == []
        expected: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for rec in polled:
            if rec.status == 200:
                payload = rec.json()
                assert isinstance(payload, dict)
                posts = _posts(payload)
                for tweet in posts:
                    expected[_first_version(tweet)] = (tweet, payload)
                # Retweeted originals that X included come as mentions of their own.
                included = _included(payload)
                for tweet in posts:
                    for ref in tweet.get("referenced_tweets") or []:
                        original = included.get(ref["id"])
                        if ref.get("type") == "retweeted" and original is not None:
                            expected.setdefault(_first_version(original), (original, payload))
        assert set(got) == set(expected)
        for tweet_id, (tweet, payload) in expected.items():
            _check_tweet(got[tweet_id], tweet, _users(payload), _included(payload))
        for request in script.requests:
            if request.path == "/2/tweets/search/recent" or _MENTIONS_PATH.match(request.path):
                assert request.headers["authorization"] == f"Bearer {TOKEN}"
                assert "author_id" in (request.param("expansions") or "")
    # Answers of endpoints the source does not poll (lookups, counts) go through the same normaliser.
    for rec in recorded:
        if rec in polled or rec.status != 200 or not rec.body:
            continue
        payload = rec.json()
        posts = _posts(payload)
        mentions = tweets_from_payload(payload)  # type: ignore[arg-type]
        assert [m.external_id for m in mentions] == [_first_version(t) for t in posts]
        for mention, tweet in zip(mentions, posts, strict=True):
            _check_tweet(mention, tweet, _users(payload), _included(payload))  # type: ignore[arg-type]
    for rec in lookups:
        # A recorded username lookup: mentions_of=@name resolves to the recorded id, once.
        data = rec.json()["data"]  # type: ignore[index]
        lookup_script = script
        lookup_script.route("GET", f"/2/users/{data['id']}/mentions", lambda r: Reply.json({"meta": {}}))
        name = rec.path.rsplit("/", 1)[1]
        source = XSource(
            "x-lookup", XOptions(mentions_of=[f"@{name}"], api_url=script.base_url), make_ctx(ENV)
        )
        result = await source.poll({})
        await source.aclose()
        assert result.cursor[f"xu.{name.lower()}"] == data["id"]
        assert lookup_script.served("GET", f"/2/users/{data['id']}/mentions")


class FakeX:
    """A tiny X API v2: recent search and mentions over an in-memory timeline (newest = highest id)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.tweets: list[dict[str, Any]] = []
        self.users = {
            "1": {"id": "1", "username": "alice", "name": "Alice", "public_metrics": {"followers_count": 42}}
        }
        self.next_id = 1_600_000_000_000_000_000
        self.remaining: int | None = None
        self.reset_in = 300

    def add(self, count: int, **extra: Any) -> list[str]:
        """Post ``count`` new tweets; returns their ids."""
        ids = []
        for _ in range(count):
            self.next_id += 1 << 22
            tweet = {
                "id": str(self.next_id),
                "text": f"tweet {self.next_id} &amp; more @acme",
                "author_id": "1",
                "created_at": (self.clock() - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
                "lang": "en",
                "entities": {"mentions": [{"username": "acme", "start": 0, "end": 5}]},
                **extra,
            }
            self.tweets.append(tweet)
            ids.append(tweet["id"])
        return ids

    def answer(self, request: Request) -> Reply:
        """Serve a page: since_id filters, next_token/pagination_token is an offset."""
        since = int(request.param("since_id") or 0)
        size = int(request.param("max_results") or 10)
        offset = int(request.param("next_token") or request.param("pagination_token") or 0)
        newer = sorted((t for t in self.tweets if int(t["id"]) > since), key=lambda t: -int(t["id"]))
        page = newer[offset : offset + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if offset + size < len(newer):
            meta["next_token"] = str(offset + size)
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
            body["includes"] = {"users": list(self.users.values())}
        headers = {}
        if self.remaining is not None:
            reset = int(self.clock().timestamp()) + self.reset_in
            headers = {"x-rate-limit-remaining": str(self.remaining), "x-rate-limit-reset": str(reset)}
        return Reply.json(body, headers=headers)


def _source(script: Script, clock: FakeClock, **options: Any) -> XSource:
    opts = XOptions(**{"queries": ["acme"], "api_url": script.base_url, "max_results": 10, **options})
    return XSource("x-test", opts, make_ctx(ENV, clock))


async def test_since_id_resume_without_duplicates(script: Script) -> None:
    """The second poll asks with since_id and returns only what is new."""
    clock = FakeClock()
    api = FakeX(clock)
    script.route("GET", "/2/tweets/search/recent", api.answer)
    api.add(25)
    source = _source(script, clock)
    first = await source.poll({})
    assert len(first.mentions) == 10  # first poll: one page, no history walk
    newest = max(int(m.external_id) for m in first.mentions)
    assert first.cursor[next(k for k in first.cursor if k.endswith("since_id"))] == str(newest)
    fresh = api.add(3)
    second = await source.poll(first.cursor)
    assert sorted(m.external_id for m in second.mentions) == sorted(fresh)
    assert script.requests[-1].param("since_id") == str(newest)
    third = await source.poll(second.cursor)
    assert third.mentions == []
    await source.aclose()


async def test_next_token_paging_resumes_across_polls(script: Script) -> None:
    """A walk longer than max_pages continues from next_token; since_id moves only when it is done."""
    clock = FakeClock()
    api = FakeX(clock)
    script.route("GET", "/2/tweets/search/recent", api.answer)
    api.add(1)
    source = _source(script, clock, max_pages=2)
    start = await source.poll({})
    fresh = api.add(25)
    first = await source.poll(start.cursor)
    assert first.more and len(first.mentions) == 20
    assert any(k.endswith(".next") for k in first.cursor)
    second = await source.poll(first.cursor)
    assert script.requests[-1].param("next_token") == "20"
    assert not second.more and len(second.mentions) == 5
    delivered = [m.external_id for m in first.mentions + second.mentions]
    assert sorted(delivered) == sorted(fresh) and len(set(delivered)) == 25
    since_key = next(k for k in second.cursor if k.endswith("since_id"))
    assert second.cursor[since_key] == max(fresh, key=int)
    assert not any(k.endswith(".next") or k.endswith("p.newest") for k in second.cursor)
    await source.aclose()


async def test_mentions_timeline_uses_pagination_token(script: Script) -> None:
    """The mentions timeline of an own account pages with pagination_token."""
    clock = FakeClock()
    api = FakeX(clock)
    script.route("GET", "/2/users/99/mentions", api.answer)
    api.add(15)
    source = _source(script, clock, queries=[], mentions_of=["99"], first_pages=2)
    result = await source.poll({})
    assert len(result.mentions) == 15
    assert script.requests[-1].param("pagination_token") == "10"
    assert all(m.mentioned_handles == ("acme",) for m in result.mentions)
    assert result.mentions[0].author.followers == 42 and result.mentions[0].text.endswith("& more @acme")
    await source.aclose()


async def test_rate_limit_429_uses_reset_header(script: Script) -> None:
    """HTTP 429 becomes RateLimitedError waiting until x-rate-limit-reset (by the injected clock)."""
    clock = FakeClock()
    reset = int(clock().timestamp()) + 120
    script.route(
        "GET", "/2/tweets/search/recent", lambda r: Reply.json({}, 429, {"x-rate-limit-reset": str(reset)})
    )
    source = _source(script, clock)
    with pytest.raises(RateLimitedError) as caught:
        await source.poll({})
    assert caught.value.retry_after == pytest.approx(120)
    assert TOKEN not in str(caught.value)
    await source.aclose()


async def test_spent_budget_stops_paging_and_waits(script: Script) -> None:
    """remaining=0 ends the walk (resumable) and the next poll waits for the reset."""
    clock = FakeClock()
    api = FakeX(clock)
    script.route("GET", "/2/tweets/search/recent", api.answer)
    api.add(1)
    source = _source(script, clock, max_pages=5)
    start = await source.poll({})
    api.add(30)
    api.remaining = 0
    first = await source.poll(start.cursor)
    assert first.more and len(first.mentions) == 10
    with pytest.raises(RateLimitedError) as caught:
        await source.poll(first.cursor)
    assert caught.value.retry_after == pytest.approx(300)
    clock.advance(301)
    api.remaining = None
    second = await source.poll(first.cursor)
    assert len(second.mentions) == 20 and not second.more
    await source.aclose()


async def test_retweets_link_to_the_original(script: Script) -> None:
    """A retweet carries repost_of (the store links it instead of alerting again)."""
    clock = FakeClock()
    api = FakeX(clock)
    script.route("GET", "/2/tweets/search/recent", api.answer)
    original = api.add(1)[0]
    api.add(1, referenced_tweets=[{"type": "retweeted", "id": original}], conversation_id=original)
    result = await _source(script, clock).poll({})
    retweet = next(m for m in result.mentions if m.repost_of)
    assert retweet.repost_of == original and retweet.thread_id == original


async def test_stale_since_id_restarts_from_now(script: Script) -> None:
    """X refuses a since_id older than 7 days with 400: the stream starts again instead of failing."""
    clock = FakeClock()
    api = FakeX(clock)

    def answer(request: Request) -> Reply:
        if request.param("since_id") == "1":
            error = {"parameters": {"since_id": ["1"]}, "message": "since_id too old"}
            return Reply.json({"errors": [error], "title": "Invalid Request"}, 400)
        return api.answer(request)

    script.route("GET", "/2/tweets/search/recent", answer)
    api.add(3)
    source = _source(script, clock)
    prefix = next(iter((await source.poll({})).cursor)).rsplit(".", 1)[0]
    result = await source.poll({prefix + ".since_id": "1"})
    assert len(result.mentions) == 3
    assert result.cursor[prefix + ".since_id"] == max((t["id"] for t in api.tweets), key=int)


async def test_invalid_query_is_a_config_error(script: Script) -> None:
    """Any other 400 (a bad query) is NotConfiguredError with X's message, not a retry loop."""
    error = {"parameters": {"query": ["(("]}, "message": "There were errors processing your request"}
    script.route("GET", "/2/tweets/search/recent", lambda r: Reply.json({"errors": [error]}, 400))
    with pytest.raises(NotConfiguredError, match="errors processing"):
        await _source(script, FakeClock()).poll({})


async def test_unknown_username_is_a_config_error(script: Script) -> None:
    """mentions_of an account that does not exist fails clearly."""
    script.route(
        "GET", "/2/users/by/username/nobody", lambda r: Reply.json({"errors": [{"title": "Not Found"}]})
    )
    source = _source(script, FakeClock(), queries=[], mentions_of=["@nobody"])
    with pytest.raises(NotConfiguredError, match="@nobody"):
        await source.poll({})


async def test_missing_token_names_the_variable() -> None:
    """Without the bearer token the source raises AuthError naming X_BEARER_TOKEN."""
    source = XSource("x", XOptions(queries=["a"]), make_ctx({}))
    with pytest.raises(AuthError, match="X_BEARER_TOKEN"):
        await source.poll({})


def test_options_need_something_to_read() -> None:
    """A source with neither queries nor accounts is refused at configuration time."""
    with pytest.raises(ValueError, match="read nothing"):
        XOptions()
    with pytest.raises(ValueError, match="neither"):
        XOptions(mentions_of=["not a name!"])


async def test_malformed_posts_are_skipped_and_counted(script: Script) -> None:
    """A post without a usable id or text is left out and counted, the rest still arrives."""
    clock = FakeClock()
    api = FakeX(clock)
    api.add(2)

    def answer(request: Request) -> Reply:
        reply = api.answer(request)
        body = json.loads(reply.body)
        body["data"] += [{"id": "not-a-number", "text": "x"}, {"id": "123"}, "junk"]
        return Reply.json(body)

    script.route("GET", "/2/tweets/search/recent", answer)
    result = await _source(script, clock).poll({})
    assert len(result.mentions) == 2
    assert result.skipped == 3 and result.skip_reasons == {"malformed": 3}


# Crafted answers in the documented API v2 shapes, for cases the recordings lack (retweets with
# expansions, edits, empty pages).
_BIG = {"id": "1", "username": "bigacct", "name": "Big", "public_metrics": {"followers_count": 500000}}
_SMALL = {"id": "2", "username": "smallacct", "name": "Small", "public_metrics": {"followers_count": 3}}
_LONG = (
    "Acme bank lost my savings transfer for the third time this month and support keeps closing "
    "my tickets without reading them. I have been a customer for twelve years &amp; this is it."
)


def _tweet(tweet_id: int, text: str, author: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "id": str(tweet_id),
        "text": text,
        "author_id": author,
        "edit_history_tweet_ids": [str(tweet_id)],
        **extra,
    }


async def test_retweet_reads_the_original_and_delivers_it(script: Script) -> None:
    """A retweet's cut text is replaced by the original's full text; the original comes along."""
    original = _tweet(
        1_600_000_000_000_000_001,
        _LONG[:270] + "…",
        note_tweet={"text": _LONG},
        created_at="2024-01-15T11:50:00.000Z",
        entities={"mentions": [{"username": "acmebank"}]},
    )
    retweet = _tweet(
        1_600_000_000_000_000_009,
        "RT @bigacct: " + _LONG[:110] + "…",
        "2",
        created_at="2024-01-15T11:59:00.000Z",
        referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
        entities={"mentions": [{"username": "bigacct"}]},
    )
    page = {
        "data": [retweet],
        "includes": {"users": [_SMALL, _BIG], "tweets": [original]},
        "meta": {"result_count": 1},
    }
    script.route("GET", "/2/tweets/search/recent", lambda r: Reply.json(page))
    source = _source(script, FakeClock())
    result = await source.poll({})
    await source.aclose()
    by_id = {m.external_id: m for m in result.mentions}
    assert set(by_id) == {retweet["id"], original["id"]}
    rt, orig = by_id[retweet["id"]], by_id[original["id"]]
    assert rt.text == "RT @bigacct: " + html.unescape(_LONG)
    assert rt.repost_of == original["id"] and rt.author.followers == 3
    assert set(rt.mentioned_handles) == {"bigacct", "acmebank"}
    assert orig.text == html.unescape(_LONG) and orig.repost_of is None
    assert orig.author.handle == "bigacct" and orig.author.followers == 500000
    assert orig.created_at == datetime(2024, 1, 15, 11, 50, tzinfo=UTC)
    assert orig.url == f"https://x.com/bigacct/status/{original['id']}"
    # The original's author comes with the expansion of the referenced posts.
    expansions = (script.requests[-1].param("expansions") or "").split(",")
    assert {"referenced_tweets.id", "referenced_tweets.id.author_id"} <= set(expansions)


async def test_retweet_and_original_on_one_page_come_once_each(script: Script) -> None:
    """When search lists the original too, it is not delivered a second time from the includes."""
    original = _tweet(
        1_600_000_000_000_000_001, "Acme bank lost my transfer again", created_at="2024-01-15T11:50:00Z"
    )
    retweet = _tweet(
        1_600_000_000_000_000_009,
        "RT @bigacct: Acme bank lost my transfer again",
        "2",
        referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
    )
    page = {
        "data": [retweet, original],
        "includes": {"users": [_SMALL, _BIG], "tweets": [original]},
        "meta": {"result_count": 2},
    }
    script.route("GET", "/2/tweets/search/recent", lambda r: Reply.json(page))
    result = await _source(script, FakeClock()).poll({})
    assert sorted(m.external_id for m in result.mentions) == sorted([retweet["id"], original["id"]])


async def test_an_edit_is_the_same_mention_as_its_first_version(script: Script) -> None:
    """Each version of an edited post is delivered under its first id (stored and alerted once)."""
    old, new = "1747000000000000000", "1747000100000000000"
    v1 = _tweet(
        int(old), "acme rail is terrible, still waiting for my refund", created_at="2024-01-15T11:50:00Z"
    )
    v2 = _tweet(
        int(new),
        "acme rail is terrible, I am still waiting for my refund!",
        created_at="2024-01-15T11:52:00Z",
        edit_history_tweet_ids=[old, new],
    )
    retweet = _tweet(
        1747000200000000000,
        "RT @bigacct: acme rail is terrible, I am still waiting for my refund!",
        "2",
        referenced_tweets=[{"type": "retweeted", "id": new}],
    )
    script.queue("GET", "/2/tweets/search/recent", Reply.json({"data": [v1], "includes": {"users": [_BIG]}}))
    script.queue(
        "GET",
        "/2/tweets/search/recent",
        Reply.json(
            {"data": [retweet, v2], "includes": {"users": [_BIG, _SMALL], "tweets": [v2]}, "meta": {}}
        ),
    )
    source = _source(script, FakeClock())
    first = await source.poll({})
    second = await source.poll(first.cursor)
    await source.aclose()
    assert [m.external_id for m in first.mentions] == [old]
    edited = next(m for m in second.mentions if m.repost_of is None)
    assert edited.external_id == old and edited.text.endswith("my refund!")
    assert edited.url == f"https://x.com/bigacct/status/{new}"  # the version read
    # A retweet of the edited version points at the post's first id, the stored one.
    assert next(m for m in second.mentions if m.repost_of).repost_of == old
    assert "edit_history_tweet_ids" in (script.requests[-1].param("tweet.fields") or "").split(",")
    # since_id follows the newest version read
    assert second.cursor[next(k for k in second.cursor if k.endswith("since_id"))] == retweet["id"]


async def test_an_empty_page_with_a_next_token_does_not_end_the_walk(script: Script) -> None:
    """Only a missing next_token ends a result set: since_id never jumps over unread pages."""
    base = 1_700_000_000_000_000_000

    def page(ids: list[int], token: str | None, *junk: object) -> Reply:
        meta: dict[str, Any] = {"result_count": len(ids)}
        if token:
            meta["next_token"] = token
        data = [_tweet(base + i, f"acme {i}") for i in ids] + list(junk)
        return Reply.json({"data": data, "meta": meta} if data else {"meta": meta})

    for reply in (
        page([1], None),  # first poll: the anchor
        page([30, 29], "p2"),
        page([], "p3"),  # nothing on this page, but more behind it
        page([], "p4", {"id": "not-a-post"}),  # only an unusable post
        page([12, 11], None),
    ):
        script.queue("GET", "/2/tweets/search/recent", reply)
    source = _source(script, FakeClock(), max_pages=5)
    start = await source.poll({})
    result = await source.poll(start.cursor)
    await source.aclose()
    assert [int(m.external_id) - base for m in result.mentions] == [30, 29, 12, 11]
    assert not result.more
    assert [r.param("next_token") for r in script.requests[1:]] == [None, "p2", "p3", "p4"]


async def test_empty_pages_with_tokens_stop_at_the_page_limit(script: Script) -> None:
    """A walk of empty pages that keep a token stops at max_pages and resumes, since_id unmoved."""
    clock = FakeClock()
    api = FakeX(clock)
    api.add(1)
    script.queue("GET", "/2/tweets/search/recent", api.answer(Request("GET", "/", {}, {}, b"")))
    script.route(
        "GET",
        "/2/tweets/search/recent",
        lambda r: Reply.json({"meta": {"result_count": 0, "next_token": "t"}}),
    )
    source = _source(script, clock, max_pages=3)
    start = await source.poll({})
    since = next(k for k in start.cursor if k.endswith("since_id"))
    result = await source.poll(start.cursor)
    await source.aclose()
    assert result.more and result.mentions == []
    assert len(script.requests) == 1 + 3
    assert result.cursor[since] == start.cursor[since]


@pytest.mark.parametrize(("sent", "stored"), [("in", "id"), ("iw", "he"), ("nl", "nl"), ("und", None)])
def test_withdrawn_language_codes_are_mapped(sent: str, stored: str | None) -> None:
    """X still sends the withdrawn ISO codes for Indonesian (in) and Hebrew (iw)."""
    payload = {"data": [_tweet(1_600_000_000_000_000_001, "acme", lang=sent)]}
    assert [m.language for m in tweets_from_payload(payload)] == [stored]


# Links as X sends them: the text holds t.co links; entities.urls say where they point.
_KLM_PAGE = "https://www.klm.com/nl/information/storing-bagage?utm_source=x&utm_medium=social"
_LINK_BRANDS = [
    BrandSettings(name="domain", keywords=("klm.com",)),
    BrandSettings(name="site", query="site:klm.com"),
    BrandSettings(name="url", query="url:storing-bagage"),
]


def _url_entity(short: str, target: str, **extra: Any) -> dict[str, Any]:
    """One ``entities.urls`` item (indices are not used: links are replaced by their t.co text)."""
    return {"start": 0, "end": 23, "url": short, "expanded_url": target, "display_url": "…", **extra}


def _brands(mention: Mention) -> list[str]:
    return [hit.brand for hit in Watchlist(_LINK_BRANDS).match(mention)]


async def test_links_read_as_where_they_point_and_match(script: Script) -> None:
    """t.co links become their expanded addresses: site:, url: and domain keywords see them."""
    post_id = 1_760_000_000_000_000_001
    photo = f"https://twitter.com/bigacct/status/{post_id}/photo/1"
    post = _tweet(
        post_id,
        "Koffer kwijt &amp; niemand belt terug https://t.co/Kl1mAbCdEf https://t.co/PhOtOaBcDe",
        entities={
            "urls": [
                _url_entity("https://t.co/Kl1mAbCdEf", _KLM_PAGE, status=200, title="Bagage"),
                _url_entity(
                    "https://t.co/PhOtOaBcDe",
                    photo,
                    display_url="pic.twitter.com/PhOtOaBcDe",
                    media_key="3_1760000000000000000",
                ),
            ]
        },
    )
    page = {"data": [post], "includes": {"users": [_BIG]}, "meta": {"result_count": 1}}
    script.route("GET", "/2/tweets/search/recent", lambda r: Reply.json(page))
    source = _source(script, FakeClock())
    (mention,) = (await source.poll({})).mentions
    await source.aclose()
    # What the team reads: the real destination, and the photo's page on X.
    assert mention.text == f"Koffer kwijt & niemand belt terug {_KLM_PAGE} {photo}"
    assert _brands(mention) == ["domain", "site", "url"]
    # Without the entities only t.co is known, and nothing matches (as before the fix).
    (bare,) = tweets_from_payload({"data": [{**post, "entities": {}}], "includes": {"users": [_BIG]}})
    assert "t.co/Kl1mAbCdEf" in bare.text and _brands(bare) == []


async def test_retweets_and_long_posts_expand_their_own_links(script: Script) -> None:
    """A retweet reads the original's links (its entities); a long post those of note_tweet."""
    long_text = _LONG + " Zie https://t.co/NoTeLiNk01"
    original = _tweet(
        1_600_000_000_000_000_001,
        _LONG[:250] + "… https://t.co/ShOrTlInK1",
        note_tweet={
            "text": long_text,
            "entities": {"urls": [_url_entity("https://t.co/NoTeLiNk01", _KLM_PAGE)]},
        },
        entities={"urls": [_url_entity("https://t.co/ShOrTlInK1", "https://x.com/i/web/status/1")]},
        created_at="2024-01-15T11:50:00.000Z",
    )
    retweet = _tweet(
        1_600_000_000_000_000_009,
        "RT @bigacct: " + _LONG[:100] + "… https://t.co/RtCuTlInK1",
        "2",
        referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
        entities={"urls": [_url_entity("https://t.co/RtCuTlInK1", "https://example.org/other")]},
    )
    quote = _tweet(
        1_600_000_000_000_000_010,
        "Herkenbaar, ook bij https://t.co/QuOtEdPoSt",
        "2",
        referenced_tweets=[{"type": "quoted", "id": original["id"]}],
        entities={
            "urls": [
                _url_entity(
                    "https://t.co/QuOtEdPoSt",
                    f"https://twitter.com/bigacct/status/{original['id']}",
                    unwound_url=f"https://x.com/bigacct/status/{original['id']}",
                )
            ]
        },
    )
    page = {
        "data": [quote, retweet],
        "includes": {"users": [_SMALL, _BIG], "tweets": [original]},
        "meta": {"result_count": 2},
    }
    script.route("GET", "/2/tweets/search/recent", lambda r: Reply.json(page))
    source = _source(script, FakeClock())
    by_id = {m.external_id: m for m in (await source.poll({})).mentions}
    await source.aclose()
    expanded = html.unescape(_LONG) + " Zie " + _KLM_PAGE
    assert by_id[original["id"]].text == expanded
    assert by_id[retweet["id"]].text == "RT @bigacct: " + expanded
    assert _brands(by_id[retweet["id"]]) == ["domain", "site", "url"]
    # unwound_url (where a redirect chain ends) is preferred to expanded_url
    assert by_id[quote["id"]].text == f"Herkenbaar, ook bij https://x.com/bigacct/status/{original['id']}"


def test_links_that_cannot_be_expanded_stay_and_name_no_one() -> None:
    """Unusable targets keep the t.co link; a handle inside a link is no mention."""
    post = _tweet(
        1_600_000_000_000_000_001,
        "@acme_help kijk https://t.co/MeDiUmPoSt en https://t.co/BaDtArGeT1 en https://t.co/NoEnTiTy01",
        entities={
            "urls": [
                _url_entity("https://t.co/MeDiUmPoSt", "https://medium.com/@klm/koffers-1a2b"),
                _url_entity("https://t.co/BaDtArGeT1", "javascript:alert(1)"),
            ]
        },
    )
    (mention,) = tweets_from_payload({"data": [post]})
    assert mention.text == (
        "@acme_help kijk https://medium.com/@klm/koffers-1a2b en https://t.co/BaDtArGeT1"
        " en https://t.co/NoEnTiTy01"
    )
    assert mention.mentioned_handles == ("acme_help",)
