"""X (Twitter): API v2 recent search per query and the mentions timeline of the brand's own accounts.

Credentials: an app **bearer token** (``X_BEARER_TOKEN`` by default, or ``bearer_token_file``).
X API access is **paid per use**: every post read is billed against the project's plan, and the
plan decides the rate limits (per 15-minute window, reported in ``x-rate-limit-*`` headers, which
are honoured here: a spent budget stops paging and the next poll waits for the reset). Recent search
covers only the last 7 days.

Why plain httpx rather than tweepy: the calls are two small GET endpoints; talking HTTP directly
keeps them on the event loop without threads, maps statuses and rate-limit headers to our error
policy in one place (:mod:`sources.http`), and lets tests point ``api_url`` at a local server that
replays recorded traffic. The request shape (fields, expansions, ``since_id``, ``next_token``) is
the one tweepy sends.

Resume: each query / account is a stream with ``since_id``; results come newest first and are
paged backwards with ``next_token``. A walk that cannot finish in one poll resumes from its token
(see :mod:`sources.watermark`).

Retweets are linked to the original through ``repost_of``. A retweet's own text is cut
(``RT @user: …``), so its text is rebuilt from the original in ``includes.tweets`` (the
``referenced_tweets.id`` expansion); that original is also delivered as a mention of its own, so
the story is told by its author (their words, reach and link) even when search returned only the
retweet. An edited post gets a new id per version: every version is delivered under the *first*
id of its ``edit_history_tweet_ids``, so an edit is the same mention as the post it edits (stored
once, alerted once).

Links: X puts a ``t.co`` short link into the text for every link; each is replaced by the address
``entities.urls`` gives for it, so the team reads where a link goes and watchlist ``site:``,
``url:`` and domain keywords match the real site.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sources.base import Author, Cursor, Mention, NotConfiguredError, PollResult, SourceContext
from sources.http import USER_AGENT, RateLimitGate, check_response, clock_seconds, json_body, request
from sources.payload import SkipCounter, as_dict, as_list
from sources.text import clip, parse_timestamp
from sources.watermark import Page, apply_walk, stream_prefix, walk_since_id

__all__ = ["XOptions", "XSource", "snowflake_time", "tweets_from_payload"]

TWEET_FIELDS = (
    "created_at,lang,entities,in_reply_to_user_id,referenced_tweets,conversation_id,public_metrics,"
    "author_id,note_tweet,edit_history_tweet_ids"
)
#: ``referenced_tweets.id.author_id`` brings the authors of retweeted originals (their reach).
EXPANSIONS = "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id"
USER_FIELDS = "public_metrics,username,name"
#: Milliseconds between the Unix epoch and the X (Twitter) Snowflake epoch.
_SNOWFLAKE_EPOCH_MS = 1288834974657
_HANDLE = re.compile(r"(?<![\w@])@(\w{1,15})\b")
_USERNAME = re.compile(r"^@?(\w{1,15})$")
_RT_PREFIX = re.compile(r"^RT @\w{1,15}: ")
#: The links X puts into a post's text instead of the ones written (``entities.urls[].url``).
_TCO_LINK = re.compile(r"https?://t\.co/\w+")
#: Any link in a text (a handle inside one, medium.com/@acme, mentions no one).
_ANY_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
#: An address a t.co link may be replaced with: http(s), one token (no space or control character).
_LINK_TARGET = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)
#: Language codes X still sends in their withdrawn ISO 639 form.
_OLD_LANGUAGE_CODES = {"in": "id", "iw": "he"}
#: X's "language" codes that name no language (undetermined, no text, media or hashtags only...).
_NO_LANGUAGE = frozenset({"und", "zxx", "qme", "qam", "qct", "qht"})


class XOptions(BaseModel):
    """Settings of one X source."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(default_factory=list, description="Recent-search queries in X search syntax.")
    mentions_of: list[str] = Field(
        default_factory=list,
        description="Own accounts (@username or numeric user id) whose mentions are read.",
    )
    bearer_token_env: str = Field("X_BEARER_TOKEN", description="Environment variable with the bearer token.")
    bearer_token_file: str | None = Field(
        None, description="File with the bearer token (instead of the variable)."
    )
    api_url: str = Field("https://api.x.com", description="API base URL (tests point it at a local server).")
    max_results: int = Field(100, ge=10, le=100, description="Posts per page.")
    max_pages: int = Field(5, ge=1, le=100, description="Pages per stream and poll (each page is billed).")
    first_pages: int = Field(1, ge=1, le=100, description="Pages read on a stream's very first poll.")
    timeout: float = Field(30.0, gt=0, le=300, description="Seconds per request.")

    @field_validator("mentions_of")
    @classmethod
    def _accounts(cls, value: list[str]) -> list[str]:
        for account in value:
            if not (account.isdigit() or _USERNAME.match(account)):
                raise ValueError(f"{account!r} is neither an @username nor a numeric user id")
        return value

    @model_validator(mode="after")
    def _something_to_read(self) -> XOptions:
        if not self.queries and not self.mentions_of:
            raise ValueError("set queries and/or mentions_of: this source would read nothing")
        return self


