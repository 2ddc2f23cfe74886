"""Team actions on alerts (Slack buttons): who claimed, handled or dismissed what, and when.

Each click is stored as a :class:`models.Feedback` row (the audit trail and the training signal)
and reflected on the alert itself, so the message can be re-rendered with its new state. A spike
incident is one root message that each update re-renders in place: a click on it is the team's
action on the incident, kept on its raise (the alert the digest counts), and the root is
re-rendered as its latest delivered update, not as a group of every update it has shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from alerts.model import ACTIONS, Notification
from monitor import models
from monitor.db import Database
from monitor.outbox import DeliveryStage, incident_anchor

__all__ = ["export_feedback", "make_action_handler", "record_action"]

log = logging.getLogger("repmon.feedback")


def record_action(db: Database, alert_id: int, action: str, user: str, at: datetime) -> list[int] | None:
    """Store one click; returns the ids of the alerts the clicked message shows now, or None.

    That is every alert of a grouped message, or the latest delivered update of an incident.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    with db.session() as session:
        alert = session.get(models.Alert, alert_id)
        if alert is None:
            return None
        target = incident_anchor(session, alert)
        if action == "claim" and target.claimed_by is None:
            target.claimed_by, target.claimed_at = user, at
        elif action == "handled":
            if target.claimed_by is None:
                target.claimed_by, target.claimed_at = user, at
            target.handled_by, target.handled_at = user, at
        elif action == "not_relevant":
            target.dismissed_by, target.dismissed_at = user, at
        score = session.get(models.Score, alert.mention_id) if alert.mention_id else None
        session.add(
            models.Feedback(
                alert_id=alert.id,
                mention_id=alert.mention_id,
                action=action,
                # "wrong sentiment" records the label that was wrong, for retraining.
                value=score.sentiment if action == "wrong_sentiment" and score else None,
                user=user[:128],
                created_at=at,
            )
        )
        if not alert.message_ts:
            return [alert.id]
        if alert.incident_id is not None:
            # Every update of the incident went to this one root (chat.update), so they all share
            # its ts; the root shows the latest of them (updates are delivered in order).
            latest = session.execute(
                select(func.max(models.Alert.id)).where(
                    models.Alert.group_key == alert.group_key,
                    models.Alert.incident_id == alert.incident_id,
                    models.Alert.message_ts == alert.message_ts,
                    models.Alert.status == "sent",
                )
            ).scalar_one_or_none()
            return [latest if latest is not None else alert.id]
        siblings = session.execute(
            select(models.Alert.id)
            .where(models.Alert.message_ts == alert.message_ts, models.Alert.channel == alert.channel)
            .order_by(models.Alert.id)
        ).scalars()
        return list(siblings)


def make_action_handler(
    db: Database, delivery: DeliveryStage
) -> Callable[[int, str, str, datetime], Awaitable[Notification | None]]:
    """The ``on_action`` callback for Socket Mode: record, then re-render the message."""

    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        ids = await asyncio.to_thread(record_action, db, alert_id, action, user, at)
        if not ids:
            log.warning("button click for unknown alert %s ignored", alert_id)
            return None
        log.info("alert %s: %s by %s", alert_id, action, user)

        def render() -> Notification:
            with db.session() as session:
                rows = list(session.execute(select(models.Alert).where(models.Alert.id.in_(ids))).scalars())
            return delivery.notification_for(rows)

        return await asyncio.to_thread(render)

    return on_action


def export_feedback(db: Database, path: Path) -> int:
    """Write corrections as labelled JSONL (``text``, ``label``) for ``repmon train --feedback``.

    A "wrong sentiment" click says the predicted label was wrong but not what is right; webcare
    corrections are overwhelmingly "this was not praise/complaint", so the post is labelled neutral.
    """
    with db.session() as session:
        rows = session.execute(
            select(models.Feedback.value, models.Mention.text)
            .join(models.Mention, models.Mention.id == models.Feedback.mention_id)
            .where(models.Feedback.action == "wrong_sentiment")
            .order_by(models.Feedback.id)
        ).all()
    seen: set[str] = set()
    with path.open("w", encoding="utf-8") as handle:
        for wrong, text in rows:
            if text in seen or wrong == "neutral":
                continue
            seen.add(text)
            handle.write(
                json.dumps({"text": text, "label": "neutral", "source": "feedback"}, ensure_ascii=False)
                + "\n"
            )
    return len(seen)
