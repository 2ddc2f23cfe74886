"""RSS/Atom feeds: news sites, blogs, Google Alerts and Google News searches.

Credentials: none. Limits: be polite, poll every few minutes at most; conditional GET
(ETag / Last-Modified) makes unchanged feeds cost one 304. ``timeout`` bounds the whole request,
body included (a feed trickling a byte at a time fails after it, as a transient error).

Behaviour: permanent redirects (301/308) are remembered in the cursor, HTTP 410 stops the source
until the configured URL changes; the body is read raw (at most 20 MB, also after decompression)
and gzip/deflate are undone leniently as feedparser does, so mislabelled bodies still parse;
feedparser runs in a worker thread and ill-formed (bozo) feeds are accepted when entries are
usable. Entries with no text to show (no title, no body text, no link) are skipped and counted
(``empty_entry``), as are later entries repeating an id already seen in the same answer
(``duplicate_id``: the first one wins). Entries dated more than a few minutes in the future (a wrong
server clock) are dated at the poll time.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import feedparser
import httpx
from pydantic import BaseModel, ConfigDict, Field

from sources.base import (
    Author,
    Cursor,
    Mention,
    NotConfiguredError,
    PollResult,
    SourceContext,
    SourceError,
    TransientError,
)
from sources.http import USER_AGENT, GoneError, check_response
from sources.text import clip, html_to_text, language_code, not_after, scrub_mention, stable_id, struct_to_utc

__all__ = ["FeedOptions", "FeedSource", "decode_content", "entries_to_mentions", "entry_id", "parse_feed"]

#: Feeds larger than this are refused rather than parsed (a feed is not a file download).
MAX_FEED_BYTES = 20 * 1024 * 1024


class FeedOptions(BaseModel):
    """Settings of one feed."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Feed URL (RSS 0.9x/1.0/2.0, Atom, CDF).")
    timeout: float = Field(20.0, gt=0, le=300, description="Seconds for the whole request.")


