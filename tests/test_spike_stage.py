"""Spike stage end to end: a crisis is raised, updated in one thread and resolved; restarts don't repeat it."""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from pathlib import Path

from sqlalchemy import select

from alerts.digest import Period, build_digest
from alerts.render import render_blocks, render_text, render_update_text
from alerts.spikes import SpikeEvent
from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import T0, config_text, load, post, write_jsonl


def _series() -> list[dict]:
    rng = random.Random(3)
    posts = []
    n = 0
    minute = 0.0
    # Three quiet days: a negative post every ~20 minutes and some neutral chatter.
    while minute < 3 * 24 * 60:
        n += 1
        text = "Acme Rail delay again" if rng.random() < 0.5 else "Acme Rail timetable news"
        posts.append(post(n, f"{text} {n}", minutes=minute))
        minute += rng.uniform(10, 30)
    # The crisis: 60 negative posts within 25 minutes.
    for i in range(60):
        n += 1
        posts.append(
            post(n, f"Acme Rail storing, everything stopped, terrible {n}", minutes=minute + i * 25 / 60)
        )
    minute += 30
    # Calm again for a day.
    while minute < 4 * 24 * 60 + 600:
        n += 1
        posts.append(post(n, f"Acme Rail timetable news {n}", minutes=minute))
        minute += rng.uniform(10, 30)
    return posts


def _runtime(tmp_path: Path, replay: Path) -> tuple[Runtime, CapturingNotifier]:
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(config_text(f"sqlite:///{tmp_path / 's.db'}", replay, batch=200)),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=FakeClock(T0 + timedelta(days=10)),
        env={},
    )
    upgrade(runtime.db)
    return runtime, notifier


