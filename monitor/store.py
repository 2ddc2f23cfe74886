"""Storing polled mentions: dedup by unique key, brand matches, near-duplicate links, cursors.

Everything one poll produced is written in one transaction together with the source's new cursor,
so a crash either keeps the whole poll or none of it (and the poll is simply repeated).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from monitor import models
from monitor.sqlutil import insert_ignore
from monitor.watch import Watchlist
from sources.base import Cursor, Mention, PollResult

__all__ = ["StoreStats", "content_hash", "load_cursor", "save_cursor", "store_mentions"]

#: Texts shorter than this are too generic ("thanks!") to link as copies of each other.
MIN_DUPLICATE_CHARS = 40
#: How far apart a copy and its original may be (either way round: polls may store them out of
#: order): syndicated news and copy-paste waves come within hours; the same sentence days apart is
#: more likely two people.
DUPLICATE_WINDOW = timedelta(hours=12)
_URLS = re.compile(r"https?://\S+")
_RT_PREFIX = re.compile(r"^(rt\s+@[\w.]+:?\s*)+", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+")
#: First key of the two-key PostgreSQL advisory locks that serialise storing the same text (the
#: second key is the content hash): 0x72706D63, "rpmc".
_COPY_LOCK_CLASS = 0x72706D63


@dataclass(slots=True)
class StoreStats:
    """What storing one batch did."""

    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    linked_copies: int = 0
    matched: int = 0


def content_hash(text: str) -> str:
    """Hash of the normalised text (no URLs, RT prefixes, case, accents or punctuation)."""
    folded = unicodedata.normalize("NFKD", _RT_PREFIX.sub("", _URLS.sub(" ", text)).casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    normal = _NON_WORD.sub(" ", folded).strip()
    return hashlib.sha1(normal.encode("utf-8"), usedforsecurity=False).hexdigest()


def load_cursor(session: Session, source_name: str) -> Cursor:
    """The stored resume state of a source."""
    rows = session.execute(
        select(models.SourceCursor.key, models.SourceCursor.value).where(
            models.SourceCursor.source_name == source_name
        )
    )
    return {key: value for key, value in rows}


def save_cursor(session: Session, source_name: str, cursor: Cursor) -> None:
    """Replace the stored resume state of a source."""
    session.execute(delete(models.SourceCursor).where(models.SourceCursor.source_name == source_name))
    for key, value in cursor.items():
        session.add(models.SourceCursor(source_name=source_name, key=key, value=str(value)))


def store_mentions(
    session: Session, mentions: list[Mention], watchlist: Watchlist, now: datetime
) -> tuple[StoreStats, list[int]]:
    """Insert new mentions with their brand matches; returns stats and the new mention ids."""
    stats = StoreStats(received=len(mentions))
    new_ids: list[int] = []
    hashes = [content_hash(m.text) for m in mentions]
    _lock_copy_keys(
        session, [(h, m.created_at) for m, h in zip(mentions, hashes, strict=True) if _linkable(m)]
    )
    for mention, chash in zip(mentions, hashes, strict=True):
        hits = watchlist.match(mention)
        mention_id = insert_ignore(
            session,
            models.Mention.__table__,
            {
                "source": mention.source[:32],
                "external_id": mention.external_id[:255],
                "source_name": mention.source_name,
                "url": mention.url,
                "author_handle": _short(mention.author.handle),
                "author_name": _short(mention.author.name),
                "author_id": _short(mention.author.id),
                "author_followers": mention.author.followers,
                "title": mention.title,
                "text": mention.text,
                "language": (mention.language or None) and mention.language[:16],
                "created_at": mention.created_at,
                "ingested_at": now,
                "rating": mention.rating,
                "rating_max": mention.rating_max,
                "parent_id": _short(mention.parent_id),
                "thread_id": _short(mention.thread_id),
                "in_reply_to": _short(mention.in_reply_to),
                "mentioned_handles": list(mention.mentioned_handles),
                "repost_of": _short(mention.repost_of),
                "duplicate_of_id": None,
                "content_hash": chash,
                "raw": _jsonable(dict(mention.raw)),
                "classify_state": "pending" if hits else "unmatched",
                "classify_attempts": 0,
                "rules_done": not hits,
            },
            returning=models.Mention.id,
        )
        if mention_id is None:
            stats.duplicates += 1
            continue
        stats.inserted += 1
        new_ids.append(mention_id)
        original = _find_original(session, mention, chash, mention_id)
        if original is not None:
            session.get(models.Mention, mention_id).duplicate_of_id = original  # type: ignore[union-attr]
            stats.linked_copies += 1
        if hits:
            stats.matched += 1
        for hit in hits:
            session.add(
                models.MentionBrand(
                    mention_id=mention_id,
                    brand=hit.brand,
                    created_at=mention.created_at,
                    tagged=hit.tagged,
                    from_brand=hit.from_brand,
                    competitor=hit.competitor,
                    terms=", ".join(hit.terms)[:2000],
                )
            )
    session.flush()
    return stats, new_ids


def store_poll(
    session: Session, source_name: str, result: PollResult, watchlist: Watchlist, now: datetime
) -> tuple[StoreStats, list[int]]:
    """Store a poll's mentions and advance the source's cursor in the same transaction."""
    stats, ids = store_mentions(session, result.mentions, watchlist, now)
    save_cursor(session, source_name, result.cursor)
    return stats, ids


def _linkable(mention: Mention) -> bool:
    """Whether the mention's text is long enough to be linked as a copy by content."""
    return len(mention.text) >= MIN_DUPLICATE_CHARS


