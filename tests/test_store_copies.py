"""Concurrent writers on PostgreSQL (real transactions): copy links, alert-group creation; and the copy window."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from config.settings import BrandSettings
from monitor import models
from monitor.db import Database
from monitor.migrate import upgrade
from monitor.store import store_mentions
from monitor.watch import Watchlist
from sources.base import Mention

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STORY = "Acme Rail cancels all trains between Utrecht and Amsterdam after a signal failure tonight"


def _run_together(*targets: Callable[[], None]) -> None:
    """Run ``targets`` in threads at once and wait for them (each records its own errors)."""
    threads = [threading.Thread(target=target) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_concurrent_copies_on_postgres_are_linked(pg_url: str) -> None:
    db = Database(pg_url)
    upgrade(db)
    watchlist = Watchlist([BrandSettings(name="Acme Rail", keywords=("acme rail",))])
    first_stored = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.session() as session:
                store_mentions(session, [Mention("rss", "feed-a-1", STORY, T0)], watchlist, T0)
                first_stored.set()
                time.sleep(0.5)  # still uncommitted while the second poll stores its copy
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
            first_stored.set()

    def second() -> None:
        try:
            first_stored.wait(10)
            with db.session() as session:
                copy = Mention("mastodon", "toot-9", STORY + " https://t.co/x", T0 + timedelta(seconds=5))
                stats, _ = store_mentions(session, [copy], watchlist, T0)
                assert stats.linked_copies == 1
        except BaseException as exc:
            errors.append(exc)

    _run_together(first, second)
    try:
        assert not errors, errors
        with db.session() as session:
            rows = dict(session.execute(select(models.Mention.external_id, models.Mention.id)).all())
            copy_of = session.execute(
                select(models.Mention.duplicate_of_id).where(models.Mention.external_id == "toot-9")
            ).scalar_one()
        assert copy_of == rows["feed-a-1"]
    finally:
        db.dispose()


def test_copies_link_within_the_window_either_way_round(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    upgrade(db)
    watchlist = Watchlist([BrandSettings(name="Acme Rail", keywords=("acme rail",))])
    try:
        with db.session() as session:
            # Stored out of order (a slower source): the later post first. The earlier post is the
            # original all the same: the later one becomes its copy, never the other way round.
            store_mentions(session, [Mention("rss", "late", STORY, T0 + timedelta(hours=6))], watchlist, T0)
            stats, _ = store_mentions(session, [Mention("x", "early", STORY, T0)], watchlist, T0)
            assert stats.linked_copies == 1
            assert _links(session) == {"late": "early", "early": None}
            # The same text days later, or days earlier, is another post, not a copy.
            for ext, shift in (("next-week", timedelta(days=7)), ("last-week", timedelta(days=-7))):
                stats, _ = store_mentions(session, [Mention("x", ext, STORY, T0 + shift)], watchlist, T0)
                assert stats.linked_copies == 0, ext
    finally:
        db.dispose()


def test_concurrent_alert_group_creation_on_postgres(pg_url: str) -> None:
    # Two daemons claiming alerts of the same new group at once both create its notification-log
    # row: the second must find the first's row, not fail on the primary key.
    from monitor.outbox import alert_group

    db = Database(pg_url)
    upgrade(db)
    created = threading.Event()
    errors: list[BaseException] = []
    key = "#webcare|brand=Acme Rail,kind=complaint"

    def first() -> None:
        try:
            with db.session() as session:
                alert_group(session, key, T0)
                session.flush()
                created.set()
                time.sleep(0.5)  # uncommitted while the other daemon asks for the group
        except BaseException as exc:
            errors.append(exc)
            created.set()

    def second() -> None:
        try:
            created.wait(10)
            with db.session() as session:
                group = alert_group(session, key, T0 + timedelta(minutes=1))
                assert group.first_seen_at == T0  # the first daemon's row
        except BaseException as exc:
            errors.append(exc)

    _run_together(first, second)
    try:
        assert not errors, errors
    finally:
        db.dispose()


async def test_a_group_another_daemon_is_sending_waits_for_its_notification(
    pg_url: str, tmp_path: Path
) -> None:
    # Daemon A has claimed part of a new group and is sending it; daemon B claims the rest in the
    # same group_wait window. B must not send it as a second message now: it waits for A's
    # notification and goes out a group_interval later, neither lost nor duplicated.
    from monitor.outbox import heartbeat
    from tests.pipeline_util import config_text, load, make_runtime, post, write_jsonl

    posts = [post(1, "Acme Rail staff were brilliant, thanks!"), post(2, "Acme Rail: great service!")]
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    text = config_text(pg_url, replay).replace("group_wait: 0s", "group_wait: 60s")
    runtime, _ = make_runtime(load(text), tmp_path, owner="daemon-b")
    try:
        await runtime.run_once()  # both praise alerts stored, held back by group_wait
        later = runtime.clock.now() + timedelta(minutes=2)
        with runtime.db.session() as session:
            alerts = list(session.execute(select(models.Alert).order_by(models.Alert.id)).scalars())
            assert [a.status for a in alerts] == ["pending", "pending"]
            assert len({a.group_key for a in alerts}) == 1
            first, second = alerts
            first.status, first.sending_by, first.sending_at = "sending", "daemon-a", later
            second_id = second.id
        heartbeat(runtime.db, "daemon-a", "all", later)

        assert runtime.delivery._claim(later) == []  # A is mid-send: B holds back
        with runtime.db.session() as session:
            waiting = session.get(models.Alert, second_id)
            assert waiting is not None and waiting.status == "pending"
            assert waiting.next_attempt_at > later
            # A's notification went out
            session.execute(
                models.Alert.__table__.update()
                .where(models.Alert.status == "sending")
                .values(status="sent", sent_at=later)
            )
            group = session.get(models.AlertGroup, waiting.group_key)
            assert group is not None
            group.last_notified_at = later
        batches = runtime.delivery._claim(later + timedelta(seconds=10))
        assert [[a.id for a in batch] for batch in batches] == [[second_id]]
    finally:
        await runtime.aclose()


def _links(session: Session) -> dict[str, str | None]:
    """external id → external id of the mention it is a copy of (None for originals)."""
    copy, original = models.Mention, aliased(models.Mention)
    rows = session.execute(
        select(copy.external_id, original.external_id).outerjoin(
            original, copy.duplicate_of_id == original.id
        )
    )
    return {copy_id: original_id for copy_id, original_id in rows}


def _store(session: Session, *mentions: Mention) -> None:
    watchlist = Watchlist([BrandSettings(name="Acme Rail", keywords=("acme rail",))])
    store_mentions(session, list(mentions), watchlist, T0)


def test_a_retweet_stored_before_its_original_becomes_its_copy(db_url: str) -> None:
    # X lists newest first: a retweet is stored before the post it retweets, in one poll or across
    # two. A retweet is never the original of the post it retweets.
    original = Mention("x", "1", STORY, T0)
    retweet = Mention("x", "9", "RT @big: " + STORY, T0 + timedelta(minutes=9), repost_of="1")
    cut = Mention(
        "x", "8", "RT @big: Acme Rail cancels all trains…", T0 + timedelta(minutes=8), repost_of="1"
    )
    db = Database(db_url)
    upgrade(db)
    try:
        with db.session() as session:
            _store(session, retweet, cut, original)
            assert _links(session) == {"9": "1", "8": "1", "1": None}
        with db.session() as session:
            session.execute(delete(models.Mention))
            _store(session, retweet)
            _store(session, cut)
        with db.session() as session:
            _store(session, original)
            assert _links(session) == {"9": "1", "8": "1", "1": None}
    finally:
        db.dispose()


def test_copies_always_point_at_the_earliest_post_of_the_story(db_url: str) -> None:
    # Copies stored before their original move under it with their own copies (no chains), and
    # a repost of a copy is a copy of the story's original.
    db = Database(db_url)
    upgrade(db)
    try:
        with db.session() as session:
            _store(session, Mention("mastodon", "m-3", STORY, T0 + timedelta(hours=3)))
            _store(session, Mention("rss", "r-4", STORY + " https://t.co/x", T0 + timedelta(hours=4)))
            assert _links(session) == {"m-3": None, "r-4": "m-3"}
            _store(session, Mention("x", "x-1", STORY, T0 + timedelta(hours=1)))
            assert _links(session) == {"m-3": "x-1", "r-4": "x-1", "x-1": None}
            _store(session, Mention("mastodon", "boost", STORY, T0 + timedelta(hours=5), repost_of="m-3"))
            assert _links(session)["boost"] == "x-1"
            # The same text at the same moment: the first stored stays the original.
            _store(session, Mention("rss", "same-time", STORY, T0 + timedelta(hours=1)))
            assert _links(session)["same-time"] == "x-1"
    finally:
        db.dispose()


def test_concurrent_retweet_and_original_on_postgres_are_linked(pg_url: str) -> None:
    # Two polls (two X sources) store a cut retweet and its original at once: their texts differ,
    # so only the lock on the original's id makes the second wait for, see and link the first.
    db = Database(pg_url)
    upgrade(db)
    first_stored = threading.Event()
    errors: list[BaseException] = []
    cut = Mention("x", "9", "RT @big: Acme Rail cancels all trains between…", T0, repost_of="1")

    def first() -> None:
        try:
            with db.session() as session:
                _store(session, cut)
                first_stored.set()
                time.sleep(0.5)  # still uncommitted while the other poll stores the original
        except BaseException as exc:
            errors.append(exc)
            first_stored.set()

    def second() -> None:
        try:
            first_stored.wait(10)
            with db.session() as session:
                _store(session, Mention("x", "1", STORY, T0 - timedelta(minutes=3)))
        except BaseException as exc:
            errors.append(exc)

    _run_together(first, second)
    try:
        assert not errors, errors
        with db.session() as session:
            assert _links(session) == {"9": "1", "1": None}
    finally:
        db.dispose()
