"""Storing polled mentions: dedup by unique key, brand matches, near-duplicate links, cursors.

Everything one poll produced is written in one transaction together with the source's new cursor,
so a crash either keeps the whole poll or none of it (and the poll is simply repeated).

Copies (reposts, the same text posted elsewhere) are linked to the **original** of their story:
its earliest post, whatever order the posts arrive in. Sources list newest first and slow sources
poll late, so a copy is often stored before its original; when the original arrives, the copies
stored so far are moved under it. ``duplicate_of_id`` always names a story's root, never another
copy, and a repost is never the original of the post it reposts. Whether a story already alerted
through a copy stored before its original is the rules stage's question (``monitor.rules_stage``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, text, update
from sqlalchemy.orm import Session

from monitor import models
from monitor.sqlutil import insert_ignore
from monitor.watch import Watchlist
from sources.base import Cursor, Mention, PollResult
from sources.text import scrub_mention

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
    # Lone surrogates (a cut emoji in a JSON payload) cannot be encoded for the database: U+FFFD.
    mentions = [scrub_mention(m) for m in mentions]
    stats = StoreStats(received=len(mentions))
    new_ids: list[int] = []
    hashes = [content_hash(m.text) for m in mentions]
    _lock_copy_keys(
        session,
        [(h, m.created_at) for m, h in zip(mentions, hashes, strict=True) if _linkable(m)],
        [(m.source, ref) for m in mentions for ref in (m.external_id, m.repost_of) if ref],
    )
    # Posts the database holds reposts of (read after the locks, so none can appear meanwhile),
    # plus those this batch stores: only these need the look for reposts stored before them.
    reposted = _reposted(session, mentions)
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
        key = (mention.source[:32], mention.external_id[:255])
        stats.linked_copies += _link_story(
            session, mention, chash, mention_id, may_have_reposts=key in reposted
        )
        if mention.repost_of:
            reposted.add((mention.source[:32], mention.repost_of[:255]))
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


def _lock_copy_keys(
    session: Session, items: list[tuple[str, datetime]], posts: list[tuple[str, str]]
) -> None:
    """On PostgreSQL, hold transaction locks on (content hash, time window) before storing.

    Two polls storing the same text at the same moment (a syndicated story from two feeds, a copy
    wave on two networks) would otherwise each miss the other's uncommitted row and both stay
    unlinked originals, so both could alert. With the lock the second waits for the first to
    commit and, under READ COMMITTED, then sees and links to it.

    Only posts within :data:`DUPLICATE_WINDOW` of each other can link, so the time line is cut in
    windows of that length and a post locks its own window and the next: any two posts less than
    a window apart share a lock, while the same text weeks apart (a yearly greeting, a replayed
    archive) does not make two polls wait for each other. ``posts`` are (source, external id) of
    every post stored and every post reposted: a repost and its original stored at once by two
    polls share that lock too (their texts differ when the repost is truncated). Locks are taken
    in sorted order (no deadlock between two batches) and released at commit; SQLite has one
    writer anyway.
    """
    if not (items or posts) or session.get_bind().dialect.name != "postgresql":
        return
    span = DUPLICATE_WINDOW.total_seconds()
    names: set[str] = set()
    for chash, created in items:
        window = int(created.timestamp() // span)
        names.update(f"{chash}:{w}" for w in (window, window + 1))
    names.update(f"post:{source[:32]}:{external_id[:255]}" for source, external_id in posts)
    keys = {
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)
        for name in names
    }
    # One round trip; the sorted subquery feeds the lock calls in key order.
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(:cls, k))"
            " FROM (SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY 1) AS ordered"
        ),
        {"cls": _COPY_LOCK_CLASS, "keys": sorted(keys)},
    )


def _link_story(
    session: Session, mention: Mention, chash: str, mention_id: int, *, may_have_reposts: bool = True
) -> int:
    """Link a just-stored mention into its story; returns how many stored roots became copies.

    The mention becomes a copy of an earlier original when there is one. Roots stored before it
    that copy *it* (its reposts, and, when it starts the story, the same text posted after it)
    then move under the story's root together with their own copies. ``may_have_reposts`` False
    (the batch knows no stored repost of this post) skips looking for reposts.
    """
    m = models.Mention
    original: int | None = None
    if mention.repost_of:
        target = session.execute(
            select(m.id, m.duplicate_of_id).where(
                m.source == mention.source[:32], m.external_id == mention.repost_of[:255]
            )
        ).first()
        if target is not None:
            original = target.duplicate_of_id or target.id
    later: list[int] = []
    if original is None and _linkable(mention):
        # One look at the roots of the same text within the window either side: the earliest one up
        # to this post's own time is its original (a post is never a copy of a later one, nor of its
        # own repost: a repost can carry an earlier date in replayed data); when there is none, this
        # post starts the story and the later ones are its copies.
        earlier_roots: list[int] = []
        for row in session.execute(
            select(
                m.id,
                (m.created_at <= mention.created_at).label("earlier"),
                and_(m.repost_of == mention.external_id[:255], m.source == mention.source[:32]).label(
                    "reposts_it"
                ),
            )
            .where(
                m.content_hash == chash,
                m.id != mention_id,
                m.duplicate_of_id.is_(None),
                m.created_at >= mention.created_at - DUPLICATE_WINDOW,
                m.created_at <= mention.created_at + DUPLICATE_WINDOW,
            )
            .order_by(m.created_at, m.id)
        ):
            if not row.earlier:
                later.append(row.id)
            elif not row.reposts_it:
                earlier_roots.append(row.id)
        if earlier_roots:
            original, later = earlier_roots[0], []
    if may_have_reposts:
        later = _stored_reposts(session, mention, mention_id) + later
    root = mention_id if original is None else original
    moved = [i for i in dict.fromkeys(later) if i != root]
    if moved:
        session.execute(
            update(models.Mention)
            .where(or_(models.Mention.id.in_(moved), models.Mention.duplicate_of_id.in_(moved)))
            .values(duplicate_of_id=root)
        )
    if original is not None:
        session.execute(
            update(models.Mention).where(models.Mention.id == mention_id).values(duplicate_of_id=original)
        )
    return len(moved) + (original is not None)


def _stored_reposts(session: Session, mention: Mention, mention_id: int) -> list[int]:
    """Roots stored before this mention that repost it."""
    m = models.Mention
    return list(
        session.execute(
            select(m.id).where(
                m.source == mention.source[:32],
                m.repost_of == mention.external_id[:255],
                m.id != mention_id,
                m.duplicate_of_id.is_(None),
            )
        ).scalars()
    )


def _reposted(session: Session, mentions: list[Mention]) -> set[tuple[str, str]]:
    """(source, external id) of the batch's posts that a stored post reposts: one query per 500."""
    m = models.Mention
    ids = sorted({mention.external_id[:255] for mention in mentions})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(ids), 500):
        rows = session.execute(select(m.source, m.repost_of).where(m.repost_of.in_(ids[start : start + 500])))
        found.update((source, ref) for source, ref in rows if ref is not None)
    return found


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
