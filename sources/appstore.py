"""Apple App Store: the customer-review feed of one app, per storefront country.

Credentials: none. The feed (``https://itunes.apple.com/{country}/rss/customerreviews/page={n}/
id={app}/sortby=mostrecent/{xml|json}``) is public and unauthenticated but legacy and unofficial in
practice: it serves at most 10 pages of 50 reviews per country, has no per-review links and no
documented rate limit (poll every 15 minutes or slower). The XML variant carries a date per review;
the JSON variant has none (only the feed's ``updated`` time, which then stands in for every review),
so ``format: xml`` is the default: a first JSON poll puts up to 50 reviews per page into one
spike-detection bucket, which can raise a spike alert (see docs/sources.md). The official
alternative, the App Store Connect API, needs the app owner's key and is not used here.

Resume: per country, a watermark on the review's ``updated`` time plus the ids at that instant;
pages are walked newest first down to it less ``lateness`` (default a day), resumably (see
:mod:`sources.watermark`): a review that appears late with an earlier date (moderation) is still
read; the reviews read again in that margin are dropped by the store. More than 500 reviews between
two polls cannot be read back (the feed stops at page 10).
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Duration
from sources.base import Author, Cursor, Mention, PollResult, SourceContext, TransientError
from sources.http import USER_AGENT, clock_seconds, request
from sources.payload import as_dict
from sources.text import clip, language_code, parse_timestamp
from sources.watermark import Page, apply_walk, stream_prefix, walk_newest_first

__all__ = ["AppReview", "AppStoreOptions", "AppStoreSource", "parse_review_feed"]

_ATOM = "{http://www.w3.org/2005/Atom}"
_IM = "{http://itunes.apple.com/rss}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: The feed serves no more pages than this.
MAX_FEED_PAGES = 10


class AppStoreOptions(BaseModel):
    """Settings of one App Store source (one app, one or more storefronts)."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(
        pattern=r"^\d{5,12}$", description="Numeric App Store id (the digits after 'id' in the URL)."
    )
    countries: list[str] = Field(["us"], min_length=1, description="Storefront country codes, e.g. [nl, be].")
    format: Literal["xml", "json"] = Field("xml", description="Feed variant; xml carries per-review dates.")
    base_url: str = Field("https://itunes.apple.com", description="Feed host.")
    max_pages: int = Field(3, ge=1, le=MAX_FEED_PAGES, description="Pages (50 reviews each) per poll.")
    first_pages: int = Field(1, ge=1, le=MAX_FEED_PAGES, description="Pages read on the first poll.")
    lateness: Duration = Field(
        86400.0,
        description=(
            "How far below the newest review delivered each poll reads again, for reviews that "
            "appear late with an earlier date (moderation); 0 = not at all."
        ),
    )
    timeout: float = Field(20.0, gt=0, le=300)


