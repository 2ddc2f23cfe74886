"""The pipeline end to end: replay → match → store → classify → rules → outbox → receiver."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from classifiers.testing import FailingClassifier, StubClassifier
from config.loader import ConfigError
from monitor import models
from tests.pipeline_util import config_text, load, make_runtime, post, write_jsonl

POSTS = [
    post(1, "Acme Rail staff were brilliant today, thanks!", minutes=1),  # untagged praise
    post(
        2, "@acmerail thanks for the great trip", minutes=2, mentions=["acmerail"]
    ),  # tagged praise: no alert
    post(
        3, "@acmerail third delay this week, terrible", minutes=3, mentions=["acmerail"]
    ),  # tagged complaint
    post(4, "Kettle Co sent me a broken kettle and no refund", minutes=4),  # untagged complaint
    post(5, "Nothing to do with any brand, a great day", minutes=5),  # unmatched
    post(6, "Kettle Co opens a new store in town", minutes=6),  # neutral
]


async def test_replay_end_to_end_delivers_each_alert_once(db_url: str, tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    runtime, notifier = make_runtime(load(config_text(db_url, replay)), tmp_path)
    try:
        summary = await runtime.run_once()
        assert summary.stored == 6
        assert summary.scored == 5  # the unmatched post is stored but never scored
        with runtime.db.session() as session:
            alerts = {a.key: a for a in session.execute(select(models.Alert)).scalars()}
            tagged = session.execute(
                select(models.MentionBrand.tagged)
                .join(models.Mention)
                .where(models.Mention.external_id == "p2")
            ).scalar_one()
        assert tagged is True
        assert set(alerts) == {
            "praise:Acme Rail:x:p1",
            "complaint:Acme Rail:x:p3",
            "complaint:Kettle Co:x:p4",
        }
        assert {a.channel for a in alerts.values() if a.brand == "Kettle Co"} == {"#kettle"}
        assert all(a.status == "sent" for a in alerts.values())
        delivered = [k for r in notifier.records() for k in r["alert_keys"]]
        assert sorted(delivered) == sorted(alerts)

        # A second cycle re-reads nothing (cursor) and sends nothing again.
        again = await runtime.run_once()
        assert again.stored == 0 and again.delivered == 0
        with runtime.db.session() as session:
            assert session.execute(select(func.count()).select_from(models.Mention)).scalar_one() == 6
        assert len([k for r in notifier.records() for k in r["alert_keys"]]) == 3
    finally:
        await runtime.aclose()


async def test_reposted_copy_is_linked_not_realerted(sqlite_url: str, tmp_path: Path) -> None:
    text = "Acme Rail staff were brilliant today at the central station, thanks a lot!"
    replay = write_jsonl(
        tmp_path / "posts.jsonl",
        [
            post(1, text, minutes=1),
            post(2, "RT @user1: " + text, minutes=2, repost_of="p1"),
            post(3, text, minutes=3, source="mastodon"),
        ],
    )
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay)), tmp_path)
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            copies = (
                session.execute(
                    select(models.Mention.external_id).where(models.Mention.duplicate_of_id.is_not(None))
                )
                .scalars()
                .all()
            )
            keys = session.execute(select(models.Alert.key)).scalars().all()
        assert sorted(copies) == ["p2", "p3"]
        assert keys == ["praise:Acme Rail:x:p1"]
    finally:
        await runtime.aclose()


async def test_old_posts_are_stored_and_scored_but_not_alerted(tmp_path: Path) -> None:
    """A new source's history or an old post retweeted today is no work for the team any more."""
    days = 24 * 60
    records = [
        post(1, "Acme Rail staff were brilliant today, thanks!", minutes=1),
        post(2, "Acme Rail staff were brilliant last month, thanks!", minutes=-10 * days),
        post(3, "Kettle Co sent me a broken kettle and no refund", minutes=-8 * days),
        post(4, "Kettle Co sent me a broken kettle, where is my refund", minutes=-6 * days),
    ]
    for max_age, expected in (
        ("", {"praise:Acme Rail:x:p1", "complaint:Kettle Co:x:p4"}),  # default: 7 days
        (
            "  max_post_age: null",
            {
                "praise:Acme Rail:x:p1",
                "praise:Acme Rail:x:p2",
                "complaint:Kettle Co:x:p3",
                "complaint:Kettle Co:x:p4",
            },
        ),
    ):
        run = tmp_path / (max_age.strip().replace(":", "") or "default")
        run.mkdir()
        replay = write_jsonl(run / "posts.jsonl", records)
        url = f"sqlite:///{run / 'repmon.db'}"
        runtime, _ = make_runtime(load(config_text(url, replay, alerts=max_age)), run)
        try:
            summary = await runtime.run_once()
            assert summary.stored == 4 and summary.scored == 4
            with runtime.db.session() as session:
                keys = set(session.execute(select(models.Alert.key)).scalars())
            assert keys == expected
            suppressed = runtime.metrics.alerts_suppressed.labels("too_old")._value.get()
            assert suppressed == 4 - len(expected)
        finally:
            await runtime.aclose()


