"""Two daemons on one PostgreSQL running every stage at the same time: a crisis is still raised,
escalated and resolved exactly once (no second incident, no thread fed twice)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import T0, load, write_jsonl
from tests.test_faults_slack import crisis_posts


def _config(db_url: str, replay: Path) -> str:
    return f"""
storage:
  url: {db_url}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
  - name: Kettle Co
    keywords: ["kettle co"]
sources:
  - name: replay
    type: replay
    path: {replay}
    batch_size: 150
alerts:
  group_wait: 0s
  group_interval: 0s
  max_per_minute: 100000
spikes:
  clock: data
daemon:
  health_port: null
"""


async def test_two_daemons_share_spike_detection_without_duplicates(tmp_path: Path, pg_url: str) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", crisis_posts())
    clock = FakeClock(T0 + timedelta(days=10))
    notifier = CapturingNotifier()  # one Slack workspace for both
    runtimes = [
        Runtime(
            load(_config(pg_url, replay)),
            notifier=notifier,
            classifier=StubClassifier(),
            clock=clock,
            env={},
            owner=owner,
        )
        for owner in ("daemon-a", "daemon-b")
    ]
    upgrade(runtimes[0].db)
    try:
        for rt in runtimes:
            await rt.heartbeat()
        more = True
        while more:
            # Whichever daemon holds the source lease polls; both run all stages concurrently.
            outcomes = await asyncio.gather(*(rt.coordinators["replay"].poll_once() for rt in runtimes))
            more = any(o.more for o in outcomes if not o.leased_elsewhere)
            await asyncio.gather(*(rt.process() for rt in runtimes))
        for _ in range(3):
            await asyncio.gather(*(rt.process() for rt in runtimes))
        with runtimes[0].db.session() as session:
            incidents = session.execute(
                select(models.SpikeIncident.metric, models.SpikeIncident.status).where(
                    models.SpikeIncident.brand == "Acme Rail"
                )
            ).all()
            keys = (
                session.execute(select(models.Alert.key).where(models.Alert.status == "sent")).scalars().all()
            )
        negative = [s for m, s in incidents if m == "negative"]
        assert negative == ["resolved"], incidents
        assert sorted(notifier.keys) == sorted(keys), "each alert delivered exactly once"
        events = [
            i.event
            for n in notifier.sent
            for i in n.items
            if i.kind == "spike" and i.labels.get("metric") == "negative"
        ]
        assert events[0] == "raise" and events.count("raise") == 1 and events[-1] == "resolve", events
    finally:
        for rt in runtimes:
            await rt.aclose()