class FeedSource:
    """Polls one RSS/Atom feed with conditional GET and turns its entries into mentions."""

    kind: ClassVar[str] = "rss"
    Options: ClassVar[type[FeedOptions]] = FeedOptions

    def __init__(self, name: str, options: FeedOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None

    async def poll(self, cursor: Cursor) -> PollResult:
        """Fetch the feed unless unchanged; every usable entry becomes one mention."""
        if self._client is None:
            self._client = self._ctx.http_client(
                timeout=self.options.timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
            )
        configured = self.options.url
        if cursor.get("config_url", configured) != configured:
            # The operator changed the URL: redirects, validators and a 410 belonged to the old one.
            cursor = {}
        url = cursor.get("url") or configured
        if cursor.get("gone_url") == url:
            # A 410 was seen for this exact URL: never poll it again until the config changes.
            return PollResult([], dict(cursor), gone=True)
        headers = {
            "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.8",
            # Only encodings undone below (the body is read raw, so feedparser-style leniency applies).
            "Accept-Encoding": "gzip, deflate",
        }
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
        response, raw = await self._fetch(self._client, url, headers)
        new_cursor = dict(cursor)
        new_cursor["config_url"] = configured
        permanent = _permanent_redirect_target(response)
        if permanent is not None:
            new_cursor["url"] = permanent
        try:
            check_response(response)
        except GoneError:
            new_cursor["gone_url"] = url
            return PollResult([], new_cursor, gone=True)
        if response.status_code == 304:
            return PollResult([], new_cursor)
        if response.status_code >= 300:
            raise TransientError(f"feed {self.name}: HTTP {response.status_code} without a usable Location")
        body = decode_content(raw, response.headers.get("content-encoding"), MAX_FEED_BYTES)
        feed_headers = dict(response.headers)
        # Relative links in entries resolve against the URL the feed was served from.
        feed_headers.setdefault("content-location", str(response.url))
        parsed = await asyncio.to_thread(parse_feed, body, feed_headers)
        mentions, skip_reasons = entries_to_mentions(
            parsed, source_name=self.name, fetched_at=self._ctx.clock(), scope=self.options.url
        )
        if not mentions and parsed.get("bozo") and not _is_feed(parsed):
            problem = parsed.get("bozo_exception")
            raise SourceError(
                f"feed {self.name} could not be parsed: {type(problem).__name__ if problem else 'unknown'}"
            )
        for header, key in (("etag", "etag"), ("last-modified", "last_modified")):
            value = response.headers.get(header)
            if value:
                new_cursor[key] = value
            else:
                # Validators belong to one representation: never send a stale one.
                new_cursor.pop(key, None)
        return PollResult(mentions, new_cursor, skipped=sum(skip_reasons.values()), skip_reasons=skip_reasons)

    async def _fetch(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> tuple[httpx.Response, bytes]:
        """GET ``url`` and read the raw (still encoded) body up to the size limit.

        ``timeout`` bounds the whole request, body included: httpx's timeout applies to each read,
        and a server that trickles a byte every few seconds would otherwise never time out.
        """
        limit = self.options.timeout
        try:
            async with asyncio.timeout(limit), client.stream("GET", url, headers=headers) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > MAX_FEED_BYTES:
                        raise SourceError(f"feed {self.name} is over the {MAX_FEED_BYTES} byte limit")
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise TransientError(
                f"timeout fetching feed {self.name}: no complete answer within {limit:g}s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout fetching feed {self.name}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"connection error fetching feed {self.name}: {type(exc).__name__}") from exc
        except httpx.RequestError as exc:
            # Redirect loops and other bad answers: the server's fault, retried later.
            raise TransientError(f"bad answer fetching feed {self.name}: {type(exc).__name__}") from exc
        except httpx.InvalidURL as exc:
            raise NotConfiguredError(f"feed {self.name}: invalid URL") from exc
        return response, b"".join(chunks)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def decode_content(raw: bytes, encoding: str | None, limit: int = MAX_FEED_BYTES) -> bytes:
    """Undo Content-Encoding leniently, as feedparser does: a body that does not decode stays as is.

    Servers label plain bodies as gzip and send raw deflate without zlib headers; those bytes are
    still worth parsing. A body that inflates beyond ``limit`` is refused (compression bombs).
    """
    for token in reversed([t.strip().lower() for t in (encoding or "").split(",") if t.strip()]):
        attempts: tuple[int, ...]
        if token in ("gzip", "x-gzip"):
            attempts = (16 + zlib.MAX_WBITS,)
        elif token == "deflate":
            attempts = (zlib.MAX_WBITS, -zlib.MAX_WBITS)
        else:
            continue
        for wbits in attempts:
            try:
                inflater = zlib.decompressobj(wbits)
                out = inflater.decompress(raw, limit + 1)
            except zlib.error:
                continue
            if len(out) > limit:
                raise SourceError(f"feed inflates to more than {limit} bytes")
            raw = out
            break
        else:
            return raw
    return raw


def _permanent_redirect_target(response: httpx.Response) -> str | None:
    """The final URL when every redirect on the way was permanent (301/308), else None."""
    if not response.history:
        return None
    if all(step.status_code in (301, 308) for step in response.history):
        return str(response.url)
    return None


def _is_feed(parsed: Mapping[str, Any]) -> bool:
    """Whether feedparser recognised a feed at all (a version or a feed title)."""
    return bool(parsed.get("version")) or bool(parsed.get("feed", {}).get("title"))


def parse_feed(body: bytes, headers: Mapping[str, str] | None = None) -> Any:
    """Parse feed bytes with feedparser, passing HTTP headers so the declared charset is used."""
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    # Content-Encoding was already undone by the HTTP client; feedparser must not try again.
    response_headers.pop("content-encoding", None)
    # No sanitizing here: feedparser's sanitizer drops a malformed <script> tag but keeps the code
    # inside it as text. The markup goes to html_to_text whole, which drops script and style
    # elements with their content; mention text is plain text, escaped again wherever it is shown.
    return feedparser.parse(body, response_headers=response_headers, sanitize_html=False)


def entries_to_mentions(
    parsed: Mapping[str, Any], *, source_name: str | None, fetched_at: datetime, scope: str | None = None
) -> tuple[list[Mention], dict[str, int]]:
    """Normalise feedparser entries; returns the mentions and the skipped entries by reason.

    ``scope`` (the configured feed URL) qualifies entry ids that are only unique within their feed.
    Reasons: ``empty_entry`` (nothing to read or follow), ``duplicate_id`` (an id already seen
    in this answer: the first entry with it is kept, as the store would keep it).
    """
    mentions: list[Mention] = []
    reasons: dict[str, int] = {}
    seen: set[str] = set()
    feed_title = parsed.get("feed", {}).get("title")
    feed_language = language_code(parsed.get("feed", {}).get("language"))  # <language>, xml:lang
    for entry in parsed.get("entries", []):
        mention = _entry_to_mention(
            entry,
            source_name=source_name,
            fetched_at=fetched_at,
            feed_title=feed_title,
            scope=scope,
            feed_language=feed_language,
        )
        reason = None if mention is not None else "empty_entry"
        if mention is not None and mention.external_id in seen:
            reason = "duplicate_id"
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        assert mention is not None
        seen.add(mention.external_id)
        mentions.append(mention)
    return mentions, reasons


def _entry_markup(entry: Mapping[str, Any]) -> str:
    """The entry's body as given: the first non-empty content, else the summary (hashed for ids)."""
    return next(_body_candidates(entry), "")


def _entry_body(entry: Mapping[str, Any]) -> str:
    """The entry's body as plain text: of the first content, else the summary, that has any text.

    A content that is only an image does not hide a summary with words in it.
    """
    for markup in _body_candidates(entry):
        text = html_to_text(markup)
        if text:
            return text
    return ""


def _body_candidates(entry: Mapping[str, Any]) -> Iterator[str]:
    """The entry's non-empty contents in order, then its summary."""
    for content in entry.get("content") or []:
        value = content.get("value") if isinstance(content, Mapping) else None
        if value:
            yield str(value)
    summary = entry.get("summary") or entry.get("description")
    if summary:
        yield str(summary)


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """The entry's own value for ``key``: FeedParserDict.get("updated") would fall back to
    "published" (with a DeprecationWarning) when the feed gave no update date."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def entry_id(entry_id: str, scope: str | None) -> str:
    """The stored id of an entry: a URL, ``tag:`` or ``urn:`` id as given (unique everywhere);
    any other id ("1", "post-42") qualified by its feed, so two sites' item 1 stay two mentions."""
    if scope is None or entry_id.lower().startswith(_GLOBAL_ID_PREFIXES):
        return entry_id
    return f"{scope}#{entry_id}"


_GLOBAL_ID_PREFIXES = ("http://", "https://", "tag:", "urn:")


def _entry_to_mention(
    entry: Mapping[str, Any],
    *,
    source_name: str | None,
    fetched_at: datetime,
    feed_title: str | None,
    scope: str | None = None,
    feed_language: str | None = None,
) -> Mention | None:
    raw_title = str(entry.get("title") or "")
    title = html_to_text(raw_title) or None
    body = _entry_body(entry)
    link = entry.get("link") or None
    if title and body:
        # each part is clipped alone: clip the joined text too, so it keeps the documented limit
        text = clip(body if body.startswith(title) else f"{title}\n{body}")
    else:
        # An entry whose body is only markup (an image) still counts when it has a link to stand in.
        text = title or body or link or ""
    if not text:
        # Nothing to read or follow (only an id, an image, empty markup): not a mention.
        return None
    own_id = entry.get("id")
    # A content hash is only unique within its feed too: the same undated text in two feeds is
    # two entries (two sites), like two sites' item "1".
    external_id = (
        entry_id(str(own_id), scope)
        if own_id
        else link or entry_id(stable_id(raw_title, _entry_markup(entry)), scope)
    )
    created = (
        struct_to_utc(entry.get("published_parsed"))
        or struct_to_utc(_own(entry, "updated_parsed"))
        or struct_to_utc(entry.get("created_parsed"))
        # The feed gave no date for this entry: the fetch time is the best honest answer.
        or fetched_at
    )
    # A date in the future (a wrong server clock, a typo) is taken as now, as other sources do.
    created = not_after(created, fetched_at)
    author_detail = entry.get("author_detail") or {}
    author = Author(
        handle=None,
        # "a@example.com (Alice A)": feedparser's author_detail has the name apart
        name=html_to_text(author_detail.get("name") if isinstance(author_detail, Mapping) else None)
        or html_to_text(entry.get("author"))
        or (feed_title if isinstance(feed_title, str) else None),
        url=author_detail.get("href") if isinstance(author_detail, Mapping) else None,
    )
    return scrub_mention(
        Mention(
            source="rss",
            external_id=str(external_id),
            text=text,
            created_at=created,
            url=link,
            author=author,
            title=title,
            language=_language(entry) or feed_language,
            source_name=source_name,
            raw={k: v for k in ("id", "link", "title", "published", "updated") if (v := _own(entry, k))},
        )
    )


def _language(entry: Mapping[str, Any]) -> str | None:
    """The entry's own language (xml:lang on its title, summary or content), if it has one."""
    details = [entry.get("title_detail"), entry.get("summary_detail"), *(entry.get("content") or [])]
    for detail in details:
        code = language_code(detail.get("language") if isinstance(detail, Mapping) else None)
        if code:
            return code
    return None
