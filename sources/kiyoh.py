"""Kiyoh / Klantenvertellen: the review feed of one location (XML or JSON).

Credentials: the location's feed **hash** from the Kiyoh/Klantenvertellen dashboard
(``KIYOH_HASH`` or ``hash_file``); it authenticates the feed URL
(``{base_url}/v1/review/feed.{xml|json}?hash=...``), so it is treated as a secret and never shown.
A wrong hash is answered with ``INVALID_HASH``, which becomes :class:`AuthError`. Klantenvertellen
is the same platform: set ``base_url: https://www.klantenvertellen.nl``. Limits: none documented;
the feed is meant for widgets, poll every 15 minutes or slower. Ratings are 1–10.

Resume: the feed returns every review of the last ``limit_days`` days on each poll, and every one
of them is delivered each time; the store's unique key keeps each review once. A timestamp
watermark would lose reviews that appear in the feed after a newer one (published after
moderation, or served late by a cache), and a list of the ids seen would grow with the feed: the
database already is that list. Lower ``limit_days`` to read less each poll.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from sources.base import AuthError, Author, Cursor, Mention, PollResult, SourceContext, TransientError
from sources.http import USER_AGENT, check_response, clock_seconds, request
from sources.text import clip, parse_timestamp
from sources.watermark import stream_prefix

__all__ = ["KiyohOptions", "KiyohSource", "parse_kiyoh_feed", "review_to_mention"]


class KiyohOptions(BaseModel):
    """Settings of one Kiyoh / Klantenvertellen location feed."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        "https://www.kiyoh.com", description="https://www.kiyoh.com or https://www.klantenvertellen.nl"
    )
    hash_env: str = Field("KIYOH_HASH", description="Environment variable with the feed hash.")
    hash_file: str | None = None
    format: Literal["xml", "json"] = Field("xml", description="Feed variant.")
    limit_days: int = Field(30, ge=1, le=3650, description="Days of reviews the feed returns.")
    page_url: str | None = Field(None, description="Public review page of the location (for links).")
    timeout: float = Field(20.0, gt=0, le=300)


