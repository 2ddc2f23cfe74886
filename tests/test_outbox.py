"""Outbox routing and delivery: grouping, silences, inhibition, quiet hours, retries, reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from alerts.model import DeliveryReceipt, Notification
from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from config.settings import QuietHours
from monitor import models
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.outbox import heartbeat, process_gone, quiet_until, retry_failed
from monitor.runtime import Runtime
from tests.pipeline_util import T0, config_text, load, post, write_jsonl


def _runtime(
    tmp_path: Path, posts: list[dict], alerts: str = "", clock: FakeClock | None = None
) -> tuple[Runtime, CapturingNotifier]:
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    text = config_text(f"sqlite:///{tmp_path / 'o.db'}", replay).replace(
        "alerts:\n  group_wait: 0s\n  group_interval: 0s\n",
        "alerts:\n" + (alerts or "  group_wait: 0s\n  group_interval: 0s\n"),
    )
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(text),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=clock or FakeClock(T0 + timedelta(hours=1)),
        env={},
    )
    upgrade(runtime.db)
    return runtime, notifier


PRAISES = [post(i, f"Acme Rail is brilliant, thanks for trip {i}", minutes=i) for i in range(1, 5)]


async def test_group_interval_batches_alerts_of_a_group(tmp_path: Path) -> None:
    runtime, notifier = _runtime(tmp_path, PRAISES[:1], "  group_wait: 0s\n  group_interval: 10m\n")
    try:
        await runtime.run_once()
        assert len(notifier.sent) == 1
        # Three more praise posts arrive within the group interval: they wait and go out together.
        write_jsonl(tmp_path / "posts.jsonl", PRAISES)
        await runtime.run_once()
        assert len(notifier.sent) == 1
        runtime.clock.advance(601)  # type: ignore[attr-defined]
        await runtime.process()
        assert len(notifier.sent) == 2
        assert len(notifier.sent[1].items) == 3
        assert {i.kind for i in notifier.sent[1].items} == {"praise"}
    finally:
        await runtime.aclose()


async def test_silence_suppresses_and_says_why(tmp_path: Path) -> None:
    runtime, notifier = _runtime(tmp_path, PRAISES[:2])
    try:
        now = runtime.clock.now()
        with runtime.db.session() as session:
            session.add(
                models.Silence(
                    matchers={"brand": "Acme Rail", "kind": "praise"},
                    comment="campaign",
                    created_by="op",
                    starts_at=now - timedelta(minutes=1),
                    ends_at=now + timedelta(hours=1),
                )
            )
        await runtime.run_once()
        assert notifier.sent == []
        with runtime.db.session() as session:
            rows = session.execute(select(models.Alert)).scalars().all()
        assert rows and all(
            r.status == "suppressed" and "silenced by silence #1" in (r.status_reason or "") for r in rows
        )
    finally:
        await runtime.aclose()


async def test_open_crisis_inhibits_complaints_of_that_brand(tmp_path: Path) -> None:
    complaint = post(1, "@acmerail terrible delay again", minutes=1, mentions=["acmerail"])
    runtime, notifier = _runtime(tmp_path, [complaint])
    try:
        with runtime.db.session() as session:
            session.add(
                models.SpikeIncident(
                    brand="Acme Rail",
                    metric="negative",
                    status="open",
                    started_at=T0,
                    updated_at=T0,
                    peak_at=T0,
                    peak_count=30,
                    last_count=30,
                    expected=2,
                    level=1,
                )
            )
        await runtime.run_once()
        assert notifier.sent == []
        with runtime.db.session() as session:
            row = session.execute(select(models.Alert)).scalar_one()
        assert row.status == "suppressed" and row.status_reason.startswith("inhibited")  # type: ignore[union-attr]
    finally:
        await runtime.aclose()


def test_quiet_hours_window_across_midnight() -> None:
    quiet = QuietHours(start=time(23, 0), end=time(7, 0), timezone="Europe/Amsterdam")
    # 23:30 Amsterdam (winter, UTC+1) is 22:30 UTC: quiet until 07:00 local = 06:00 UTC next day.
    until = quiet_until(quiet, datetime(2026, 1, 12, 22, 30, tzinfo=UTC))
    assert until == datetime(2026, 1, 13, 6, 0, tzinfo=UTC)
    # 02:00 local belongs to the window that started the previous evening.
    assert quiet_until(quiet, datetime(2026, 1, 13, 1, 0, tzinfo=UTC)) == datetime(
        2026, 1, 13, 6, 0, tzinfo=UTC
    )
    assert quiet_until(quiet, datetime(2026, 1, 13, 12, 0, tzinfo=UTC)) is None


async def test_quiet_hours_defer_delivery_until_the_window_ends(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 23, 30, tzinfo=UTC))  # 00:30 in Amsterdam
    alerts = '  group_wait: 0s\n  group_interval: 0s\n  quiet_hours:\n    "#webcare": {start: "23:00", end: "07:00"}\n'
    runtime, notifier = _runtime(tmp_path, PRAISES[:1], alerts, clock=clock)
    try:
        await runtime.run_once()
        assert notifier.sent == []
        clock.set(datetime(2026, 3, 3, 6, 1, tzinfo=UTC))  # 07:01 local
        await runtime.process()
        assert len(notifier.sent) == 1
    finally:
        await runtime.aclose()


async def test_receiver_outage_retries_with_backoff_and_loses_nothing(tmp_path: Path) -> None:
    runtime, notifier = _runtime(tmp_path, PRAISES)
    try:
        notifier.fail_next(3, retryable=True, retry_after=30)
        await runtime.run_once()
        assert notifier.sent == []
        with runtime.db.session() as session:
            rows = session.execute(select(models.Alert)).scalars().all()
        assert rows and all(r.status == "pending" and r.attempts >= 1 and r.last_error for r in rows)
        for _ in range(2):  # two more failures, each waiting the receiver's Retry-After
            runtime.clock.advance(31)  # type: ignore[attr-defined]
            await runtime.process()
            assert notifier.sent == []
        runtime.clock.advance(31)  # type: ignore[attr-defined]
        await runtime.process()
        assert sorted(notifier.keys) == sorted(r.key for r in rows)
        assert len(notifier.keys) == len(set(notifier.keys))
    finally:
        await runtime.aclose()


async def test_non_retryable_failure_parks_the_alert(tmp_path: Path) -> None:
    runtime, notifier = _runtime(tmp_path, PRAISES[:1])
    try:
        notifier.fail_next(1, retryable=False)
        await runtime.run_once()
        with runtime.db.session() as session:
            row = session.execute(select(models.Alert)).scalar_one()
        assert row.status == "failed" and "receiver down" in (row.last_error or "")
    finally:
        await runtime.aclose()


async def test_crash_mid_send_is_reconciled_not_resent(tmp_path: Path) -> None:
    posts = [PRAISES[0], post(9, "Kettle Co sent a broken kettle, terrible", minutes=9)]
    runtime, notifier = _runtime(tmp_path, posts)
    try:
        await runtime.poll_all()
        await runtime.classify.drain()
        runtime.rules.drain()
        with runtime.db.session() as session:
            rows = session.execute(select(models.Alert).order_by(models.Alert.id)).scalars().all()
        first, second = rows
        # Simulate: two messages marked 'sending' by a process that died; only the first arrived.
        batch = runtime.delivery._claim(runtime.clock.now())
        assert [[r.key for r in b] for b in batch] == [[first.key], [second.key]]
        notifier.sent.append(runtime.delivery._notification(batch[0]))
        await runtime.process()
        assert notifier.keys.count(first.key) == 1
        assert notifier.keys.count(second.key) == 1
        with runtime.db.session() as session:
            statuses = {r.key: r.status for r in session.execute(select(models.Alert)).scalars()}
        assert statuses == {first.key: "sent", second.key: "sent"}
    finally:
        await runtime.aclose()


MANY = [post(i, f"Acme Rail is brilliant, thanks for trip {i}", minutes=i / 10) for i in range(1, 26)]


async def test_busy_group_goes_out_in_full_as_several_messages(tmp_path: Path) -> None:
    # 25 praise alerts of one group are ready at once: none may wait for the next group_interval.
    runtime, notifier = _runtime(tmp_path, MANY, "  group_wait: 0s\n  group_interval: 10m\n")
    try:
        await runtime.run_once()
        assert [len(n.items) for n in notifier.sent] == [10, 10, 5]
        assert len(set(notifier.keys)) == 25
        # In order of arrival, across the messages.
        with runtime.db.session() as session:
            order = [a.key for a in session.execute(select(models.Alert).order_by(models.Alert.id)).scalars()]
        assert notifier.keys == order
    finally:
        await runtime.aclose()


async def test_crash_between_messages_of_a_big_group_resends_only_the_rest(tmp_path: Path) -> None:
    runtime, notifier = _runtime(tmp_path, MANY)
    try:
        await runtime.poll_all()
        await runtime.classify.drain()
        runtime.rules.drain()
        batches = runtime.delivery._claim(runtime.clock.now())
        assert [len(b) for b in batches] == [10, 10, 5]
        # The dead process got the first message out and recorded it, the second arrived unrecorded.
        await runtime.delivery._deliver(batches[0])
        notifier.sent.append(runtime.delivery._notification(batches[1]))
        await runtime.process()
        assert sorted(notifier.keys) == sorted({k for b in batches for k in (r.key for r in b)})
        assert len(notifier.keys) == 25
    finally:
        await runtime.aclose()


async def test_long_outage_is_retried_until_give_up_after_then_parked(tmp_path: Path) -> None:
    runtime, notifier = _runtime(
        tmp_path, PRAISES[:2], "  group_wait: 0s\n  group_interval: 0s\n  give_up_after: 8h\n"
    )
    try:
        notifier.fail_next(10_000, retryable=True)  # 5xx, no Retry-After
        await runtime.run_once()
        for _ in range(6 * 4):  # six hours of outage, looked at every 15 minutes
            runtime.clock.advance(15 * 60)  # type: ignore[attr-defined]
            await runtime.process()
        with runtime.db.session() as session:
            rows = session.execute(select(models.Alert)).scalars().all()
        assert {r.status for r in rows} == {"pending"}
        assert all(r.attempts > 20 for r in rows)  # more than the old fixed cap of 20 attempts
        notifier._failures.clear()  # Slack is back
        runtime.clock.advance(15 * 60)  # type: ignore[attr-defined]
        await runtime.process()
        assert sorted(notifier.keys) == sorted(r.key for r in rows)

        # An alert still failing give_up_after (8 h) after it was raised is parked, and says why.
        write_jsonl(tmp_path / "posts.jsonl", [*PRAISES[:2], PRAISES[2]])
        notifier.fail_next(10_000, retryable=True)
        await runtime.run_once()
        for _ in range(9 * 4):
            runtime.clock.advance(15 * 60)  # type: ignore[attr-defined]
            await runtime.process()
        with runtime.db.session() as session:
            parked = session.execute(select(models.Alert).where(models.Alert.status == "failed")).scalar_one()
        assert "8 h after it was raised" in (parked.status_reason or "")

        # `repmon alerts retry` puts it back; the daemon sends it on its next step.
        notifier._failures.clear()
        assert retry_failed(runtime.db, runtime.clock.now()) == 1
        await runtime.process()
        assert notifier.keys.count(parked.key) == 1
    finally:
        await runtime.aclose()


class SlowNotifier(CapturingNotifier):
    """Slack answering slowly: a send is under way until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, notification: Notification) -> DeliveryReceipt:
        self.entered.set()
        await self.release.wait()
        return await super().send(notification)


