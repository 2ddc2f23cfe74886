"""Text helpers for sources: HTML to plain text, stable ids, timestamp parsing."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from sources.base import Author, Mention

__all__ = [
    "FUTURE_TOLERANCE",
    "MAX_TEXT_CHARS",
    "clip",
    "html_to_text",
    "language_code",
    "not_after",
    "parse_timestamp",
    "scrub",
    "scrub_mention",
    "stable_id",
    "struct_to_utc",
]

#: Longer posts are cut here: nothing a webcare team reads needs more, and it bounds memory.
MAX_TEXT_CHARS = 20_000
_BLOCK_TAGS = frozenset(
    {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}
)
_SKIP_TAGS = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")
#: A UTF-16 surrogate code point: valid in a Python str (and in JSON's \\ud83d escapes), but no
#: character, so it cannot be encoded as UTF-8 (databases, logs, Slack all refuse it).
_SURROGATES = re.compile("[\ud800-\udfff]")
#: How far in the future a source's date may lie (clock skew) before it is taken as wrong.
FUTURE_TOLERANCE = timedelta(minutes=10)


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML fragment, dropping scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_SCRIPTS = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)


def html_to_text(fragment: str | None) -> str:
    """Visible text of an HTML fragment with whitespace normalised; plain text passes through."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return clip(_normalise(fragment))
    parser = _TextExtractor()
    try:
        parser.feed(fragment)
        parser.close()
    except (AssertionError, ValueError):
        # HTMLParser gives up on some hostile markup; fall back to unescaped text without tags.
        # script and style elements go whole, as the parser would have dropped them
        visible = _SCRIPTS.sub(" ", fragment)
        return clip(_normalise(html.unescape(re.sub(r"<[^>]*>", " ", visible))))
    return clip(_normalise("".join(parser.parts)))


def scrub(text: str) -> str:
    """``text`` with lone surrogates (truncated emoji in API payloads) replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _normalise(text: str) -> str:
    text = scrub(text).replace("\x00", "")
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis (lone surrogates scrubbed)."""
    text = scrub(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stable_id(*parts: str | None) -> str:
    """A persistent id from content (sha1), for items the source gives no id of its own."""
    digest = hashlib.sha1("\x1f".join(p or "" for p in parts).encode("utf-8"), usedforsecurity=False)
    return "sha1:" + digest.hexdigest()


def struct_to_utc(value: time.struct_time | None) -> datetime | None:
    """Convert feedparser's UTC ``struct_time`` to an aware datetime."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def parse_timestamp(value: str | int | float | None) -> datetime | None:
    """Parse ISO 8601 strings (``Z`` or offset) and epoch seconds to aware UTC datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def language_code(language: object) -> str | None:
    """``nl-BE`` -> ``nl``: the language without its region, as every source gives it."""
    if isinstance(language, str) and language.strip():
        return language.strip().split("-")[0].split("_")[0].lower()
    return None


def not_after(value: datetime, now: datetime, tolerance: timedelta = FUTURE_TOLERANCE) -> datetime:
    """``value``, or ``now`` when it lies more than ``tolerance`` after ``now``.

    A server with a wrong clock (or a typo in a feed) can date a post in the future; stored as is, it
    would sort above everything for months and skew spike buckets.
    """
    return now if value - now > tolerance else value


def _scrub_optional(value: str | None) -> str | None:
    return scrub(value) if isinstance(value, str) else value


def _scrub_raw(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {_scrub_raw(k): _scrub_raw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_raw(v) for v in value]
    return value


def scrub_mention(mention: Mention) -> Mention:
    """``mention`` with lone surrogates replaced by U+FFFD in every text field (and its raw payload).

    Every source builds its text with :func:`clip`/:func:`html_to_text`, which scrub already; this
    covers the other fields (ids, urls, names) before anything is stored or sent.
    """
    author = mention.author
    return replace(
        mention,
        source=scrub(mention.source),
        external_id=scrub(mention.external_id),
        text=scrub(mention.text),
        url=_scrub_optional(mention.url),
        author=Author(
            handle=_scrub_optional(author.handle),
            name=_scrub_optional(author.name),
            id=_scrub_optional(author.id),
            followers=author.followers,
            url=_scrub_optional(author.url),
        ),
        title=_scrub_optional(mention.title),
        language=_scrub_optional(mention.language),
        parent_id=_scrub_optional(mention.parent_id),
        thread_id=_scrub_optional(mention.thread_id),
        in_reply_to=_scrub_optional(mention.in_reply_to),
        mentioned_handles=tuple(scrub(h) if isinstance(h, str) else h for h in mention.mentioned_handles),
        repost_of=_scrub_optional(mention.repost_of),
        source_name=_scrub_optional(mention.source_name),
        raw=_scrub_raw(dict(mention.raw)),
    )
