"""Resume state for listings that page from newest to oldest.

Most review and search APIs list newest first and page *backwards* (page numbers, continuation
tokens, ``next_token``). To resume without gaps or duplicates a source walks down to what it
delivered last time, the **watermark**. When one poll cannot reach it (page limit, rate limit) the
walk is *resumable*: the cursor keeps the old watermark, where to continue, and the newest item
already delivered (``pending``); the watermark only moves once the walk reached it. Every cursor
written therefore covers exactly the mentions returned with it.

Two flavours: :func:`walk_newest_first` compares timestamps (plus the ids seen at exactly the
newest timestamp); :func:`walk_since_id` compares ids that grow over time (X), where the API
filters with ``since_id``/``min_id`` itself. Items that show up late, below the watermark
(moderation, federation), are caught with ``lateness``: the walk then reads that far below the
mark and delivers those items again; the store's unique key drops the ones it already has.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sources.base import Cursor
from sources.text import parse_timestamp

__all__ = [
    "Page",
    "Walk",
    "Watermark",
    "apply_walk",
    "id_order",
    "stream_prefix",
    "walk_newest_first",
    "walk_since_id",
]

T = TypeVar("T")
#: At most this many ids are kept for the newest timestamp (items sharing one timestamp are rare).
MAX_IDS = 50


def stream_prefix(kind: str, name: str) -> str:
    """A short, stable cursor-key prefix for one stream of a source (keys are at most 64 chars)."""
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
    return f"{kind}.{digest}."


def id_order(value: str) -> tuple[int, str]:
    """Sort key for ids that grow over time: numeric strings by value, equal-length strings as text."""
    return (len(value), value)


@dataclass(frozen=True, slots=True)
class Watermark:
    """The newest point delivered: a timestamp and the ids seen at exactly that timestamp."""

    at: datetime | None = None
    ids: frozenset[str] = frozenset()

    def covers(self, item_id: str, at: datetime) -> bool:
        """Whether an item was delivered before (older than the mark, or one of its ids)."""
        if self.at is None:
            return False
        return at < self.at or (at == self.at and item_id in self.ids)

    def advanced(self, items: Iterable[tuple[str, datetime]]) -> Watermark:
        """The mark after also delivering ``items`` (id, timestamp)."""
        at, ids = self.at, set(self.ids)
        for item_id, when in items:
            if at is None or when > at:
                at, ids = when, {item_id}
            elif when == at:
                ids.add(item_id)
        return Watermark(at, frozenset(sorted(ids)[:MAX_IDS]))

    def merged(self, other: Watermark) -> Watermark:
        """The newer of two marks (ids joined when they share a timestamp)."""
        return self.advanced((i, other.at) for i in other.ids) if other.at is not None else self

    def to_cursor(self, prefix: str) -> Cursor:
        """Cursor entries for this mark (empty when nothing was delivered yet)."""
        if self.at is None:
            return {}
        return {prefix + "at": self.at.isoformat(), prefix + "ids": json.dumps(sorted(self.ids))}

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, str], prefix: str) -> Watermark:
        """Read a mark written by :meth:`to_cursor`; unreadable entries count as no mark."""
        at = parse_timestamp(cursor.get(prefix + "at"))
        if at is None:
            return cls()
        try:
            ids = json.loads(cursor.get(prefix + "ids") or "[]")
        except ValueError:
            ids = []
        return cls(at, frozenset(str(i) for i in ids if isinstance(i, str | int)))


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a newest-first listing and the token of the next (older) page."""

    items: list[T]
    next: str | None = None


@dataclass(slots=True)
class Walk(Generic[T]):
    """What a walk delivered, the cursor entries that cover it, and whether more is waiting."""

    items: list[T]
    cursor: Cursor
    more: bool = False
    pages: int = 0
    stale: list[str] = field(default_factory=list)