async def test_crisis_raised_updated_in_thread_and_resolved(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", _series())
    runtime, notifier = _runtime(tmp_path, replay)
    try:
        # Replay in batches, as the daemon would, with a restart halfway through the crisis.
        for _ in range(3):
            outcome = await runtime.coordinators["replay"].poll_once()
            await runtime.process()
            assert outcome.ok
        await runtime.aclose()
        runtime, notifier2 = _runtime(tmp_path, replay)
        while True:
            outcome = await runtime.coordinators["replay"].poll_once()
            await runtime.process()
            if not outcome.more:
                break
        sent = [i for n in notifier.sent + notifier2.sent for i in n.items if i.kind == "spike"]
        events = [(i.incident.metric if i.incident else None, i.event) for i in sent]
        negative = [e for m, e in events if m == "negative"]
        assert negative[0] == "raise" and negative[-1] == "resolve", events
        assert negative.count("raise") == 1 and negative.count("resolve") == 1
        # The total-volume incident the same crisis raises is recorded, but sends nothing: the
        # team gets one thread (the negative one), not two.
        assert [e for m, e in events if m == "total"] == [], events
        with runtime.db.session() as session:
            total = session.execute(
                select(models.SpikeIncident).where(models.SpikeIncident.metric == "total")
            )
            assert [i.status for i in total.scalars()] == ["resolved"]
        with runtime.db.session() as session:
            incidents = (
                session.execute(select(models.SpikeIncident).where(models.SpikeIncident.metric == "negative"))
                .scalars()
                .all()
            )
        assert len(incidents) == 1 and incidents[0].status == "resolved"
        assert incidents[0].peak_count >= 10
        # Every update after the raise goes into the raise's thread.
        spike_notes = [
            n
            for n in notifier.sent + notifier2.sent
            if n.items[0].kind == "spike" and n.items[0].incident.metric == "negative"
        ]  # type: ignore[union-attr]
        assert spike_notes[0].thread_ts is None
        assert all(n.thread_ts == "1.000" or n.thread_ts for n in spike_notes[1:])
        raise_item = spike_notes[0].items[0]
        assert raise_item.incident is not None and raise_item.incident.samples
        assert any("storing" in t or "stopped" in t for t in raise_item.incident.top_terms)
    finally:
        await runtime.aclose()


async def test_quiet_brand_never_spikes(tmp_path: Path) -> None:
    posts = [post(i, f"Acme Rail delay {i}", minutes=i * 97) for i in range(1, 120)]
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    runtime, notifier = _runtime(tmp_path, replay)
    try:
        await runtime.run_once()
        assert not [i for n in notifier.sent for i in n.items if i.kind == "spike"]
    finally:
        await runtime.aclose()


async def test_volume_spike_without_a_crisis_is_alerted(tmp_path: Path) -> None:
    # A burst of neutral posts (a campaign going viral) is a total-volume incident of its own.
    posts = [p for p in _series() if "storing" not in p["text"]]
    burst_at = 3 * 24 * 60 + 5.0
    posts += [
        post(10_000 + i, f"Acme Rail timetable news shared {i}", minutes=burst_at + i * 0.4)
        for i in range(60)
    ]
    posts.sort(key=lambda p: p["created_at"])
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    runtime, notifier = _runtime(tmp_path, replay)
    try:
        while True:
            outcome = await runtime.coordinators["replay"].poll_once()
            await runtime.process()
            if not outcome.more:
                break
        events = [(i.incident.metric, i.event) for n in notifier.sent for i in n.items if i.incident]
        assert ("total", "raise") in events and ("total", "resolve") in events, events
        assert not [e for m, e in events if m == "negative"], events
    finally:
        await runtime.aclose()


async def test_peak_time_comes_from_the_detector_not_the_raise(tmp_path: Path) -> None:
    runtime, _ = _runtime(tmp_path, write_jsonl(tmp_path / "posts.jsonl", []))
    t0 = T0 + timedelta(days=4)
    peak_at = t0 + timedelta(minutes=60)
    try:
        with runtime.db.session() as session:
            spikes = runtime.spikes
            spikes._handle(
                session, "Acme Rail", "negative", SpikeEvent("raise", t0, 11, 1.0, 1, t0, 11, t0), t0
            )
            end = t0 + timedelta(minutes=90)
            resolve = SpikeEvent("resolve", end, 2, 1.0, 1, t0, 20, peak_at)
            spikes._handle(session, "Acme Rail", "negative", resolve, end)
            incident = session.execute(select(models.SpikeIncident)).scalar_one()
            assert incident.status == "resolved" and incident.peak_count == 20
            assert incident.peak_at.replace(tzinfo=None) == peak_at.replace(tzinfo=None)
    finally:
        await runtime.aclose()


def _field(blocks: list[dict], label: str) -> str:
    """The value of a section field such as ``*Peak*`` in rendered blocks."""
    for block in blocks:
        for field in block.get("fields", []):
            head, _, value = field["text"].partition("\n")
            if head == f"*{label}*":
                return str(value)
    raise AssertionError(f"no {label} field in {blocks}")


async def test_late_raise_shows_its_own_numbers_not_the_grown_incident(tmp_path: Path) -> None:
    # `repmon once` (or an outage) renders the raise only after the incident escalated: the raise
    # card must still say what was raised, its fields agreeing with its "why"; the escalation that
    # follows carries the growth (and updates the root to it).
    runtime, notifier = _runtime(tmp_path, write_jsonl(tmp_path / "posts.jsonl", []))
    t0 = T0 + timedelta(days=4)
    try:
        with runtime.db.session() as session:
            spikes = runtime.spikes
            raised = SpikeEvent("raise", t0, 11, 1.0, 1, t0, 11, t0)
            spikes._handle(session, "Acme Rail", "negative", raised, t0)
            later = t0 + timedelta(minutes=30)
            grown = SpikeEvent("escalate", later, 20, 1.0, 2, t0, 20, later)
            spikes._handle(session, "Acme Rail", "negative", grown, later)
        await runtime.delivery.drain()
        notes = [n for n in notifier.sent if n.items[0].kind == "spike"]
        assert [n.items[0].event for n in notes] == ["raise", "escalate"]
        raise_note, escalate_note = notes
        card = render_blocks(raise_note)
        assert _field(card, "Peak") == "11" and _field(card, "Level") == "1"
        assert "peak 11" in raise_note.items[0].reason and "*11* in the last window" in str(card)
        assert "11 negative mentions" in render_text(raise_note)
        root = render_blocks(escalate_note)  # chat.update of the root, then the thread reply
        assert _field(root, "Peak") == "20" and _field(root, "Level") == "2"
        assert "peak 20" in render_update_text(escalate_note)
    finally:
        await runtime.aclose()


async def test_backfilled_crisis_counts_in_the_digest_week_it_was_raised_like_mention_alerts(
    tmp_path: Path,
) -> None:
    # A backfill (four days of posts, imported six days later) with buckets closing by the wall
    # clock, alerted at any age: the crisis in it is raised now, as are the complaint alerts of its
    # posts. Both are stamped with the time repmon raised them, so the digest's team handling
    # counts them in the same week: the one the team got them in.
    posts = _series()
    posts += [
        post(90_000 + i, f"@acmerail terrible service, refund please {i}", minutes=3 * 24 * 60 + 40 + i)
        for i in range(3)
    ]
    replay = write_jsonl(tmp_path / "posts.jsonl", sorted(posts, key=lambda p: p["created_at"]))
    clock = FakeClock(T0 + timedelta(days=10))
    config = load(
        config_text(
            f"sqlite:///{tmp_path / 's.db'}", replay, batch=5000, alerts="  max_post_age: null"
        ).replace("clock: data", "clock: wall\n  max_age: null")
    )
    runtime = Runtime(config, notifier=CapturingNotifier(), classifier=StubClassifier(), clock=clock, env={})
    upgrade(runtime.db)
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            alerts = session.execute(
                select(models.Alert.kind, models.Alert.event, models.Alert.created_at)
            ).all()
        kinds = {(kind, event) for kind, event, _ in alerts}
        assert ("spike", "raise") in kinds and ("complaint", "mention") in kinds, kinds
        assert {created.replace(tzinfo=UTC) for _, _, created in alerts} == {clock.now()}
        raised_in = Period.last_full_week(clock.now() + timedelta(days=7), "Europe/Amsterdam")
        posted_in = Period.last_full_week(T0 + timedelta(days=7), "Europe/Amsterdam")
        assert raised_in.start <= clock.now() < raised_in.end and posted_in.end <= raised_in.start
        week = build_digest(runtime.db, runtime.settings, "Acme Rail", raised_in.start, raised_in.end)
        assert week.handling.by_kind.get("spike") == 1 and week.handling.by_kind.get("complaint")
        before = build_digest(runtime.db, runtime.settings, "Acme Rail", posted_in.start, posted_in.end)
        assert before.handling.raised == 0 and before.volume > 0
    finally:
        await runtime.aclose()


async def test_a_backfill_on_the_wall_clock_pages_about_no_crisis_that_is_over(tmp_path: Path) -> None:
    """Days-old posts imported now: no raise, no instant "still open" repeat, no resolve."""
    replay = write_jsonl(tmp_path / "posts.jsonl", _series())
    clock = FakeClock(T0 + timedelta(days=10))
    config = load(
        config_text(f"sqlite:///{tmp_path / 's.db'}", replay, batch=5000).replace(
            "clock: data", "clock: wall"
        )
    )
    notifier = CapturingNotifier()
    runtime = Runtime(config, notifier=notifier, classifier=StubClassifier(), clock=clock, env={})
    upgrade(runtime.db)
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            incidents = session.execute(select(models.SpikeIncident.metric)).scalars().all()
            spikes = session.execute(select(models.Alert).where(models.Alert.kind == "spike")).scalars().all()
        assert "negative" in incidents  # the crisis is found and kept (digests show it) ...
        assert spikes == []  # ... but nobody is paged about it
        assert runtime.metrics.alerts_suppressed.labels("too_old")._value.get() >= 2
    finally:
        await runtime.aclose()


async def test_an_open_incident_repeats_after_repeat_interval_of_bucket_time(tmp_path: Path) -> None:
    """The repeat compares bucket times: a crisis found while catching up is not repeated at once.

    The posts are days old and still being scored: buckets close only up to the oldest unscored
    post, so the incident is open at the end of the run, hours of bucket time after its raise at
    most, though days before the clock.
    """
    series = _series()
    scored = max(i for i, p in enumerate(series) if "storing" in p["text"]) - 20  # mid-crisis
    replay = write_jsonl(tmp_path / "posts.jsonl", series)
    clock = FakeClock(T0 + timedelta(days=10))
    text = config_text(
        f"sqlite:///{tmp_path / 's.db'}", replay, batch=5000, extra="classifier:\n  batch_size: 1"
    )
    config = load(text.replace("clock: data", "clock: wall\n  max_age: null"))
    runtime = Runtime(config, notifier=CapturingNotifier(), classifier=StubClassifier(), clock=clock, env={})
    upgrade(runtime.db)
    try:
        await runtime.coordinators["replay"].poll_once()
        stage = await runtime.classify_stage()
        for _ in range(scored):  # up to the middle of the crisis; the rest waits
            await stage.run_batch()
        runtime.rules.drain()
        runtime.spikes.run()
        with runtime.db.session() as session:
            events = (
                session.execute(select(models.Alert.event).where(models.Alert.kind == "spike"))
                .scalars()
                .all()
            )
            open_ = session.execute(select(models.SpikeIncident.status)).scalars().all()
        assert "raise" in events and "open" in open_, (events, open_)
        assert "repeat" not in events, events
    finally:
        await runtime.aclose()
