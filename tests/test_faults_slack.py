"""Slack down (5xx) or rate limiting (429 + Retry-After) for a long stretch, on a fake clock.

The real pipeline (replay → classify → rules → spikes → outbox) delivers through the real
:class:`SlackNotifier` to the mock Slack Web API. While Slack fails, alerts wait in the outbox;
after recovery every alert arrives exactly once and an incident's raise → escalate → resolve
updates arrive in order in one thread.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.slack import SlackNotifier
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.mock_slack import BOT_TOKEN, MockSlack
from tests.pipeline_util import T0, config_text, load, post, write_jsonl

CHANNELS = {"C0WEBCARE1": "webcare", "C0KETTLE01": "kettle"}


def crisis_posts() -> list[dict[str, Any]]:
    """Three quiet days, a crisis for Acme Rail, a calm day; praise for both brands throughout."""
    rng = random.Random(3)
    posts: list[dict[str, Any]] = []
    n = 0
    minute = 0.0
    while minute < 3 * 24 * 60:
        n += 1
        text = "Acme Rail delay again" if rng.random() < 0.5 else "Acme Rail timetable news"
        posts.append(post(n, f"{text} {n}", minutes=minute))
        if n % 40 == 0:
            n += 1
            brand = "Acme Rail" if n % 80 == 1 else "Kettle Co"
            posts.append(post(n, f"{brand} staff were brilliant, thanks! {n}", minutes=minute + 1))
        minute += rng.uniform(10, 30)
    # The crisis grows bucket by bucket (so it escalates), then stops.
    for burst in (8, 30, 100, 100, 40):
        for i in range(burst):
            n += 1
            text = f"Acme Rail storing, everything stopped, terrible {n}"
            posts.append(post(n, text, minutes=minute + i * 5 / burst))
        minute += 5
    while minute < 4 * 24 * 60 + 600:
        n += 1
        posts.append(post(n, f"Acme Rail timetable news {n}", minutes=minute))
        minute += rng.uniform(10, 30)
    return posts


def _config(db_url: str, replay: Path, api_url: str) -> str:
    slack = f'slack:\n  api_url: {api_url}\n  default_channel: "#webcare"\n'
    return config_text(db_url, replay, batch=200, extra=slack)


async def _run_with_fault(
    tmp_path: Path,
    db_url: str,
    slack: MockSlack,
    *,
    fault_minutes: float,
    step_seconds: float,
    start_fault: Callable[[MockSlack], None],
) -> tuple[Runtime, FakeClock]:
    """Replay everything while Slack fails for ``fault_minutes`` of fake time, then recover and drain."""
    replay = write_jsonl(tmp_path / "posts.jsonl", crisis_posts())
    clock = FakeClock(T0 + timedelta(days=10))
    notifier = SlackNotifier(BOT_TOKEN, slack.api_url, retry_backoff=0.001, max_inline_wait=1.0)
    runtime = Runtime(
        load(_config(db_url, replay, slack.api_url)),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=clock,
        env={},
    )
    upgrade(runtime.db)
    start_fault(slack)
    fault_ends = clock.now() + timedelta(minutes=fault_minutes)
    polls_left = True
    while clock.now() < fault_ends:
        if polls_left:
            outcome = await runtime.coordinators["replay"].poll_once()
            polls_left = outcome.more
        await runtime.process()
        clock.advance(step_seconds)
    assert not polls_left, "the whole replay was ingested during the outage"
    assert runtime.delivery.pending() > 0, "alerts waited in the outbox during the fault"
    assert not slack.all_messages(), "nothing got through while Slack failed"
    slack.heal()
    for _ in range(200):
        await runtime.process()
        if runtime.delivery.pending() == 0:
            break
        clock.advance(60)
    return runtime, clock


def _assert_delivered_once_in_order(runtime: Runtime, slack: MockSlack) -> None:
    with runtime.db.session() as session:
        alerts = session.execute(select(models.Alert).order_by(models.Alert.id)).scalars().all()
        failed = session.execute(select(func.count()).where(models.Alert.status == "failed")).scalar_one()
    assert failed == 0, [(a.key, a.last_error, a.attempts) for a in alerts if a.status == "failed"]
    assert {a.status for a in alerts} <= {"sent", "suppressed"}
    sent_keys = sorted(a.key for a in alerts if a.status == "sent")
    kinds = {a.kind for a in alerts if a.status == "sent"}
    assert {"spike", "praise"} <= kinds, kinds

    # What went over the wire: every message (roots and thread replies) carries its alert keys.
    delivered: list[str] = []
    for message in slack.all_messages():
        delivered.extend((message.get("metadata") or {}).get("event_payload", {}).get("keys", []))
    assert sorted(delivered) == sent_keys, "each alert delivered exactly once"

    # Per incident: the raise is the thread root, every later update is a reply, in event order.
    incidents = {a.incident_id for a in alerts if a.incident_id is not None}
    assert incidents
    for incident_id in incidents:
        events = [a for a in alerts if a.incident_id == incident_id and a.status == "sent"]
        assert events[0].event == "raise"
        root_ts = events[0].message_ts
        channel = events[0].message_channel
        assert root_ts and channel
        (root,) = [m for m in slack.roots(channel) if m["ts"] == root_ts]
        assert root["metadata"]["event_payload"]["keys"] == [events[0].key]
        replies = slack.replies(channel, root_ts)
        reply_keys = [r["metadata"]["event_payload"]["keys"][0] for r in replies]
        assert reply_keys == [a.key for a in events[1:]], "updates in order, in the raise's thread"
        if events[-1].event == "resolve":
            assert root["blocks"][0]["text"]["text"].startswith("✅")  # the root shows the final state
    negative = [a for a in alerts if a.kind == "spike" and a.labels.get("metric") == "negative"]
    assert negative[0].event == "raise" and negative[-1].event == "resolve"
    assert any(a.event == "escalate" for a in negative)


@pytest.fixture
async def slack() -> Any:
    async with MockSlack(channels=dict(CHANNELS)) as server:
        yield server


async def test_ten_minute_slack_outage_delivers_everything_once_in_order(
    tmp_path: Path, slack: MockSlack
) -> None:
    runtime, _ = await _run_with_fault(
        tmp_path,
        f"sqlite:///{tmp_path / 'slack.db'}",
        slack,
        fault_minutes=10,
        step_seconds=20,
        start_fault=lambda s: s.outage(status=503),
    )
    try:
        assert runtime.metrics.alerts_failed.labels("slack", "true")._value.get() > 0
        _assert_delivered_once_in_order(runtime, slack)
        # Every failed call was a real attempt against the 5xx server, with backoff between rounds.
        with runtime.db.session() as session:
            attempts = session.execute(select(func.max(models.Alert.attempts))).scalar_one()
        assert 3 <= attempts < 20
    finally:
        await runtime.aclose()


async def test_long_rate_limit_with_retry_after_is_honoured_and_loses_nothing(
    tmp_path: Path, slack: MockSlack
) -> None:
    # 15 minutes of 429 with Retry-After: 30 s is about 30 rounds per group: more than
    # alerts.max_attempts, which must not park anything (the server said when to come back).
    runtime, _ = await _run_with_fault(
        tmp_path,
        f"sqlite:///{tmp_path / 'slack.db'}",
        slack,
        fault_minutes=15,
        step_seconds=30,
        start_fault=lambda s: s.rate_limit(n=10**9, retry_after=30),
    )
    try:
        _assert_delivered_once_in_order(runtime, slack)
        with runtime.db.session() as session:
            errors = (
                session.execute(select(models.Alert.last_error).where(models.Alert.attempts > 1))
                .scalars()
                .all()
            )
        assert errors and all("rate limited" in (e or "") for e in errors)
    finally:
        await runtime.aclose()


async def test_retry_after_is_respected_not_hammered(tmp_path: Path, slack: MockSlack) -> None:
    """During a 429 stretch each group is retried once per Retry-After, not on every cycle."""
    runtime, _ = await _run_with_fault(
        tmp_path,
        f"sqlite:///{tmp_path / 'slack.db'}",
        slack,
        fault_minutes=5,
        step_seconds=5,  # cycles every 5 s of fake time ...
        start_fault=lambda s: s.rate_limit(n=10**9, retry_after=60),  # ... but Slack says 60 s
    )
    try:
        posts = [p for m, p in slack.calls if m == "chat.postMessage"]
        # One call per Retry-After for the whole receiver (not one per group or per cycle):
        # 5 faulty minutes / 60 s, plus the first try.
        rate_limited = len(posts) - len(slack.all_messages())
        assert 1 <= rate_limited <= 6, rate_limited
        _assert_delivered_once_in_order(runtime, slack)
    finally:
        await runtime.aclose()


async def test_slack_outage_on_postgres(tmp_path: Path, slack: MockSlack, pg_url: str) -> None:
    runtime, _ = await _run_with_fault(
        tmp_path, pg_url, slack, fault_minutes=10, step_seconds=20, start_fault=lambda s: s.outage(status=502)
    )
    try:
        _assert_delivered_once_in_order(runtime, slack)
    finally:
        await runtime.aclose()