async def walk_newest_first(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    key: Callable[[T], tuple[str, datetime]],
    cursor: Mapping[str, str],
    *,
    prefix: str,
    max_pages: int,
    first_pages: int = 1,
    lateness: timedelta = timedelta(0),
    stop: Callable[[], bool] = lambda: False,
) -> Walk[T]:
    """Walk a newest-first listing down to the stored watermark, resumably.

    ``fetch(token)`` returns a page (``None`` = the first page); ``key(item)`` gives the item's id
    and the timestamp the listing is ordered by. The first poll of a stream reads ``first_pages``
    pages and starts from there rather than walking the whole history. ``lateness`` > 0 walks that
    far below the mark and delivers what it finds there again (late arrivals included; the store
    drops repeats). ``stop()`` is asked after each page (e.g. the rate budget is spent); the walk
    then resumes on the next poll.
    """
    committed = Watermark.from_cursor(cursor, prefix)
    floor = committed if committed.at is None or not lateness else Watermark(committed.at - lateness)
    pending = Watermark.from_cursor(cursor, prefix + "p.")
    token: str | None = cursor.get(prefix + "resume") or None
    first = committed.at is None
    limit = first_pages if first else max_pages
    delivered: list[T] = []
    seen: set[str] = set()
    pages = 0
    done = True
    while True:
        page = await fetch(token)
        pages += 1
        reached = False
        for item in page.items:
            item_id, at = key(item)
            if floor.covers(item_id, at):
                reached = True
                continue
            if item_id in seen:
                # Offset paging shifts when new items arrive: an item can show up on two pages.
                continue
            seen.add(item_id)
            delivered.append(item)
        token = page.next
        if reached or not token or not page.items:
            break
        if pages >= limit or stop():
            done = first
            break
    newest = pending.advanced(key(item) for item in delivered)
    updates: Cursor = {}
    stale = [prefix + "p.at", prefix + "p.ids", prefix + "resume"]
    if done:
        updates.update(committed.merged(newest).to_cursor(prefix))
    else:
        updates.update(committed.to_cursor(prefix))
        updates.update(newest.to_cursor(prefix + "p."))
        updates[prefix + "resume"] = token or ""
        stale = []
    return Walk(delivered, updates, more=not done, pages=pages, stale=stale)


async def walk_since_id(
    fetch: Callable[[str | None, str | None], Awaitable[Page[T]]],
    item_id: Callable[[T], str],
    cursor: Mapping[str, str],
    *,
    prefix: str,
    max_pages: int,
    first_pages: int = 1,
    stop: Callable[[], bool] = lambda: False,
) -> Walk[T]:
    """Walk an id-ordered listing from newest down to ``since_id`` (exclusive), resumably.

    ``fetch(since_id, token)`` returns one page of items newer than ``since_id`` (the API filters),
    newest first, with the token of the next older page; ``None`` when there is none, which is the
    only end of the walk besides the page limit (an empty page with a token is walked past).
    ``stop()`` is asked after each page (e.g. the rate-limit budget is spent); the walk then
    resumes on the next poll.
    """
    since = cursor.get(prefix + "since_id") or None
    pending = cursor.get(prefix + "p.newest") or None
    token: str | None = cursor.get(prefix + "next") or None
    first = since is None
    limit = first_pages if first else max_pages
    delivered: list[T] = []
    seen: set[str] = set()
    pages = 0
    done = True
    while True:
        page = await fetch(since, token)
        pages += 1
        for item in page.items:
            ident = item_id(item)
            if ident in seen or (since is not None and id_order(ident) <= id_order(since)):
                continue
            seen.add(ident)
            delivered.append(item)
        token = page.next
        # Only a missing token ends the listing: a page can be empty, or hold only posts the
        # source could not use, and still lead to older ones (X documents such pages). Ending
        # there would move since_id past pages never read. The page limit bounds the walk.
        if not token:
            break
        if pages >= limit or stop():
            done = first
            break
    newest = max(
        [*(item_id(i) for i in delivered), *([pending] if pending else [])], key=id_order, default=None
    )
    updates: Cursor = {}
    stale = [prefix + "p.newest", prefix + "next"]
    if done:
        best = max([x for x in (since, newest) if x], key=id_order, default=None)
        if best:
            updates[prefix + "since_id"] = best
    else:
        if since:
            updates[prefix + "since_id"] = since
        if newest:
            updates[prefix + "p.newest"] = newest
        updates[prefix + "next"] = token or ""
        stale = []
    return Walk(delivered, updates, more=not done, pages=pages, stale=stale)


def apply_walk(cursor: Cursor, walk: Walk[T]) -> None:
    """Write a walk's cursor entries into ``cursor`` and drop the entries it made obsolete."""
    for key in walk.stale:
        cursor.pop(key, None)
    cursor.update(walk.cursor)
