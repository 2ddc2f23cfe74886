"""Text helpers for sources: HTML to plain text, stable ids, timestamp parsing."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from datetime import UTC, datetime
from html.parser import HTMLParser

__all__ = ["MAX_TEXT_CHARS", "clip", "html_to_text", "parse_timestamp", "stable_id", "struct_to_utc"]

#: Longer posts are cut here: nothing a webcare team reads needs more, and it bounds memory.
MAX_TEXT_CHARS = 20_000
_BLOCK_TAGS = frozenset(
    {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}
)
_SKIP_TAGS = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")


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


def _normalise(text: str) -> str:
    text = text.replace("\x00", "")
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
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
