"""Button clicks are recorded with who and when, reflected in the re-rendered message, and exported."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from alerts.render import render_blocks
from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.feedback import export_feedback, make_action_handler
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import T0, config_text, load, post, write_jsonl


async def test_claim_handle_and_wrong_sentiment(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "p.jsonl", [post(1, "Acme Rail was brilliant today, thanks", minutes=1)])
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(config_text(f"sqlite:///{tmp_path / 'f.db'}", replay)),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=FakeClock(T0 + timedelta(hours=1)),
        env={},
    )
    upgrade(runtime.db)
    try:
        await runtime.run_once()
        alert_id = notifier.sent[0].items[0].alert_id
        on_action = make_action_handler(runtime.db, runtime.delivery)
        at = T0 + timedelta(hours=1, minutes=3)

        updated = await on_action(alert_id, "claim", "sanne", at)
        assert updated is not None and updated.items[0].claimed_by == "sanne"
        shown = json.dumps(render_blocks(updated))
        assert "sanne" in shown

        updated = await on_action(alert_id, "handled", "joost", at + timedelta(minutes=10))
        assert updated is not None
        item = updated.items[0]
        assert item.claimed_by == "sanne" and item.handled_by == "joost"

        await on_action(alert_id, "wrong_sentiment", "joost", at + timedelta(minutes=11))
        assert await on_action(999, "claim", "x", at) is None

        with runtime.db.session() as session:
            alert = session.get(models.Alert, alert_id)
            actions = session.execute(
                select(models.Feedback.action, models.Feedback.user, models.Feedback.value)
            ).all()
        assert alert is not None and alert.claimed_at == at and alert.handled_at == at + timedelta(minutes=10)
        assert actions == [
            ("claim", "sanne", None),
            ("handled", "joost", None),
            ("wrong_sentiment", "joost", "positive"),
        ]

        out = tmp_path / "feedback.jsonl"
        assert export_feedback(runtime.db, out) == 1
        assert json.loads(out.read_text())["label"] == "neutral"
    finally:
        await runtime.aclose()
