"""Mastodon (and compatible servers): hashtag timelines and status search, per instance.

Credentials: none for public hashtag timelines on most instances. An access token
(``access_token_env``, read scope) is needed for status search, on instances that require login for
timelines, and raises the rate limit. Full-text status search only finds posts the instance has
indexed (posts of opted-in, "indexable" accounts) — hashtags are the dependable signal. Limits:
300 requests per 5 minutes per account or IP by default (``X-RateLimit-Remaining/-Reset``, the
reset being an ISO timestamp; honoured here). Be a good guest: poll every few minutes.

Resume: tag timelines and searches are walked newest first with ``max_id`` paging down to the
newest ``created_at`` delivered, resumably (see :mod:`sources.watermark`), and ``lateness`` (default
one hour) further: Mastodon gives a status from another server an id made from *its* creation time
(``Snowflake.id_at``), so a post that reaches the instance late sorts below posts already read, and
paging forward with ``min_id`` would never return it. What the walk reads again in that margin is
delivered again; the store's unique key drops it. ``external_id`` is the status URI, the same on
every instance, so one post seen through two instances is stored once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.settings import Duration
from sources.base import Author, Cursor, Mention, PollResult, SourceContext
from sources.http import USER_AGENT, RateLimitGate, clock_seconds, json_body, request
from sources.payload import SkipCounter, as_dict, as_list
from sources.text import clip, html_to_text, parse_timestamp
from sources.watermark import Page, Watermark, apply_walk, id_order, stream_prefix, walk_newest_first

__all__ = ["MastodonOptions", "MastodonSource", "status_to_mention"]

#: Cursor keys of the forward ``min_id`` paging used before the lateness margin (read once, dropped).
_LEGACY_KEYS = ("min_id", "since_id", "p.newest", "next")
_RAW_KEYS = ("id", "uri", "url", "visibility", "replies_count", "reblogs_count", "favourites_count")
#: Mastodon ids carry their creation time in milliseconds above 16 sequence bits (Snowflake).
_SNOWFLAKE_SHIFT = 16


class MastodonOptions(BaseModel):
    """Settings of one Mastodon source (one instance)."""

    model_config = ConfigDict(extra="forbid")

    instance_url: str = Field(description="Base URL of the instance, e.g. https://mastodon.social.")
    tags: list[str] = Field(
        default_factory=list, description="Hashtags (without #) whose timelines are read."
    )
    queries: list[str] = Field(
        default_factory=list, description="Status searches (needs a token on most instances)."
    )
    local_only: bool = Field(False, description="Tag timelines: only posts of the instance's own users.")
    access_token_env: str | None = Field(
        None, description="Environment variable with an access token (optional)."
    )
    access_token_file: str | None = None
    limit: int = Field(40, ge=1, le=40, description="Statuses per page (Mastodon allows 40).")
    max_pages: int = Field(5, ge=1, le=50, description="Pages per stream and poll.")
    lateness: Duration = Field(
        3600.0,
        description=(
            "How far below the newest post delivered each poll reads again, for posts from other "
            "servers that reach the instance late (0 = not at all)."
        ),
    )
    timeout: float = Field(20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _something_to_read(self) -> MastodonOptions:
        if not self.tags and not self.queries:
            raise ValueError("set tags and/or queries: this source would read nothing")
        self.tags = [t.lstrip("#") for t in self.tags]
        return self


class MastodonSource:
    """Polls hashtag timelines and status search of one instance, newest first with a lateness margin."""

    kind: ClassVar[str] = "mastodon"
    Options: ClassVar[type[MastodonOptions]] = MastodonOptions

    def __init__(self, name: str, options: MastodonOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None
        self._gate = RateLimitGate(ctx.clock, "x-ratelimit-remaining", "x-ratelimit-reset")
        self._spent = False
        self._skips = SkipCounter()
        #: The instance's account domain (``/api/v2/instance``), "" when it did not say; None: not asked.
        self._domain: str | None = None
        self._web_host = urlsplit(options.instance_url).netloc.lower()

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read new statuses of every tag timeline and search."""
        self._gate.check(f"mastodon source {self.name}")
        self._spent = False
        self._skips = SkipCounter()
        headers = {"User-Agent": USER_AGENT}
        if self.options.access_token_env or self.options.access_token_file:
            token = self._ctx.secret(
                self.options.access_token_env, self.options.access_token_file, what="Mastodon access token"
            )
            headers["Authorization"] = f"Bearer {token}"
        if self._domain is None:
            self._domain = await self._instance_domain(headers)
        new_cursor = dict(cursor)
        statuses: list[dict[str, Any]] = []
        more = False
        streams: list[tuple[str, str, dict[str, str]]] = [
            (stream_prefix("mt", tag.lower()), f"/api/v1/timelines/tag/{quote(tag, safe='')}", {})
            for tag in self.options.tags
        ] + [(stream_prefix("ms", query), "/api/v2/search", {"q": query}) for query in self.options.queries]
        for prefix, path, params in streams:
            if self._spent:
                more = True
                break
            found, stream_more = await self._walk(prefix, path, params, headers, new_cursor)
            statuses.extend(found)
            more = more or stream_more
        uris = _uris_by_id(statuses)
        mentions = [
            status_to_mention(
                s,
                instance_host=self._domain or "",
                web_host=self._web_host,
                source_name=self.name,
                parent_uris=uris,
            )
            for s in statuses
        ]
        skips = self._skips
        return PollResult(
            mentions, new_cursor, skipped=skips.total, skip_reasons=dict(skips.reasons), more=more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _walk(
        self,
        prefix: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        cursor: Cursor,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One tag timeline or search, newest first down to the mark less ``lateness``."""
        now = self._ctx.clock()
        _upgrade_cursor(cursor, prefix, now)
        walk = await walk_newest_first(
            functools.partial(self._fetch, path, params, headers),
            lambda s: (str(s["id"]), _walk_time(s, now)),
            cursor,
            prefix=prefix,
            max_pages=self.options.max_pages,
            lateness=timedelta(seconds=self.options.lateness),
            stop=lambda: self._spent,
        )
        apply_walk(cursor, walk)
        return walk.items, walk.more

    async def _fetch(
        self, path: str, extra: Mapping[str, str], headers: Mapping[str, str], token: str | None
    ) -> Page[dict[str, Any]]:
        params: dict[str, str | int] = {**extra, "limit": self.options.limit}
        search = path == "/api/v2/search"
        if search:
            params["type"] = "statuses"
        elif self.options.local_only:
            params["local"] = "true"
        if token:
            params["max_id"] = token
        payload = await self._get(path, headers, params)
        raw = as_list(payload.get("statuses") if search and isinstance(payload, dict) else payload)
        page = self._skips.keep(raw, _usable_status)
        oldest = min((str(s["id"]) for s in page), key=id_order, default=None)
        return Page(page, oldest if len(raw) >= self.options.limit else None)

    async def _instance_domain(self, headers: Mapping[str, str]) -> str | None:
        """The domain in the instance's own account handles (``user@domain``), "" when unknown.

        It can differ from the web host (``WEB_DOMAIN`` vs ``LOCAL_DOMAIN``); None means "ask again
        next poll" (the instance was busy).
        """
        response = await self._get_response("/api/v2/instance", headers, {}, check=False)
        if response.status_code == 429 or response.status_code >= 500:
            return None
        try:
            payload = response.json() if response.status_code == 200 else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        domain = payload.get("domain") if isinstance(payload, dict) else None
        return domain.strip().lower() if isinstance(domain, str) and domain.strip() else ""

    async def _get(self, path: str, headers: Mapping[str, str], params: Mapping[str, str | int]) -> Any:
        return json_body(await self._get_response(path, headers, params))

    async def _get_response(
        self, path: str, headers: Mapping[str, str], params: Mapping[str, str | int], *, check: bool = True
    ) -> httpx.Response:
        if self._client is None:
            self._client = self._ctx.http_client(timeout=self.options.timeout)
        url = self.options.instance_url.rstrip("/") + path
        response = await request(
            self._client,
            "GET",
            url,
            headers=headers,
            params=params,
            now=clock_seconds(self._ctx.clock),
            check=check,
        )
        if self._gate.observe(response, reserve=1):
            self._spent = True
        return response


def _usable_status(item: object) -> bool:
    return (
        isinstance(item, dict)
        and bool(item.get("id"))
        and parse_timestamp(item.get("created_at")) is not None
    )


def _walk_time(status: Mapping[str, Any], now: datetime) -> datetime:
    """When a status was written, for the watermark; never later than now.

    A server with a wrong clock can date a post in the future; a mark there would hide every post
    until that time came.
    """
    created = parse_timestamp(status.get("created_at")) or now  # usable statuses have one
    return min(created, now)


def _upgrade_cursor(cursor: Cursor, prefix: str, now: datetime) -> None:
    """Turn a stream's old ``min_id`` cursor into a watermark (read once, then dropped).

    Mastodon ids hold their creation time; an id that is no Snowflake (other servers) marks now,
    so the next walk reads ``lateness`` back from the upgrade.
    """
    legacy = cursor.get(prefix + "min_id") or cursor.get(prefix + "since_id")
    for key in _LEGACY_KEYS:
        cursor.pop(prefix + key, None)
    if not legacy or Watermark.from_cursor(cursor, prefix).at is not None:
        return
    at = now
    if legacy.isdigit():
        try:
            stamped = datetime.fromtimestamp((int(legacy) >> _SNOWFLAKE_SHIFT) / 1000, now.tzinfo)
        except (OverflowError, OSError, ValueError):
            stamped = now
        if now - timedelta(days=3650) < stamped <= now:
            at = stamped
    cursor.update(Watermark(at).to_cursor(prefix))


def _uris_by_id(statuses: list[dict[str, Any]]) -> dict[str, str]:
    """Instance-local status id → URI for every status in one answer (boosted ones too)."""
    uris: dict[str, str] = {}
    for status in statuses:
        for shown in (status, as_dict(status.get("reblog"))):
            if shown.get("id") and shown.get("uri"):
                uris[str(shown["id"])] = str(shown["uri"])
    return uris


def _full_acct(acct: str | None, instance_host: str, url: object = None, web_host: str = "") -> str | None:
    """``user`` for local accounts becomes ``user@domain`` so handles are comparable across instances.

    The domain is the instance's own (``instance_host``, what other servers write after the @),
    else the host of the account's profile URL, else ``web_host`` (the configured host): the web
    host can differ from the account domain (Mastodon's ``WEB_DOMAIN`` and ``LOCAL_DOMAIN``).
    """
    if not acct:
        return None
    if "@" in acct:
        return acct
    domain = instance_host or (urlsplit(url).netloc.lower() if isinstance(url, str) else "") or web_host
    return f"{acct}@{domain}" if domain else acct


def status_to_mention(
    status: Mapping[str, Any],
    *,
    instance_host: str = "",
    web_host: str = "",
    source_name: str | None = None,
    parent_uris: Mapping[str, str] | None = None,
) -> Mention:
    """A Mastodon status as a mention (a boost is linked to the boosted status via ``repost_of``).

    ``instance_host`` is the domain of the instance's own accounts (``web_host``, the configured
    host, stands in when neither it nor the account's URL is known); ``parent_uris`` maps
    instance-local status ids to URIs, so ``parent_id`` can be the parent's URI (the
    ``external_id`` it is stored under) when the parent came in the same answer.
    """
    reblog = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
    shown = reblog or status
    account = as_dict(status.get("account"))
    # The content warning is plain text (the web client shows it escaped), not HTML.
    spoiler = " ".join(str(shown.get("spoiler_text") or "").split())
    body = html_to_text(str(shown.get("content") or "")) or str(shown.get("text") or "")
    text = f"{spoiler}\n{body}" if spoiler and body else spoiler or body
    mentions = [m for m in shown.get("mentions") or [] if isinstance(m, dict)]
    handles = tuple(
        dict.fromkeys(
            h
            for h in (_full_acct(m.get("acct"), instance_host, m.get("url"), web_host) for m in mentions)
            if h
        )
    )
    reply_account = shown.get("in_reply_to_account_id")
    in_reply_to = next(
        (
            _full_acct(m.get("acct"), instance_host, m.get("url"), web_host)
            for m in mentions
            if reply_account and m.get("id") == reply_account
        ),
        None,
    )
    created = parse_timestamp(status.get("created_at"))
    if created is None:
        raise ValueError(f"status {status.get('id')} has no created_at")
    followers = account.get("followers_count")
    language = shown.get("language")
    parent_local = str(shown["in_reply_to_id"]) if shown.get("in_reply_to_id") else None
    return Mention(
        source="mastodon",
        external_id=str(status.get("uri") or status.get("url") or status["id"]),
        text=clip(text),
        created_at=created,
        url=str(status.get("url") or shown.get("url") or status.get("uri") or "") or None,
        author=Author(
            handle=_full_acct(account.get("acct"), instance_host, account.get("url"), web_host),
            name=account.get("display_name") or None,
            id=str(account["id"]) if account.get("id") else None,
            followers=int(followers) if isinstance(followers, int) else None,
            url=account.get("url"),
        ),
        language=language.split("-")[0].lower() if isinstance(language, str) and language else None,
        parent_id=(parent_uris or {}).get(parent_local) if parent_local else None,
        in_reply_to=in_reply_to,
        mentioned_handles=handles,
        repost_of=str(reblog.get("uri")) if reblog and reblog.get("uri") else None,
        source_name=source_name,
        raw={
            **{k: status[k] for k in _RAW_KEYS if k in status},
            # Instance-local id of the parent (parent_id holds its URI only when it was known).
            **({"in_reply_to_id": parent_local} if parent_local else {}),
        },
    )
