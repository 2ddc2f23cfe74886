"""Trustpilot: the public reviews of one business unit, newest first.

Credentials: an API key of a Trustpilot developer application (``TRUSTPILOT_API_KEY`` or
``api_key_file``), sent in the ``apikey`` header. Access to the Trustpilot API comes with a
Trustpilot business plan; the key identifies the application, and the public ("consumer") endpoints
used here need no OAuth. Limits: Trustpilot throttles per key (HTTP 429 with ``Retry-After``,
honoured); the business-unit id is shown in Trustpilot Business or found with
``/v1/business-units/find?name=<domain>``.

Resume: reviews are listed ``orderBy=createdat.desc`` and paged by number; the cursor keeps the
newest ``createdAt`` delivered (plus the ids at that instant) and walks down to it less
``lateness`` (default a day: reviews held for verification or moderation appear late with their
earlier date), resumably (see :mod:`sources.watermark`); the store drops what is read again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Duration
from sources.base import Author, Cursor, Mention, PollResult, SourceContext
from sources.http import USER_AGENT, clock_seconds, json_body, request
from sources.payload import SkipCounter, as_dict, as_list
from sources.text import clip, parse_timestamp
from sources.watermark import Page, apply_walk, stream_prefix, walk_newest_first

__all__ = ["TrustpilotOptions", "TrustpilotSource", "review_to_mention"]


class TrustpilotOptions(BaseModel):
    """Settings of one Trustpilot source (one business unit)."""

    model_config = ConfigDict(extra="forbid")

    business_unit_id: str = Field(min_length=8, pattern=r"^[A-Za-z0-9]+$", description="Business unit id.")
    api_key_env: str = Field("TRUSTPILOT_API_KEY", description="Environment variable with the API key.")
    api_key_file: str | None = None
    api_url: str = Field("https://api.trustpilot.com", description="API base URL.")
    public_url: str = Field("https://www.trustpilot.com", description="Site used for review links.")
    language: str = Field("all", description="Review language filter (all, en, nl, ...).")
    per_page: int = Field(100, ge=1, le=100, description="Reviews per page.")
    max_pages: int = Field(5, ge=1, le=100, description="Pages per poll.")
    first_pages: int = Field(1, ge=1, le=100, description="Pages read on the first poll.")
    lateness: Duration = Field(
        86400.0,
        description=(
            "How far below the newest review delivered each poll reads again, for reviews that "
            "appear late with an earlier date (moderation); 0 = not at all."
        ),
    )
    timeout: float = Field(20.0, gt=0, le=300)


class TrustpilotSource:
    """Polls a business unit's reviews newest first down to the stored watermark."""

    kind: ClassVar[str] = "trustpilot"
    Options: ClassVar[type[TrustpilotOptions]] = TrustpilotOptions

    def __init__(self, name: str, options: TrustpilotOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None
        self._skips = SkipCounter()

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read reviews newer than the stored watermark."""
        key = self._ctx.secret(self.options.api_key_env, self.options.api_key_file, what="Trustpilot API key")
        self._skips = SkipCounter()
        new_cursor = dict(cursor)
        walk = await walk_newest_first(
            functools.partial(self._fetch, key),
            _walk_key,
            new_cursor,
            prefix=stream_prefix("tp", self.options.business_unit_id),
            max_pages=self.options.max_pages,
            first_pages=self.options.first_pages,
            lateness=timedelta(seconds=self.options.lateness),
        )
        apply_walk(new_cursor, walk)
        mentions = [
            review_to_mention(r, public_url=self.options.public_url, source_name=self.name)
            for r in walk.items
        ]
        skips = self._skips
        return PollResult(
            mentions, new_cursor, skipped=skips.total, skip_reasons=dict(skips.reasons), more=walk.more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, api_key: str, token: str | None) -> Page[dict[str, Any]]:
        if self._client is None:
            self._client = self._ctx.http_client(timeout=self.options.timeout)
        page = int(token or 1)
        unit = quote(self.options.business_unit_id, safe="")
        response = await request(
            self._client,
            "GET",
            f"{self.options.api_url.rstrip('/')}/v1/business-units/{unit}/reviews",
            headers={"apikey": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"},
            params={
                "orderBy": "createdat.desc",
                "perPage": self.options.per_page,
                "page": page,
                "language": self.options.language,
            },
            now=clock_seconds(self._ctx.clock),
        )
        payload = json_body(response)
        reviews = payload.get("reviews") if isinstance(payload, dict) else None
        items = self._skips.keep(as_list(reviews), _usable_review)
        links = payload.get("links") if isinstance(payload, dict) else None
        has_next = any(isinstance(link, dict) and link.get("rel") == "next-page" for link in links or [])
        return Page(items, str(page + 1) if has_next and items else None)


def _usable_review(item: object) -> bool:
    return (
        isinstance(item, dict) and bool(item.get("id")) and parse_timestamp(item.get("createdAt")) is not None
    )


def _walk_key(review: Mapping[str, Any]) -> tuple[str, datetime]:
    created = parse_timestamp(review.get("createdAt"))
    if created is None:
        raise ValueError(f"review {review.get('id')} has no createdAt")
    return str(review["id"]), created


def review_to_mention(
    review: Mapping[str, Any],
    *,
    public_url: str = "https://www.trustpilot.com",
    source_name: str | None = None,
) -> Mention:
    """A Trustpilot review as a mention (rating 1–5 stars)."""
    review_id, created = _walk_key(review)
    consumer = as_dict(review.get("consumer"))
    title = str(review.get("title") or "").strip() or None
    body = str(review.get("text") or "").strip()
    text = f"{title}\n{body}" if title and body else title or body
    stars = review.get("stars")
    count = consumer.get("numberOfReviews")
    language = review.get("language")
    return Mention(
        source="trustpilot",
        external_id=review_id,
        text=clip(text),
        created_at=created,
        url=f"{public_url.rstrip('/')}/reviews/{review_id}",
        author=Author(
            name=consumer.get("displayName") or None,
            id=str(consumer["id"]) if consumer.get("id") else None,
            url=f"{public_url.rstrip('/')}/users/{consumer['id']}" if consumer.get("id") else None,
        ),
        title=title,
        language=language.split("-")[0].lower() if isinstance(language, str) and language else None,
        rating=float(stars) if isinstance(stars, int | float) else None,
        rating_max=5.0,
        source_name=source_name,
        raw={
            "id": review_id,
            "stars": stars,
            "isVerified": review.get("isVerified"),
            "consumer_reviews": count if isinstance(count, int) else None,
            "location": consumer.get("displayLocation"),
            "has_reply": bool(review.get("companyReply")),
        },
    )