class XSource:
    """Polls X API v2 recent search and user mention timelines with since_id / next_token paging."""

    kind: ClassVar[str] = "x"
    Options: ClassVar[type[XOptions]] = XOptions

    def __init__(self, name: str, options: XOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None
        self._gate = RateLimitGate(ctx.clock, "x-rate-limit-remaining", "x-rate-limit-reset")
        self._spent = False
        self._skips = SkipCounter()

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read new posts of every query and mentions timeline since the stored since_id."""
        self._gate.check(f"x source {self.name}")
        token = self._ctx.secret(
            self.options.bearer_token_env, self.options.bearer_token_file, what="X bearer token"
        )
        client = self._http()
        headers = {"Authorization": f"Bearer {token}"}
        new_cursor = dict(cursor)
        mentions: list[Mention] = []
        more = False
        self._spent = False
        self._skips = SkipCounter()
        streams: list[tuple[str, str, dict[str, str]]] = []
        for query in self.options.queries:
            streams.append((stream_prefix("xq", query), "/2/tweets/search/recent", {"query": query}))
        for account in self.options.mentions_of:
            user_id = await self._user_id(client, headers, account, new_cursor)
            streams.append((stream_prefix("xm", user_id), f"/2/users/{user_id}/mentions", {}))
        for prefix, path, params in streams:
            if self._spent:
                more = True
                break
            found, stream_more = await self._walk(client, headers, path, params, prefix, new_cursor)
            mentions.extend(found)
            more = more or stream_more
        skips = self._skips
        return PollResult(
            mentions, new_cursor, skipped=skips.total, skip_reasons=dict(skips.reasons), more=more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._ctx.http_client(
                timeout=self.options.timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._client

    async def _walk(
        self,
        client: httpx.AsyncClient,
        headers: Mapping[str, str],
        path: str,
        extra: Mapping[str, str],
        prefix: str,
        cursor: Cursor,
    ) -> tuple[list[Mention], bool]:
        search = path.endswith("/search/recent")
        users: dict[str, dict[str, Any]] = {}
        included: dict[str, dict[str, Any]] = {}

        async def fetch(since_id: str | None, token: str | None) -> Page[dict[str, Any]]:
            params: dict[str, str | int] = {
                **extra,
                "max_results": self.options.max_results,
                "tweet.fields": TWEET_FIELDS,
                "expansions": EXPANSIONS,
                "user.fields": USER_FIELDS,
            }
            if since_id:
                params["since_id"] = since_id
            if token:
                params["next_token" if search else "pagination_token"] = token
            payload = await self._get(client, path, headers, params)
            users.update(_users(payload))
            included.update(_included_tweets(payload))
            tweets = self._skips.keep(as_list(payload.get("data")), _usable_tweet)
            meta = as_dict(payload.get("meta"))
            return Page(tweets, str(meta["next_token"]) if meta.get("next_token") else None)

        try:
            walk = await walk_since_id(
                fetch,
                lambda t: str(t["id"]),
                cursor,
                prefix=prefix,
                max_pages=self.options.max_pages,
                first_pages=self.options.first_pages,
                stop=lambda: self._spent,
            )
        except _StaleCursorError as exc:
            # X rejects a since_id older than 7 days or an expired next_token: start over from now.
            for key in [k for k in cursor if k.startswith(prefix)]:
                if exc.parameter == "next_token" and key == prefix + "since_id":
                    continue
                del cursor[key]
            walk = await walk_since_id(
                fetch,
                lambda t: str(t["id"]),
                cursor,
                prefix=prefix,
                max_pages=self.options.max_pages,
                first_pages=self.options.first_pages,
                stop=lambda: self._spent,
            )
        apply_walk(cursor, walk)
        return _with_originals(walk.items, users, included, self.name), walk.more

    async def _get(
        self,
        client: httpx.AsyncClient,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str | int],
    ) -> dict[str, Any]:
        url = self.options.api_url.rstrip("/") + path
        response = await request(
            client,
            "GET",
            url,
            headers=headers,
            params=params,
            now=clock_seconds(self._ctx.clock),
            check=False,
        )
        if response.status_code == 400:
            _raise_bad_request(response, params)
        check_response(response, clock_seconds(self._ctx.clock))
        if self._gate.observe(response):
            self._spent = True
        payload = json_body(response)
        if not isinstance(payload, dict):
            raise NotConfiguredError(f"X answered {path} with an unexpected JSON shape")
        return payload

    async def _user_id(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], account: str, cursor: Cursor
    ) -> str:
        if account.isdigit():
            return account
        username = account.lstrip("@")
        key = f"xu.{username.lower()}"
        if cursor.get(key):
            return cursor[key]
        payload = await self._get(client, f"/2/users/by/username/{username}", headers, {})
        data = payload.get("data")
        if not isinstance(data, dict) or not data.get("id"):
            raise NotConfiguredError(f"X user @{username} was not found")
        cursor[key] = str(data["id"])
        return cursor[key]


class _StaleCursorError(Exception):
    """X refused a stored since_id / next_token (too old or expired)."""

    def __init__(self, parameter: str) -> None:
        super().__init__(parameter)
        self.parameter = parameter


def _raise_bad_request(response: httpx.Response, params: Mapping[str, str | int]) -> None:
    """A 400 names the parameter X did not accept: a stale cursor restarts, anything else is config."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    errors = body.get("errors") if isinstance(body, dict) else None
    bad: set[str] = set()
    messages: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        parameters = error.get("parameters")
        if isinstance(parameters, dict):
            bad.update(str(p) for p in parameters)
        if error.get("message"):
            messages.append(str(error["message"])[:200])
    for parameter in ("since_id", "next_token", "pagination_token"):
        if parameter in bad and parameter in params:
            raise _StaleCursorError("since_id" if parameter == "since_id" else "next_token")
    detail = "; ".join(messages) or "invalid request"
    raise NotConfiguredError(f"X refused the request (HTTP 400): {detail}")


def _usable_tweet(item: object) -> bool:
    return isinstance(item, dict) and str(item.get("id", "")).isdigit() and isinstance(item.get("text"), str)


def snowflake_time(tweet_id: str) -> datetime | None:
    """The creation time encoded in an X post id (Snowflake), for answers without ``created_at``."""
    try:
        millis = (int(tweet_id) >> 22) + _SNOWFLAKE_EPOCH_MS
    except ValueError:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)