def _second_runtime(
    tmp_path: Path,
    owner: str,
    clock: FakeClock,
    *,
    url: str | None = None,
    notifier: CapturingNotifier | None = None,
) -> tuple[Runtime, CapturingNotifier]:
    """Another process on the same database (``repmon once`` next to the daemon, or a daemon)."""
    text = config_text(url or f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "posts.jsonl")
    notifier = notifier or CapturingNotifier()
    runtime = Runtime(
        load(text), notifier=notifier, classifier=StubClassifier(), clock=clock, env={}, owner=owner
    )
    return runtime, notifier


COMPLAINTS = [
    post(20 + i, f"Kettle Co sent a broken kettle again, terrible {i}", minutes=i) for i in range(3)
]


async def _mid_send(
    tmp_path: Path, url: str | None = None
) -> tuple[Runtime, SlowNotifier, asyncio.Task[int]]:
    """A daemon that claimed its alerts and is waiting for the receiver to answer."""
    replay = write_jsonl(tmp_path / "posts.jsonl", COMPLAINTS)
    text = config_text(url or f"sqlite:///{tmp_path / 'o.db'}", replay)
    notifier = SlowNotifier()
    daemon = Runtime(
        load(text),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=FakeClock(T0 + timedelta(hours=1)),
        env={},
        owner="daemon-a",
    )
    upgrade(daemon.db)
    await daemon.poll_all()
    await daemon.classify.drain()
    daemon.rules.drain()
    sending = asyncio.create_task(daemon.delivery.run_batch())
    await asyncio.wait_for(notifier.entered.wait(), 5)
    return daemon, notifier, sending