async def test_a_source_that_belongs_to_a_brand_brings_that_brands_mentions(tmp_path: Path) -> None:
    """Reviews of the brand's own app or shop rarely name it: `brand:` on the source says whose they are."""
    records = [
        post(1, "Sent me a broken kettle and no refund, terrible", minutes=1),  # names no brand
        post(2, "Acme Rail staff were brilliant today, thanks!", minutes=2),  # keywords still count
        post(3, "Free crypto giveaway, click now", minutes=3),  # the brand's exclusion still applies
    ]
    replay = write_jsonl(tmp_path / "posts.jsonl", records)
    text = (
        config_text(f"sqlite:///{tmp_path / 'b.db'}", replay)
        .replace("    type: replay\n", "    type: replay\n    brand: Kettle Co\n")
        .replace('    keywords: ["kettle co"]\n', '    keywords: ["kettle co"]\n    exclude: ["crypto"]\n')
    )
    runtime, _ = make_runtime(load(text), tmp_path)
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            hits = session.execute(
                select(models.Mention.external_id, models.MentionBrand.brand, models.MentionBrand.tagged)
                .join(models.MentionBrand)
                .order_by(models.Mention.external_id, models.MentionBrand.brand)
            ).all()
            keys = set(session.execute(select(models.Alert.key)).scalars())
        assert hits == [("p1", "Kettle Co", False), ("p2", "Acme Rail", False), ("p2", "Kettle Co", False)]
        assert "complaint:Kettle Co:x:p1" in keys
    finally:
        await runtime.aclose()

    with pytest.raises(ConfigError, match="unknown brand 'Kettel Co'"):
        load(text.replace("brand: Kettle Co", "brand: Kettel Co"))


async def test_classifier_failure_is_retried_never_neutral(sqlite_url: str, tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    # A failing batch is split down to single mentions (5 mentions: 9 calls): all of them fail.
    failing = FailingClassifier(failures=9, then=StubClassifier())
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay)), tmp_path, classifier=failing)
    try:
        summary = await runtime.run_once()
        assert summary.scored == 0
        with runtime.db.session() as session:
            assert session.execute(select(func.count()).select_from(models.Score)).scalar_one() == 0
            states = session.execute(
                select(
                    models.Mention.classify_state,
                    models.Mention.classify_attempts,
                    models.Mention.classify_error,
                ).where(models.Mention.classify_state != "unmatched")
            ).all()
            assert session.execute(select(func.count()).select_from(models.Alert)).scalar_one() == 0
        assert {s for s, _, _ in states} == {"pending"}
        assert all(a == 1 and e and "exploded" in e for _, a, e in states)
        assert runtime.metrics.classify_errors.labels("ClassifierError")._value.get() == 1

        # After the backoff the same mentions are scored, once.
        runtime.clock.advance(60)  # type: ignore[attr-defined]
        summary = await runtime.process()
        assert summary.scored == 5
        with runtime.db.session() as session:
            assert session.execute(select(func.count()).select_from(models.Score)).scalar_one() == 5
    finally:
        await runtime.aclose()


async def test_broken_source_is_counted_while_others_keep_running(sqlite_url: str, tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    broken = "  - name: broken-feed\n    type: rss\n    url: http://127.0.0.1:9/feed.xml\n"
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay, extra_sources=broken)), tmp_path)
    try:
        summary = await runtime.run_once()
        assert summary.failed_sources == ["broken-feed"]
        assert summary.stored == 6
        with runtime.db.session() as session:
            health = session.get(models.SourceHealth, "broken-feed")
            assert health is not None and health.consecutive_failures == 1 and health.errors_total == 1
            assert "connection" in (health.last_error or "")
        assert runtime.metrics.source_errors.labels("broken-feed", "transient")._value.get() == 1
        # The failing source backs off instead of hammering the server.
        outcome = await runtime.coordinators["broken-feed"].poll_once()
        assert not outcome.ok and outcome.delay >= 15
    finally:
        await runtime.aclose()


async def test_bad_replay_lines_are_skipped_and_counted(sqlite_url: str, tmp_path: Path) -> None:
    replay = tmp_path / "posts.jsonl"
    replay.write_text(
        '{"id": "a1", "text": "Acme Rail is great", "created_at": "2026-03-02T09:00:00Z"}\n'
        "not json at all\n"
        '{"id": "a2", "text": "", "created_at": "2026-03-02T09:00:00Z"}\n'
        '{"id": "a3", "text": "Acme Rail again", "created_at": "2026-03-02T09:01:00Z"}\n',
        encoding="utf-8",
    )
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay)), tmp_path)
    try:
        summary = await runtime.run_once()
        assert summary.stored == 2
        assert summary.polls[0].skipped == 2
        with runtime.db.session() as session:
            assert session.get(models.SourceHealth, "replay").skipped_total == 2  # type: ignore[union-attr]
    finally:
        await runtime.aclose()