def _users(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    includes = payload.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    return {str(u["id"]): u for u in users or [] if isinstance(u, dict) and u.get("id")}


def _included_tweets(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Referenced posts (retweeted, quoted, replied to) of ``includes.tweets``, by id."""
    includes = payload.get("includes")
    tweets = includes.get("tweets") if isinstance(includes, dict) else None
    return {str(t["id"]): t for t in tweets or [] if _usable_tweet(t)}


def _with_originals(
    tweets: list[dict[str, Any]],
    users: Mapping[str, Mapping[str, Any]],
    included: Mapping[str, Mapping[str, Any]],
    source_name: str | None,
) -> list[Mention]:
    """Mentions of ``tweets``, plus each retweeted original that X included but did not list."""
    mentions = [tweet_to_mention(t, users, source_name=source_name, included=included) for t in tweets]
    listed = {_first_id(t) for t in tweets}
    for tweet in tweets:
        original = included.get(_references(tweet).get("retweeted", ""))
        if original is not None and _first_id(original) not in listed:
            listed.add(_first_id(original))
            mentions.append(tweet_to_mention(original, users, source_name=source_name, included=included))
    return mentions


def tweets_from_payload(payload: Mapping[str, Any], *, source_name: str | None = None) -> list[Mention]:
    """Normalise every post in ``data`` of an API v2 answer (search, timeline or lookup)."""
    data = payload.get("data")
    tweets = data if isinstance(data, list) else [data] if isinstance(data, dict) and "text" in data else []
    users = _users(payload)
    included = _included_tweets(payload)
    return [
        tweet_to_mention(t, users, source_name=source_name, included=included)
        for t in tweets
        if isinstance(t, dict) and t.get("id")
    ]


def _references(tweet: Mapping[str, Any]) -> dict[str, str]:
    """The post's references by type (``retweeted``, ``quoted``, ``replied_to``) to their ids."""
    return {
        str(r.get("type")): str(r.get("id"))
        for r in tweet.get("referenced_tweets") or []
        if isinstance(r, dict) and r.get("id")
    }


def _first_id(tweet: Mapping[str, Any]) -> str:
    """The id of a post's first version: every edit of a post is the same mention."""
    history = tweet.get("edit_history_tweet_ids")
    first = history[0] if isinstance(history, list) and history else None
    return str(first) if isinstance(first, str | int) and str(first).isdigit() else str(tweet["id"])


def _full_text(tweet: Mapping[str, Any]) -> str:
    """A post's whole text: the long form (``note_tweet``) when it has one; X escapes &, < and >."""
    note = tweet.get("note_tweet")
    raw_text = note.get("text") if isinstance(note, dict) and note.get("text") else tweet.get("text") or ""
    return html.unescape(str(raw_text))


def _link_targets(tweet: Mapping[str, Any]) -> dict[str, str]:
    """Each ``t.co`` link of a post (short and long form) mapped to where it really points.

    ``unwound_url`` (the end of a redirect chain, when X sends it) beats ``expanded_url`` (what
    the author pasted, maybe another shortener); a photo or video expands to its page on X.
    """
    note = tweet.get("note_tweet")
    entity_sets = [as_dict(tweet.get("entities")), as_dict(as_dict(note).get("entities"))]
    targets: dict[str, str] = {}
    for entities in entity_sets:
        for entity in as_list(entities.get("urls")):
            if not isinstance(entity, dict) or not isinstance(entity.get("url"), str):
                continue
            for key in ("unwound_url", "expanded_url"):
                target = entity.get(key)
                if isinstance(target, str) and _LINK_TARGET.fullmatch(target):
                    targets.setdefault(entity["url"], target)
                    break
    return targets


def _expanded_text(tweet: Mapping[str, Any]) -> str:
    """A post's whole text with each ``t.co`` link replaced by the address it stands for."""
    text = _full_text(tweet)
    targets = _link_targets(tweet)
    if not targets:
        return text
    return _TCO_LINK.sub(lambda m: targets.get(m.group(0), m.group(0)), text)


def _tagged(tweet: Mapping[str, Any]) -> list[str]:
    entities = as_dict(tweet.get("entities"))
    return [
        str(m["username"])
        for m in entities.get("mentions") or []
        if isinstance(m, dict) and m.get("username")
    ]


def tweet_to_mention(
    tweet: Mapping[str, Any],
    users: Mapping[str, Mapping[str, Any]],
    *,
    source_name: str | None = None,
    included: Mapping[str, Mapping[str, Any]] | None = None,
) -> Mention:
    """One API v2 post (plus the expanded users and referenced posts) as a mention."""
    tweet_id = str(tweet["id"])
    included = included or {}
    references = _references(tweet)
    retweeted = references.get("retweeted")
    original = included.get(retweeted) if retweeted else None
    shown = original if original is not None else tweet
    # Links read as where they point (the entities of the post whose text is shown), not t.co.
    text = _expanded_text(shown)
    tagged = _tagged(tweet)
    if original is not None:
        # A retweet's own text is cut at 140 characters after "RT @user: ": read the original's.
        prefix = _RT_PREFIX.match(str(tweet.get("text") or ""))
        text = (prefix.group(0) if prefix else "") + text
        tagged += _tagged(original)
    text = clip(text)
    user = users.get(str(tweet.get("author_id") or "")) or {}
    username = user.get("username")
    metrics = as_dict(user.get("public_metrics"))
    author = Author(
        handle=username,
        name=user.get("name"),
        id=str(tweet["author_id"]) if tweet.get("author_id") else None,
        followers=_int(metrics.get("followers_count")),
        url=f"https://x.com/{username}" if username else None,
    )
    created = parse_timestamp(tweet.get("created_at")) or snowflake_time(tweet_id)
    if created is None:  # pragma: no cover - every X id is a Snowflake
        raise ValueError(f"post {tweet_id} has no creation time")
    # Without mention entities, handles are read from the text; a link (medium.com/@acme/...)
    # names no one.
    handles = tuple(dict.fromkeys(h for h in tagged if h)) or tuple(
        dict.fromkeys(_HANDLE.findall(_ANY_LINK.sub(" ", text)))
    )
    reply_user = users.get(str(tweet.get("in_reply_to_user_id") or "")) or {}
    in_reply_to = reply_user.get("username") or (tweet.get("in_reply_to_user_id") and _first(handles))
    lang = tweet.get("lang")
    language = _OLD_LANGUAGE_CODES.get(lang, lang) if isinstance(lang, str) and lang else None
    replied = references.get("replied_to")
    return Mention(
        source="x",
        external_id=_first_id(tweet),
        text=text,
        created_at=created,
        url=f"https://x.com/{username}/status/{tweet_id}"
        if username
        else f"https://x.com/i/web/status/{tweet_id}",
        author=author,
        language=language if language not in _NO_LANGUAGE else None,
        parent_id=_first_id(included[replied]) if replied and replied in included else replied,
        thread_id=str(tweet["conversation_id"]) if tweet.get("conversation_id") else None,
        in_reply_to=in_reply_to or None,
        mentioned_handles=handles,
        repost_of=_first_id(original) if original is not None else retweeted,
        source_name=source_name,
        raw={
            k: tweet[k]
            for k in (
                "id",
                "author_id",
                "conversation_id",
                "lang",
                "public_metrics",
                "referenced_tweets",
                "edit_history_tweet_ids",
            )
            if k in tweet
        },
    )


def _first(handles: tuple[str, ...]) -> str | None:
    return handles[0] if handles else None


def _int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