class KiyohSource:
    """Polls a Kiyoh / Klantenvertellen review feed."""

    kind: ClassVar[str] = "kiyoh"
    Options: ClassVar[type[KiyohOptions]] = KiyohOptions

    def __init__(self, name: str, options: KiyohOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None

    async def poll(self, cursor: Cursor) -> PollResult:
        """Fetch the feed and return every review in it (the store drops those it has)."""
        feed_hash = self._ctx.secret(self.options.hash_env, self.options.hash_file, what="Kiyoh feed hash")
        if self._client is None:
            self._client = self._ctx.http_client(
                timeout=self.options.timeout, headers={"User-Agent": USER_AGENT}
            )
        response = await request(
            self._client,
            "GET",
            f"{self.options.base_url.rstrip('/')}/v1/review/feed.{self.options.format}",
            params={"hash": feed_hash, "limitDays": self.options.limit_days},
            now=clock_seconds(self._ctx.clock),
            check=False,
        )
        location, reviews = parse_kiyoh_feed(
            response.content, self.options.format, status=response.status_code
        )
        check_response(response, clock_seconds(self._ctx.clock))
        # Versions before every review was delivered kept a watermark here; it has no use now.
        prefix = stream_prefix("ky", self.options.base_url + self.options.format)
        new_cursor = {k: v for k, v in cursor.items() if not k.startswith(prefix)}
        page = self.options.page_url or (
            f"{self.options.base_url.rstrip('/')}/reviews/{location['locationId']}"
            if location.get("locationId")
            else None
        )
        mentions = [review_to_mention(r, page_url=page, source_name=self.name) for r in reviews]
        return PollResult(mentions, new_cursor)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def parse_kiyoh_feed(
    body: bytes, variant: str, *, status: int = 200
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Location fields and reviews of a feed answer; error answers raise the matching SourceError."""
    try:
        payload = json.loads(body.decode("utf-8")) if variant == "json" else _xml_to_dict(ET.fromstring(body))
    except (ET.ParseError, ValueError, UnicodeDecodeError) as exc:
        if status >= 300:
            return {}, []  # the status decides (check_response), the body is no feed
        raise TransientError(f"Kiyoh feed is not valid {variant}: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise TransientError("Kiyoh feed has an unexpected shape")
    _raise_error_answer(payload)
    if status >= 300:
        return {}, []
    location = {k: payload.get(k) for k in ("locationId", "locationName", "averageRating", "numberReviews")}
    raw_reviews = payload.get("reviews")
    if isinstance(raw_reviews, dict):  # XML: <reviews><reviews>...</reviews></reviews>
        raw_reviews = raw_reviews.get("reviews")
    if isinstance(raw_reviews, dict):
        raw_reviews = [raw_reviews]
    reviews: list[dict[str, Any]] = []
    for review in raw_reviews or []:
        if not isinstance(review, dict) or not review.get("reviewId"):
            continue
        created = parse_timestamp(review.get("dateSince")) or parse_timestamp(review.get("updatedSince"))
        if created is None:
            continue
        reviews.append({**review, "_created": created, "_location": location})
    return location, reviews


def _raise_error_answer(payload: Mapping[str, Any]) -> None:
    """Kiyoh answers errors as ``{httpCode, errorCode, detailedError}``; a bad hash is an auth error."""
    if "errorCode" not in payload and "httpCode" not in payload:
        return
    details = payload.get("detailedError")
    if isinstance(details, dict):
        details = [details]
    codes = {str(payload.get("errorCode") or "")}
    codes.update(str(d.get("errorCode") or "") for d in details or [] if isinstance(d, dict))
    if any("HASH" in code or "UNAUTHORIZED" in code or "FORBIDDEN" in code for code in codes):
        raise AuthError("Kiyoh refused the feed hash (INVALID_HASH): check the configured hash variable")
    shown = ", ".join(sorted(c for c in codes if c))[:120] or "unknown"
    raise TransientError(f"Kiyoh answered an error: {shown}")


def _xml_to_dict(element: ET.Element) -> Any:
    """Kiyoh's XML as the same structure its JSON has (repeated children become lists)."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _xml_to_dict(child)
        if child.tag in out:
            existing = out[child.tag]
            out[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[child.tag] = value
    # <reviews><reviews/>…</reviews>: a wrapper whose children all share its tag is a list.
    if len(out) == 1 and element.tag in out:
        inner = out[element.tag]
        return {element.tag: inner if isinstance(inner, list) else [inner]}
    return out


def _answers(review: Mapping[str, Any]) -> dict[str, str]:
    content = review.get("reviewContent")
    if isinstance(content, dict):
        content = content.get("reviewContent", [content])
    if isinstance(content, dict):
        content = [content]
    answers: dict[str, str] = {}
    for item in content or []:
        if isinstance(item, dict) and item.get("questionGroup"):
            answers.setdefault(str(item["questionGroup"]), str(item.get("rating") or "").strip())
    return answers


def review_to_mention(
    review: Mapping[str, Any], *, page_url: str | None = None, source_name: str | None = None
) -> Mention:
    """A Kiyoh review as a mention (rating 1–10)."""
    answers = _answers(review)
    oneliner = answers.get("DEFAULT_ONELINER", "")
    opinion = answers.get("DEFAULT_OPINION", "")
    text = (
        f"{oneliner}\n{opinion}"
        if oneliner and opinion and not opinion.startswith(oneliner)
        else opinion or oneliner
    )
    try:
        rating: float | None = float(review.get("rating"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        rating = None
    language = review.get("reviewLanguage") or review.get("language")
    return Mention(
        source="kiyoh",
        external_id=str(review["reviewId"]),
        text=clip(text),
        created_at=review["_created"],
        url=page_url,
        author=Author(name=str(review.get("reviewAuthor") or "").strip() or None),
        title=oneliner or None,
        language=str(language).split("-")[0].lower() if language else None,
        rating=rating,
        rating_max=10.0,
        source_name=source_name,
        raw={
            "reviewId": str(review["reviewId"]),
            "city": review.get("city"),
            "recommend": answers.get("DEFAULT_RECOMMEND"),
            "has_reply": bool(review.get("reviewComments")),
            "locationId": (review.get("_location") or {}).get("locationId"),
            "updatedSince": review.get("updatedSince"),
        },
    )