@dataclass(slots=True)
class AppReview:
    """One review as the feed gives it (both variants)."""

    id: str
    title: str
    content: str
    rating: float | None
    updated: datetime
    author: str | None = None
    author_url: str | None = None
    version: str | None = None
    #: The review's language (xml:lang of the XML feed, nearest element first), e.g. ``ja``.
    language: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class AppStoreSource:
    """Polls the customer-review feed of one app in each configured country."""

    kind: ClassVar[str] = "appstore"
    Options: ClassVar[type[AppStoreOptions]] = AppStoreOptions

    def __init__(self, name: str, options: AppStoreOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read new reviews of every country."""
        new_cursor = dict(cursor)
        mentions: list[Mention] = []
        more = False
        for country in self.options.countries:
            country = country.lower()
            walk = await walk_newest_first(
                functools.partial(self._fetch, country),
                lambda r: (r.id, r.updated),
                new_cursor,
                prefix=stream_prefix("as", f"{self.options.app_id}:{country}"),
                max_pages=self.options.max_pages,
                first_pages=self.options.first_pages,
                lateness=timedelta(seconds=self.options.lateness),
            )
            apply_walk(new_cursor, walk)
            mentions.extend(self._mention(r, country) for r in walk.items)
            more = more or walk.more
        return PollResult(mentions, new_cursor, more=more)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, country: str, token: str | None) -> Page[AppReview]:
        if self._client is None:
            self._client = self._ctx.http_client(
                timeout=self.options.timeout, headers={"User-Agent": USER_AGENT}
            )
        page = int(token or 1)
        url = (
            f"{self.options.base_url.rstrip('/')}/{country}/rss/customerreviews/page={page}/"
            f"id={self.options.app_id}/sortby=mostrecent/{self.options.format}"
        )
        response = await request(self._client, "GET", url, now=clock_seconds(self._ctx.clock))
        reviews = parse_review_feed(response.content, self.options.format)
        return Page(reviews, str(page + 1) if reviews and page < MAX_FEED_PAGES else None)

    def _mention(self, review: AppReview, country: str) -> Mention:
        text = (
            f"{review.title}\n{review.content}"
            if review.title and review.content
            else review.title or review.content
        )
        return Mention(
            source="appstore",
            external_id=review.id,
            text=clip(text),
            created_at=review.updated,
            url=f"https://apps.apple.com/{country}/app/id{self.options.app_id}?see-all=reviews",
            author=Author(name=review.author, url=review.author_url),
            title=review.title or None,
            language=review.language,
            rating=review.rating,
            rating_max=5.0,
            source_name=self.name,
            raw={**review.raw, "country": country, "app_id": self.options.app_id},
        )


def parse_review_feed(body: bytes, variant: str) -> list[AppReview]:
    """The reviews in one page of the feed (the app's own entry, without a rating, is left out)."""
    try:
        return _parse_json(body) if variant == "json" else _parse_xml(body)
    except (ET.ParseError, ValueError, UnicodeDecodeError) as exc:
        raise TransientError(f"App Store review feed is not valid {variant}: {type(exc).__name__}") from exc


def _parse_xml(body: bytes) -> list[AppReview]:
    # Expat (>= 2.4.1, bundled with supported Pythons) refuses entity-expansion bombs; external
    # entities are never fetched by ElementTree.
    root = ET.fromstring(body)
    feed_updated = parse_timestamp(root.findtext(_ATOM + "updated"))
    feed_language = language_code(root.get(_XML_LANG))
    reviews: list[AppReview] = []
    for entry in root.iter(_ATOM + "entry"):
        rating = entry.findtext(_IM + "rating")
        review_id = (entry.findtext(_ATOM + "id") or "").strip()
        if rating is None or not review_id:
            continue
        contents = entry.findall(_ATOM + "content")
        text_content = next(
            (c for c in contents if c.get("type") == "text"), contents[0] if contents else None
        )
        updated = parse_timestamp(entry.findtext(_ATOM + "updated")) or feed_updated
        if updated is None:
            raise ValueError("review without a date in a feed without a date")
        author = entry.find(_ATOM + "author")
        reviews.append(
            AppReview(
                id=review_id,
                title=(entry.findtext(_ATOM + "title") or "").strip(),
                content=(text_content.text or "").strip() if text_content is not None else "",
                rating=_float(rating),
                updated=updated,
                author=(author.findtext(_ATOM + "name") or None) if author is not None else None,
                author_url=(author.findtext(_ATOM + "uri") or None) if author is not None else None,
                version=entry.findtext(_IM + "version"),
                language=language_code(text_content.get(_XML_LANG) if text_content is not None else None)
                or language_code(entry.get(_XML_LANG))
                or feed_language,
                raw={
                    "id": review_id,
                    "version": entry.findtext(_IM + "version"),
                    "votes": entry.findtext(_IM + "voteSum"),
                },
            )
        )
    return reviews


def _label(node: object) -> str | None:
    if isinstance(node, Mapping):
        label = node.get("label")
        return str(label) if label is not None else None
    return None


def _parse_json(body: bytes) -> list[AppReview]:
    payload = json.loads(body.decode("utf-8"))
    feed = payload.get("feed") if isinstance(payload, dict) else None
    if not isinstance(feed, dict):
        raise ValueError("no feed object")
    feed_updated = parse_timestamp(_label(feed.get("updated")))
    entries = feed.get("entry") or []
    if isinstance(entries, dict):
        entries = [entries]  # a single entry comes as an object, not a list
    reviews: list[AppReview] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        rating = _label(entry.get("im:rating"))
        review_id = (_label(entry.get("id")) or "").strip()
        if rating is None or not review_id:
            continue
        updated = parse_timestamp(_label(entry.get("updated"))) or feed_updated
        if updated is None:
            raise ValueError("review without a date in a feed without a date")
        author = as_dict(entry.get("author"))
        reviews.append(
            AppReview(
                id=review_id,
                title=(_label(entry.get("title")) or "").strip(),
                content=(_label(entry.get("content")) or "").strip(),
                rating=_float(rating),
                updated=updated,
                author=_label(author.get("name")),
                author_url=_label(author.get("uri")),
                version=_label(entry.get("im:version")),
                raw={
                    "id": review_id,
                    "version": _label(entry.get("im:version")),
                    "votes": _label(entry.get("im:voteSum")),
                },
            )
        )
    return reviews


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
