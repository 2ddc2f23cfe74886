"""Mastodon (and compatible servers): hashtag timelines and status search, per instance.

Credentials: none for public hashtag timelines on most instances. An access token
(``access_token_env``, read scope) is needed for status search, on instances that require login for
timelines, and raises the rate limit. Full-text status search only finds posts the instance has
indexed (posts of opted-in, "indexable" accounts) — hashtags are the dependable signal. Limits:
300 requests per 5 minutes per account or IP by default (``X-RateLimit-Remaining/-Reset``, the
reset being an ISO timestamp; honoured here). Be a good guest: poll every few minutes.

Resume: tag timelines page *forward* with ``min_id`` (each page is the one right after the last
status delivered). Search results are walked newest first below the stored ``min_id`` with
``max_id`` paging, resumably (see :mod:`sources.watermark`). ``external_id`` is the status URI,
the same on every instance, so one post seen through two instances is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sources.base import Author, Cursor, Mention, PollResult, SourceContext
from sources.http import USER_AGENT, RateLimitGate, clock_seconds, json_body, request
from sources.payload import SkipCounter, as_dict, as_list
from sources.text import clip, html_to_text, parse_timestamp
from sources.watermark import Page, apply_walk, id_order, stream_prefix, walk_since_id

__all__ = ["MastodonOptions", "MastodonSource", "status_to_mention"]


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
    timeout: float = Field(20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _something_to_read(self) -> MastodonOptions:
        if not self.tags and not self.queries:
            raise ValueError("set tags and/or queries: this source would read nothing")
        self.tags = [t.lstrip("#") for t in self.tags]
        return self


class MastodonSource:
    """Polls hashtag timelines (min_id paging) and status search of one instance."""

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
        self._host = urlsplit(options.instance_url).netloc

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
        new_cursor = dict(cursor)
        mentions: list[Mention] = []
        more = False
        for tag in self.options.tags:
            if self._spent:
                more = True
                break
            found, tag_more = await self._poll_tag(tag, headers, new_cursor)
            mentions.extend(found)
            more = more or tag_more
        for query in self.options.queries:
            if self._spent:
                more = True
                break
            found, query_more = await self._poll_search(query, headers, new_cursor)
            mentions.extend(found)
            more = more or query_more
        skips = self._skips
        return PollResult(
            mentions, new_cursor, skipped=skips.total, skip_reasons=dict(skips.reasons), more=more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _poll_tag(
        self, tag: str, headers: Mapping[str, str], cursor: Cursor
    ) -> tuple[list[Mention], bool]:
        key = stream_prefix("mt", tag.lower()) + "min_id"
        min_id = cursor.get(key) or None
        path = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
        delivered: list[dict[str, Any]] = []
        more = False
        for page_no in range(1, self.options.max_pages + 1):
            params: dict[str, str | int] = {"limit": self.options.limit}
            if self.options.local_only:
                params["local"] = "true"
            if min_id:
                params["min_id"] = min_id
            payload = await self._get(path, headers, params)
            page = self._skips.keep(as_list(payload), _usable_status)
            if not page:
                break
            delivered.extend(page)
            min_id = max((str(s["id"]) for s in page), key=id_order)
            if len(page) < self.options.limit or (cursor.get(key) is None and page_no == 1):
                # A stream's first poll starts from the newest page instead of walking history.
                break
            if page_no == self.options.max_pages or self._spent:
                more = True
                break
        if min_id:
            cursor[key] = min_id
        return [
            status_to_mention(s, instance_host=self._host, source_name=self.name) for s in delivered
        ], more

    async def _poll_search(
        self, query: str, headers: Mapping[str, str], cursor: Cursor
    ) -> tuple[list[Mention], bool]:
        async def fetch(since: str | None, token: str | None) -> Page[dict[str, Any]]:
            params: dict[str, str | int] = {"q": query, "type": "statuses", "limit": self.options.limit}
            if since:
                params["min_id"] = since
            if token:
                params["max_id"] = token
            payload = await self._get("/api/v2/search", headers, params)
            statuses = payload.get("statuses") if isinstance(payload, dict) else None
            page = self._skips.keep(as_list(statuses), _usable_status)
            oldest = min((str(s["id"]) for s in page), key=id_order, default=None)
            return Page(page, oldest if len(page) >= self.options.limit else None)

        walk = await walk_since_id(
            fetch,
            lambda s: str(s["id"]),
            cursor,
            prefix=stream_prefix("ms", query),
            max_pages=self.options.max_pages,
            stop=lambda: self._spent,
        )
        apply_walk(cursor, walk)
        mentions = [status_to_mention(s, instance_host=self._host, source_name=self.name) for s in walk.items]
        return mentions, walk.more

    async def _get(self, path: str, headers: Mapping[str, str], params: Mapping[str, str | int]) -> Any:
        if self._client is None:
            self._client = self._ctx.http_client(timeout=self.options.timeout)
        url = self.options.instance_url.rstrip("/") + path
        response = await request(
            self._client, "GET", url, headers=headers, params=params, now=clock_seconds(self._ctx.clock)
        )
        if self._gate.observe(response, reserve=1):
            self._spent = True
        return json_body(response)


def _usable_status(item: object) -> bool:
    return (
        isinstance(item, dict)
        and bool(item.get("id"))
        and parse_timestamp(item.get("created_at")) is not None
    )


def _full_acct(acct: str | None, instance_host: str) -> str | None:
    """``user`` for local accounts becomes ``user@instance`` so handles are comparable across instances."""
    if not acct:
        return None
    return acct if "@" in acct else f"{acct}@{instance_host}" if instance_host else acct


def status_to_mention(
    status: Mapping[str, Any], *, instance_host: str = "", source_name: str | None = None
) -> Mention:
    """A Mastodon status as a mention (a boost is linked to the boosted status via ``repost_of``)."""
    reblog = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
    shown = reblog or status
    account = as_dict(status.get("account"))
    spoiler = html_to_text(str(shown.get("spoiler_text") or ""))
    body = html_to_text(str(shown.get("content") or "")) or str(shown.get("text") or "")
    text = f"{spoiler}\n{body}" if spoiler and body else spoiler or body
    mentions = [m for m in shown.get("mentions") or [] if isinstance(m, dict)]
    handles = tuple(
        dict.fromkeys(h for h in (_full_acct(m.get("acct"), instance_host) for m in mentions) if h)
    )
    reply_account = shown.get("in_reply_to_account_id")
    in_reply_to = next(
        (
            _full_acct(m.get("acct"), instance_host)
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
    return Mention(
        source="mastodon",
        external_id=str(status.get("uri") or status.get("url") or status["id"]),
        text=clip(text),
        created_at=created,
        url=str(status.get("url") or shown.get("url") or status.get("uri") or "") or None,
        author=Author(
            handle=_full_acct(account.get("acct"), instance_host),
            name=account.get("display_name") or None,
            id=str(account["id"]) if account.get("id") else None,
            followers=int(followers) if isinstance(followers, int) else None,
            url=account.get("url"),
        ),
        language=language.split("-")[0].lower() if isinstance(language, str) and language else None,
        parent_id=str(shown["in_reply_to_id"]) if shown.get("in_reply_to_id") else None,
        in_reply_to=in_reply_to,
        mentioned_handles=handles,
        repost_of=str(reblog.get("uri")) if reblog and reblog.get("uri") else None,
        source_name=source_name,
        raw={
            k: status[k]
            for k in ("id", "uri", "url", "visibility", "replies_count", "reblogs_count", "favourites_count")
            if k in status
        },
    )