def _lock_copy_keys(session: Session, items: list[tuple[str, datetime]]) -> None:
    """On PostgreSQL, hold transaction locks on (content hash, time window) before storing.

    Two polls storing the same text at the same moment (a syndicated story from two feeds, a copy
    wave on two networks) would otherwise each miss the other's uncommitted row and both stay
    unlinked originals, so both could alert. With the lock the second waits for the first to
    commit and, under READ COMMITTED, then sees and links to it.

    Only posts within :data:`DUPLICATE_WINDOW` of each other can link, so the time line is cut in
    windows of that length and a post locks its own window and the next: any two posts less than
    a window apart share a lock, while the same text weeks apart (a yearly greeting, a replayed
    archive) does not make two polls wait for each other. Locks are taken in sorted order (no
    deadlock between two batches) and released at commit; SQLite has one writer anyway.
    """
    if not items or session.get_bind().dialect.name != "postgresql":
        return
    span = DUPLICATE_WINDOW.total_seconds()
    keys: set[int] = set()
    for chash, created in items:
        window = int(created.timestamp() // span)
        for w in (window, window + 1):
            digest = hashlib.blake2b(f"{chash}:{w}".encode(), digest_size=4).digest()
            keys.add(int.from_bytes(digest, "big", signed=True))
    # One round trip; the sorted subquery feeds the lock calls in key order.
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(:cls, k))"
            " FROM (SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY 1) AS ordered"
        ),
        {"cls": _COPY_LOCK_CLASS, "keys": sorted(keys)},
    )


def _find_original(session: Session, mention: Mention, chash: str, mention_id: int) -> int | None:
    """The earlier mention this one copies (retweet target, or same text within a few days)."""
    if mention.repost_of:
        found = session.execute(
            select(models.Mention.id).where(
                models.Mention.source == mention.source,
                models.Mention.external_id == mention.repost_of,
            )
        ).scalar_one_or_none()
        if found is not None:
            return found
    if not _linkable(mention):
        return None
    return session.execute(
        select(models.Mention.id)
        .where(
            models.Mention.content_hash == chash,
            models.Mention.id != mention_id,
            models.Mention.created_at >= mention.created_at - DUPLICATE_WINDOW,
            models.Mention.created_at <= mention.created_at + DUPLICATE_WINDOW,
            models.Mention.duplicate_of_id.is_(None),
        )
        .order_by(models.Mention.id)
        .limit(1)
    ).scalar_one_or_none()


def _short(value: str | None, limit: int = 255) -> str | None:
    return value[:limit] if value else value


def _jsonable(value: object) -> object:
    """Raw payloads as JSON-safe data (datetimes and other objects become strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