async def test_once_next_to_a_live_sender_on_sqlite_sends_nothing_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, slow, sending = await _mid_send(tmp_path)
    once, other = _second_runtime(tmp_path, "once-b", FakeClock(T0 + timedelta(hours=1)))
    try:
        with caplog.at_level(logging.WARNING, logger="repmon.outbox"):
            await once.run_once()  # reconciles 'sending' rows, then delivers what is due
        assert other.sent == [], "the live daemon's alerts were sent a second time"
        assert any("another repmon process" in r.getMessage() for r in caplog.records)
        slow.release.set()
        assert await sending > 0
        with daemon.db.session() as session:
            statuses = {a.key: a.status for a in session.execute(select(models.Alert)).scalars()}
        assert statuses and set(statuses.values()) == {"sent"}
        assert sorted(slow.keys) == sorted(statuses)
        with daemon.db.session() as session:
            owners = set(session.execute(select(models.DaemonHeartbeat.owner)).scalars())
        assert "once-b" not in owners  # a finished run leaves no heartbeat behind
    finally:
        slow.release.set()
        await once.aclose()
        await daemon.aclose()


async def test_alerts_of_a_sender_known_dead_are_reconciled(tmp_path: Path) -> None:
    daemon, slow, sending = await _mid_send(tmp_path)
    sending.cancel()  # the daemon dies mid-send, its message never arrived
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    with daemon.db.session() as session:
        keys = set(
            session.execute(select(models.Alert.key).where(models.Alert.status == "sending")).scalars()
        )
    assert keys
    # Alive (fresh heartbeat): left alone. Silent for longer than lease_ttl: reconciled and sent.
    clock = FakeClock(T0 + timedelta(hours=1, seconds=30))
    once, other = _second_runtime(tmp_path, "once-b", clock)
    try:
        assert await once.delivery.reconcile() == 0
        clock.advance(31)
        assert await once.delivery.reconcile() == len(keys)
        await once.delivery.drain()
        assert sorted(other.keys) == sorted(keys) and slow.sent == []
    finally:
        await once.aclose()
        await daemon.aclose()


