"""Bluesky: post search (``app.bsky.feed.searchPosts``) through an AppView or a PDS.

Credentials: none for the public AppView (``https://public.api.bsky.app``), which may however
refuse or cache anonymous search. With an account, set ``identifier_env`` and ``app_password_env``
(an *app password*, never the main password): the source logs in at ``pds_url``
(``com.atproto.server.createSession``) and searches through the PDS, which proxies to the AppView.
Limits: the AppView rate-limits per IP (HTTP 429 with ``RateLimit-Reset``, honoured here); keep
intervals at a few minutes.

Resume: ``sort=latest`` lists newest first; the cursor keeps the newest ``indexedAt`` delivered with
the URIs seen at that instant, passes it (less a margin, as ``since`` filters on the creation-based
sort time) and pages backwards with the API's opaque ``cursor`` until the mark is reached,
resumably (see :mod:`sources.watermark`). Posts indexed long after their creation time can be
missed when they sort below a page the walk stopped at.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sources.base import AuthError, Author, Cursor, Mention, PollResult, SourceContext
from sources.http import USER_AGENT, check_response, clock_seconds, json_body, request
from sources.payload import SkipCounter, as_dict, as_list
from sources.text import clip, parse_timestamp
from sources.watermark import Page, Watermark, apply_walk, stream_prefix, walk_newest_first

__all__ = ["BlueskyOptions", "BlueskySource", "post_to_mention"]

_SESSION_LIFETIME = timedelta(minutes=90)
SINCE_MARGIN = timedelta(minutes=10)


class BlueskyOptions(BaseModel):
    """Settings of one Bluesky source."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(
        min_length=1, description="Search queries (Lucene-like syntax of searchPosts)."
    )
    lang: str | None = Field(None, description="Only posts in this language (e.g. nl).")
    api_url: str = Field("https://public.api.bsky.app", description="AppView base URL for anonymous search.")
    pds_url: str = Field("https://bsky.social", description="PDS used when logging in.")
    identifier_env: str | None = Field(
        None, description="Variable with the account handle or DID (optional)."
    )
    app_password_env: str | None = Field(None, description="Variable with an app password (optional).")
    app_password_file: str | None = None
    limit: int = Field(100, ge=1, le=100, description="Posts per page.")
    max_pages: int = Field(5, ge=1, le=50, description="Pages per query and poll.")
    first_pages: int = Field(1, ge=1, le=50, description="Pages read on a query's first poll.")
    timeout: float = Field(20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_pair(self) -> BlueskyOptions:
        if bool(self.identifier_env) != bool(self.app_password_env or self.app_password_file):
            raise ValueError(
                "set both identifier_env and app_password_env (or app_password_file), or neither"
            )
        return self


class BlueskySource:
    """Polls ``searchPosts`` per query with an indexedAt/URI watermark and the API's paging cursor."""

    kind: ClassVar[str] = "bluesky"
    Options: ClassVar[type[BlueskyOptions]] = BlueskyOptions

    def __init__(self, name: str, options: BlueskyOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None
        self._jwt: str | None = None
        self._jwt_expires: datetime | None = None
        self._skips = SkipCounter()

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read new posts of every query."""
        self._skips = SkipCounter()
        new_cursor = dict(cursor)
        mentions: list[Mention] = []
        more = False
        for query in self.options.queries:
            prefix = stream_prefix("bq", f"{query}|{self.options.lang or ''}")
            mark = Watermark.from_cursor(new_cursor, prefix)
            # ``since`` filters on the AppView's sort time (about createdAt), which can be earlier than
            # indexedAt: ask with a margin and let the indexedAt watermark drop what was delivered.
            since = (mark.at - SINCE_MARGIN).isoformat().replace("+00:00", "Z") if mark.at else None
            walk = await walk_newest_first(
                functools.partial(self._fetch, query, since=since),
                _walk_key,
                new_cursor,
                prefix=prefix,
                max_pages=self.options.max_pages,
                first_pages=self.options.first_pages,
            )
            apply_walk(new_cursor, walk)
            mentions.extend(post_to_mention(p, source_name=self.name) for p in walk.items)
            more = more or walk.more
        skips = self._skips
        return PollResult(
            mentions, new_cursor, skipped=skips.total, skip_reasons=dict(skips.reasons), more=more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, query: str, token: str | None, *, since: str | None) -> Page[dict[str, Any]]:
        params: dict[str, str | int] = {"q": query, "sort": "latest", "limit": self.options.limit}
        if since:
            params["since"] = since
        if self.options.lang:
            params["lang"] = self.options.lang
        if token:
            params["cursor"] = token
        headers = {"User-Agent": USER_AGENT}
        base = self.options.api_url
        jwt = await self._session()
        if jwt:
            headers["Authorization"] = f"Bearer {jwt}"
            base = self.options.pds_url
        payload = await self._get(base.rstrip("/") + "/xrpc/app.bsky.feed.searchPosts", headers, params)
        posts = payload.get("posts") if isinstance(payload, dict) else None
        items = self._skips.keep(as_list(posts), _usable_post)
        next_token = payload.get("cursor") if isinstance(payload, dict) else None
        return Page(items, str(next_token) if next_token else None)

    async def _session(self) -> str | None:
        opts = self.options
        if not opts.identifier_env:
            return None
        now = self._ctx.clock()
        if self._jwt and self._jwt_expires and now < self._jwt_expires:
            return self._jwt
        identifier = self._ctx.secret(opts.identifier_env, None, what="Bluesky identifier")
        password = self._ctx.secret(
            opts.app_password_env, opts.app_password_file, what="Bluesky app password"
        )
        response = await request(
            self._http(),
            "POST",
            opts.pds_url.rstrip("/") + "/xrpc/com.atproto.server.createSession",
            headers={"User-Agent": USER_AGENT},
            json_data={"identifier": identifier, "password": password},
            now=clock_seconds(self._ctx.clock),
            check=False,
        )
        if response.status_code in (400, 401):
            raise AuthError("bluesky: login refused (check the identifier and app password variables)")
        check_response(response, clock_seconds(self._ctx.clock))
        body = json_body(response)
        if not isinstance(body, dict) or not body.get("accessJwt"):
            raise AuthError("bluesky: login answer carried no access token")
        self._jwt = str(body["accessJwt"])
        self._jwt_expires = now + _SESSION_LIFETIME
        return self._jwt

    async def _get(self, url: str, headers: Mapping[str, str], params: Mapping[str, str | int]) -> Any:
        response = await request(
            self._http(), "GET", url, headers=headers, params=params, now=clock_seconds(self._ctx.clock)
        )
        return json_body(response)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._ctx.http_client(timeout=self.options.timeout)
        return self._client


def _usable_post(item: object) -> bool:
    if not isinstance(item, dict) or not item.get("uri") or not isinstance(item.get("record"), dict):
        return False
    try:
        _walk_key(item)
    except (ValueError, TypeError):
        return False
    return True


def _walk_key(post: Mapping[str, Any]) -> tuple[str, datetime]:
    indexed = parse_timestamp(post.get("indexedAt")) or _created(post)
    return str(post["uri"]), indexed


def _created(post: Mapping[str, Any]) -> datetime:
    record = post.get("record") or {}
    created = parse_timestamp(record.get("createdAt")) or parse_timestamp(post.get("indexedAt"))
    if created is None:
        raise ValueError(f"post {post.get('uri')} has no timestamp")
    return created


def _mentioned(record: Mapping[str, Any]) -> tuple[str, ...]:
    """Handles tagged in the post: mention facets index the text by UTF-8 byte offsets."""
    text = str(record.get("text") or "")
    raw = text.encode("utf-8")
    handles: list[str] = []
    for facet in record.get("facets") or []:
        if not isinstance(facet, dict):
            continue
        features = facet.get("features") or []
        if not any(
            isinstance(f, dict) and f.get("$type") == "app.bsky.richtext.facet#mention" for f in features
        ):
            continue
        index = facet.get("index") or {}
        try:
            span = raw[int(index["byteStart"]) : int(index["byteEnd"])].decode("utf-8")
        except (KeyError, TypeError, ValueError, UnicodeDecodeError):
            continue
        if span.startswith("@"):
            handles.append(span[1:])
    return tuple(dict.fromkeys(handles))


def post_to_mention(post: Mapping[str, Any], *, source_name: str | None = None) -> Mention:
    """A searchPosts ``postView`` as a mention."""
    uri = str(post["uri"])
    record = as_dict(post.get("record"))
    author = as_dict(post.get("author"))
    handle = author.get("handle")
    rkey = uri.rsplit("/", 1)[-1]
    profile = handle or author.get("did")
    reply = as_dict(record.get("reply"))
    parent = as_dict(reply.get("parent"))
    root = as_dict(reply.get("root"))
    langs = record.get("langs")
    followers = author.get("followersCount")
    return Mention(
        source="bluesky",
        external_id=uri,
        text=clip(str(record.get("text") or "")),
        created_at=_created(post),
        url=f"https://bsky.app/profile/{profile}/post/{rkey}" if profile else None,
        author=Author(
            handle=handle,
            name=author.get("displayName") or None,
            id=author.get("did"),
            followers=followers if isinstance(followers, int) else None,
            url=f"https://bsky.app/profile/{profile}" if profile else None,
        ),
        language=str(langs[0]).split("-")[0].lower() if isinstance(langs, list) and langs else None,
        parent_id=parent.get("uri"),
        thread_id=root.get("uri") or (None if not reply else parent.get("uri")),
        mentioned_handles=_mentioned(record),
        source_name=source_name,
        raw={
            k: post[k]
            for k in ("uri", "cid", "indexedAt", "replyCount", "repostCount", "likeCount")
            if k in post
        },
    )
