"""Google Play: the newest reviews of one app — best effort, through the store's web endpoint.

There is **no official API** for reading another app's Play reviews (the Play Developer API only
serves the app owner's own reviews with a service account). This source calls the endpoint the Play
Store web page itself uses (``/_/PlayStoreUi/data/batchexecute``, RPC ``UsvDTd``), as the
google-play-scraper package does. It is unofficial: Google may change the answer's shape at any time
(then this source raises :class:`SourceError` with a clear message rather than guessing), may block
clients that poll too often, and its terms may restrict automated access — poll slowly (30 minutes
or more) and check that your use is allowed.

Why not google-play-scraper: importing it disables TLS certificate verification for the whole
process, which is unacceptable in a daemon that holds credentials. The request below is small.

Credentials: none. Resume: reviews sorted newest first, paged with Google's continuation token;
the cursor keeps the newest review time delivered (plus ids at that instant) and each poll walks
down to it less ``lateness`` (default a day, for reviews that appear late), resumably (see
:mod:`sources.watermark`); the store drops what is read again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Duration
from sources.base import Author, Cursor, Mention, PollResult, SourceContext, SourceError
from sources.http import USER_AGENT, clock_seconds, request
from sources.text import clip
from sources.watermark import Page, apply_walk, stream_prefix, walk_newest_first

__all__ = ["GooglePlayOptions", "GooglePlaySource", "build_request_body", "parse_reviews_answer"]

#: Sort order "newest" in the UsvDTd RPC.
_SORT_NEWEST = 2
_XSSI_PREFIX = ")]}'"


class GooglePlayOptions(BaseModel):
    """Settings of one Google Play source (one app, one language/country)."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$", description="Package name.")
    lang: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", description="Review language (hl).")
    country: str = Field("us", pattern=r"^[a-z]{2}$", description="Store country (gl).")
    base_url: str = Field("https://play.google.com", description="Store host.")
    count: int = Field(100, ge=1, le=199, description="Reviews per request.")
    max_pages: int = Field(3, ge=1, le=50, description="Requests per poll.")
    first_pages: int = Field(1, ge=1, le=50, description="Requests on the first poll.")
    lateness: Duration = Field(
        86400.0,
        description=(
            "How far below the newest review delivered each poll reads again, for reviews that "
            "appear late with an earlier date (moderation); 0 = not at all."
        ),
    )
    timeout: float = Field(20.0, gt=0, le=300)


class GooglePlaySource:
    """Polls the newest Play Store reviews of one app through the web endpoint (best effort)."""

    kind: ClassVar[str] = "googleplay"
    Options: ClassVar[type[GooglePlayOptions]] = GooglePlayOptions

    def __init__(self, name: str, options: GooglePlayOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read reviews newer than the stored watermark."""
        new_cursor = dict(cursor)
        opts = self.options
        walk = await walk_newest_first(
            self._fetch,
            lambda r: (str(r[0]), _review_time(r)),
            new_cursor,
            prefix=stream_prefix("gp", f"{opts.app_id}:{opts.lang}:{opts.country}"),
            max_pages=opts.max_pages,
            first_pages=opts.first_pages,
            lateness=timedelta(seconds=opts.lateness),
        )
        apply_walk(new_cursor, walk)
        mentions = [
            review_to_mention(r, app_id=opts.app_id, lang=opts.lang, source_name=self.name)
            for r in walk.items
        ]
        return PollResult(mentions, new_cursor, more=walk.more)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, token: str | None) -> Page[list[Any]]:
        if self._client is None:
            self._client = self._ctx.http_client(
                timeout=self.options.timeout, headers={"User-Agent": USER_AGENT}
            )
        response = await request(
            self._client,
            "POST",
            f"{self.options.base_url.rstrip('/')}/_/PlayStoreUi/data/batchexecute",
            params={"hl": self.options.lang, "gl": self.options.country},
            data={"f.req": build_request_body(self.options.app_id, self.options.count, token)},
            now=clock_seconds(self._ctx.clock),
        )
        reviews, next_token = parse_reviews_answer(response.text)
        return Page(reviews, next_token)


def build_request_body(app_id: str, count: int, token: str | None) -> str:
    """The ``f.req`` form value asking for ``count`` newest reviews (after ``token``)."""
    inner = [None, None, [2, _SORT_NEWEST, [count, None, token], None, [None, None]], [app_id, 7]]
    return json.dumps(
        [[["UsvDTd", json.dumps(inner, separators=(",", ":")), None, "generic"]]], separators=(",", ":")
    )


def parse_reviews_answer(text: str) -> tuple[list[list[Any]], str | None]:
    """Reviews and the next-page token from a batchexecute answer; a changed shape raises SourceError."""
    body = text.lstrip()
    if body.startswith(_XSSI_PREFIX):
        body = body[len(_XSSI_PREFIX) :]
    try:
        envelope = json.loads(body)
        call = next(c for c in envelope if isinstance(c, list) and len(c) > 2 and c[0] == "wrb.fr")
        payload = call[2]
        if payload is None:
            # The RPC answered without data: unknown app id or no reviews in this language.
            return [], None
        data = json.loads(payload)
    except (ValueError, TypeError, StopIteration) as exc:
        raise SourceError(
            "Google Play answer has an unexpected shape; the unofficial endpoint may have changed"
        ) from exc
    if not isinstance(data, list) or not data:
        return [], None
    reviews = [r for r in data[0] or [] if _is_review(r)] if isinstance(data[0], list) else []
    token = None
    tail = data[-1] if len(data) > 1 else None
    if isinstance(tail, list) and tail and isinstance(tail[-1], str):
        token = tail[-1]
    return reviews, token


def _is_review(item: object) -> bool:
    return (
        isinstance(item, list)
        and len(item) > 5
        and isinstance(item[0], str)
        and isinstance(item[5], list)
        and bool(item[5])
        and isinstance(item[5][0], int | float)
    )


def _at(item: Sequence[Any], *path: int) -> Any:
    node: Any = item
    for index in path:
        if not isinstance(node, list) or len(node) <= index:
            return None
        node = node[index]
    return node


def _review_time(review: Sequence[Any]) -> datetime:
    return datetime.fromtimestamp(float(review[5][0]), UTC)


def review_to_mention(
    review: Sequence[Any], *, app_id: str, lang: str = "en", source_name: str | None = None
) -> Mention:
    """One review row of the UsvDTd answer as a mention (rating 1–5)."""
    review_id = str(review[0])
    score = _at(review, 2)
    name = _at(review, 1, 0)
    reply = _at(review, 7, 1)
    return Mention(
        source="googleplay",
        external_id=review_id,
        text=clip(str(_at(review, 4) or "")),
        created_at=_review_time(review),
        url=f"https://play.google.com/store/apps/details?id={app_id}&hl={lang}&reviewId={review_id}",
        author=Author(name=str(name) if name else None),
        rating=float(score) if isinstance(score, int | float) else None,
        rating_max=5.0,
        source_name=source_name,
        raw={
            "reviewId": review_id,
            "score": score,
            "thumbsUp": _at(review, 6),
            "appVersion": _at(review, 10),
            "has_reply": bool(reply),
        },
    )