async def test_alerts_of_a_process_that_ended_on_this_host_are_reconciled_at_once(tmp_path: Path) -> None:
    daemon, _slow, sending = await _mid_send(tmp_path)
    sending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = f"{socket.gethostname()}:{int(ended.stdout)}:dead00"
    assert process_gone(dead) and not process_gone(f"{socket.gethostname()}:{os.getpid()}:alive0")
    assert not process_gone(f"another-host:{int(ended.stdout)}:dead00")
    now = daemon.clock.now()
    with daemon.db.session() as session:
        session.execute(update(models.Alert).where(models.Alert.status == "sending").values(sending_by=dead))
    heartbeat(daemon.db, dead, "all", now)  # its heartbeat is still fresh: killed a moment ago
    once, other = _second_runtime(tmp_path, "once-b", FakeClock(now))
    try:
        assert await once.delivery.reconcile() > 0
        await once.delivery.drain()
        assert other.sent
    finally:
        await once.aclose()
        await daemon.aclose()


class SlowLookupNotifier(CapturingNotifier):
    """A receiver whose read-back (Slack's conversations.history) answers only when released."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        self.asked.set()
        await self.answer.wait()
        return await super().find_delivered(notification, since)


async def _died_mid_send(tmp_path: Path, url: str) -> tuple[Runtime, SlowNotifier, set[str]]:
    """A daemon killed while its alerts were ``sending`` (its message never arrived)."""
    daemon, slow, sending = await _mid_send(tmp_path, url)
    sending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    with daemon.db.session() as session:
        keys = set(
            session.execute(select(models.Alert.key).where(models.Alert.status == "sending")).scalars()
        )
    assert keys
    return daemon, slow, keys


async def test_two_survivors_never_both_send_what_a_killed_daemon_left(tmp_path: Path, db_url: str) -> None:
    # Review finding: X re-queued and re-sent while Y's slow Slack lookup was still under way; Y's
    # answer then put the alerts back to pending and both sent. Exactly one message per alert.
    daemon, slow, keys = await _died_mid_send(tmp_path, db_url)
    later = daemon.clock.now() + timedelta(seconds=61)  # its heartbeat is stale: known dead
    x, x_sent = _second_runtime(tmp_path, "daemon-x", FakeClock(later), url=db_url)
    y, y_sent = _second_runtime(
        tmp_path, "daemon-y", FakeClock(later), url=db_url, notifier=SlowLookupNotifier()
    )
    lookup = y_sent
    assert isinstance(lookup, SlowLookupNotifier)
    try:
        y_reconciling = asyncio.create_task(y.delivery.reconcile())
        await asyncio.wait_for(lookup.asked.wait(), 5)
        # While Y asks the receiver, the rows are Y's: X neither asks again nor re-sends them.
        assert await x.delivery.reconcile() == 0
        await x.delivery.drain()
        lookup.answer.set()
        assert await y_reconciling == len(keys)
        await y.delivery.drain()
        await x.delivery.reconcile()
        await x.delivery.drain()
        sent = [*x_sent.keys, *y_sent.keys, *slow.keys]
        assert sorted(sent) == sorted(keys), "an alert went out twice (or not at all)"
        with daemon.db.session() as session:
            assert set(session.execute(select(models.Alert.status)).scalars()) == {"sent"}
    finally:
        lookup.answer.set()
        await x.aclose()
        await y.aclose()
        await daemon.aclose()


async def test_a_reconciler_killed_mid_lookup_leaves_its_claim_to_the_next(
    tmp_path: Path, db_url: str
) -> None:
    daemon, _slow, keys = await _died_mid_send(tmp_path, db_url)
    later = daemon.clock.now() + timedelta(seconds=61)
    y, lookup = _second_runtime(
        tmp_path, "daemon-y", FakeClock(later), url=db_url, notifier=SlowLookupNotifier()
    )
    assert isinstance(lookup, SlowLookupNotifier)
    x_clock = FakeClock(later)
    x, x_sent = _second_runtime(tmp_path, "daemon-x", x_clock, url=db_url)
    try:
        y_reconciling = asyncio.create_task(y.delivery.reconcile())
        await asyncio.wait_for(lookup.asked.wait(), 5)
        y_reconciling.cancel()  # Y dies while asking
        with contextlib.suppress(asyncio.CancelledError):
            await y_reconciling
        assert await x.delivery.reconcile() == 0  # Y beat with its claim: alive for lease_ttl
        x_clock.advance(61)
        assert await x.delivery.reconcile() == len(keys)
        await x.delivery.drain()
        assert sorted(x_sent.keys) == sorted(keys) and lookup.sent == []
    finally:
        lookup.answer.set()
        await x.aclose()
        await y.aclose()
        await daemon.aclose()


async def test_after_a_database_outage_a_live_senders_alerts_are_not_taken_for_orphans(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Review finding: the database was away for longer than lease_ttl, so nobody could beat. When
    # it came back, X's processing step reconciled before the others beat again, took the alerts
    # a live daemon was sending for orphans and sent them a second time.
    daemon, slow, sending = await _mid_send(tmp_path, db_url)
    back = daemon.clock.now() + timedelta(seconds=90)  # the outage: 90 s without a beat (ttl 60 s)
    x_clock = FakeClock(back)
    x, x_sent = _second_runtime(tmp_path, "daemon-x", x_clock, url=db_url)
    try:
        x.delivery.database_failed(back - timedelta(seconds=1))  # X's last failed beat or step
        with caplog.at_level(logging.WARNING, logger="repmon.outbox"):
            assert await x.delivery.reconcile() == 0
            await x.delivery.drain()
        assert x_sent.sent == []
        assert not [r for r in caplog.records if "reconciled" in r.getMessage()]
        slow.release.set()  # the live daemon's send completes and is recorded
        assert await sending > 0
        x_clock.advance(61)  # X has now seen the database for lease_ttl: heartbeats count again
        assert await x.delivery.reconcile() == 0
        await x.delivery.drain()
        assert x_sent.sent == [] and len(slow.keys) == len(set(slow.keys)) > 0
    finally:
        slow.release.set()
        await x.aclose()
        await daemon.aclose()


async def test_after_a_database_outage_a_dead_senders_alerts_wait_one_lease_ttl(
    tmp_path: Path, db_url: str
) -> None:
    daemon, _slow, keys = await _died_mid_send(tmp_path, db_url)
    back = daemon.clock.now() + timedelta(seconds=90)
    x_clock = FakeClock(back)
    x, x_sent = _second_runtime(tmp_path, "daemon-x", x_clock, url=db_url)
    try:
        x.delivery.database_failed(back)
        assert await x.delivery.reconcile() == 0
        x_clock.advance(59)
        assert await x.delivery.reconcile() == 0
        x_clock.advance(1)  # a lease_ttl of database seen without failing: the silence means death
        assert await x.delivery.reconcile() == len(keys)
        await x.delivery.drain()
        assert sorted(x_sent.keys) == sorted(keys)
    finally:
        await x.aclose()
        await daemon.aclose()


async def test_a_failed_heartbeat_is_retried_every_second_and_noted_for_reconciling(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    from monitor.daemon import Daemon

    runtime, _notifier = _runtime(tmp_path, PRAISES[:1])
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    daemon = Daemon(runtime)
    beats: list[datetime] = []

    async def heartbeat(roles: str = "all") -> None:
        beats.append(clock.now())
        if 2 <= len(beats) <= 4:  # the database is away for three beats
            raise OperationalError("INSERT INTO daemon_heartbeats", {}, ConnectionError("refused"))
        if len(beats) >= 6:
            daemon.stop.set()

    runtime.heartbeat = heartbeat  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(daemon._heartbeat_loop(), 10)
    finally:
        await runtime.aclose()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(beats)]
    ttl = runtime.settings.daemon.lease_ttl
    # After a failed beat the next try comes within a second; once it works, every lease_ttl/3.
    assert gaps == [ttl / 3, 1.0, 1.0, 1.0, ttl / 3]
    assert runtime.delivery.database_failed_at == beats[3]


class _WebhookLike(CapturingNotifier):
    """A receiver that cannot read back (a Slack incoming webhook)."""

    name = "webhook"
    reconciles = False

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        return None


async def test_webhook_with_an_audit_file_stays_at_most_once_across_daemons(tmp_path: Path) -> None:
    # Review finding: a tee reconciled because its JSONL audit file can be searched; but that file
    # is written after the webhook answered, by the daemon that sent (its own file), so a survivor
    # found nothing in its file and sent the message a second time.
    from alerts.console import JsonlNotifier
    from monitor.notify import TeeNotifier

    hook = _WebhookLike()
    tee_a = TeeNotifier(hook, JsonlNotifier(tmp_path / "audit-a.jsonl"))
    tee_x = TeeNotifier(hook, JsonlNotifier(tmp_path / "audit-x.jsonl"))
    assert not tee_a.reconciles and not tee_x.reconciles
    daemon, _slow, keys = await _died_mid_send(tmp_path, f"sqlite:///{tmp_path / 'o.db'}")
    with daemon.db.session() as session:
        rows = list(session.execute(select(models.Alert).where(models.Alert.status == "sending")).scalars())
    await hook.send(daemon.delivery._notification(rows))  # Slack got it; A died before its audit line
    x, _ = _second_runtime(tmp_path, "daemon-x", FakeClock(daemon.clock.now() + timedelta(seconds=61)))
    x.delivery.notifier = tee_x
    try:
        assert await x.delivery.reconcile() == len(keys)
        await x.delivery.drain()
        assert sorted(hook.keys) == sorted(keys), "the webhook message went out twice"
        with daemon.db.session() as session:
            settled = list(session.execute(select(models.Alert)).scalars())
        assert {(a.status, a.status_reason) for a in settled} == {
            ("sent", "unconfirmed: crashed while sending")
        }
    finally:
        await x.aclose()
        await daemon.aclose()
