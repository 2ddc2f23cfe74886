"""The rules stage: turns scored mentions into outbox alerts (praise, complaints), exactly once."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from alerts.rules import MentionFacts, evaluate
from config.settings import Settings
from monitor import models
from monitor.clock import Clock
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.outbox import enqueue
from monitor.spike_stage import pipeline_now
from monitor.sqlutil import lock_skip

__all__ = ["RulesStage"]

log = logging.getLogger("repmon.rules")


class RulesStage:
    """Evaluates per-mention rules for scored mentions and enqueues alerts in the same transaction."""

    def __init__(
        self, db: Database, settings: Settings, clock: Clock, metrics: Metrics, *, batch_size: int = 500
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.batch_size = batch_size

    def run_batch(self) -> int:
        """Evaluate one batch of scored mentions; returns how many were evaluated."""
        now = self.clock.now()
        with self.db.session() as session:
            # Age is measured on the pipeline's clock: a replay on the data clock is live.
            age_now = pipeline_now(session, self.settings, self.clock)
            stmt = lock_skip(
                session,
                select(models.Mention)
                .where(models.Mention.classify_state == "scored", models.Mention.rules_done.is_(False))
                .order_by(models.Mention.id)
                .limit(self.batch_size),
            )
            mentions = list(session.execute(stmt).scalars())
            if not mentions:
                return 0
            ids = [m.id for m in mentions]
            scores = {
                s.mention_id: s
                for s in session.execute(
                    select(models.Score).where(models.Score.mention_id.in_(ids))
                ).scalars()
            }
            hits: dict[int, list[models.MentionBrand]] = {}
            for hit in session.execute(
                select(models.MentionBrand).where(models.MentionBrand.mention_id.in_(ids))
            ).scalars():
                hits.setdefault(hit.mention_id, []).append(hit)
            alerted = _stories_alerted(session, ids)
            for mention in mentions:
                score = scores.get(mention.id)
                if score is None:
                    continue
                for hit in hits.get(mention.id, []):
                    story_alerted = (mention.id, hit.brand) in alerted
                    self._evaluate(session, mention, score, hit, now, age_now, story_alerted)
            session.execute(update(models.Mention).where(models.Mention.id.in_(ids)).values(rules_done=True))
            return len(mentions)

    def drain(self) -> int:
        """Evaluate until nothing is left."""
        total = 0
        while done := self.run_batch():
            total += done
        return total

    def _evaluate(
        self,
        session: object,
        mention: models.Mention,
        score: models.Score,
        hit: models.MentionBrand,
        now: datetime,
        age_now: datetime,
        story_alerted: bool,
    ) -> None:
        brand = self.settings.brand(hit.brand)
        if brand is None:
            return  # the brand was removed from the configuration since the mention was stored
        facts = MentionFacts(
            brand=hit.brand,
            source=mention.source,
            external_id=mention.external_id,
            tagged=hit.tagged,
            from_brand=hit.from_brand,
            competitor=hit.competitor or brand.competitor,
            # A repost whose original was never stored is the story's only post so far: it may
            # alert. Once the original arrives the store links the repost under it.
            is_copy=mention.duplicate_of_id is not None,
            story_alerted=story_alerted,
            sentiment=score.sentiment,
            p_positive=score.p_positive,
            p_negative=score.p_negative,
            complaint=score.complaint,
            severity=score.severity,
            followers=mention.author_followers,
            rating=mention.rating,
            rating_max=mention.rating_max,
            praise_threshold=score.praise_threshold,
        )
        alerts = self.settings.alerts
        drafts = evaluate(
            facts, self.settings.thresholds_for(hit.brand), praise=alerts.praise, complaints=alerts.complaints
        )
        if drafts and alerts.max_post_age is not None:
            age = (age_now - mention.created_at).total_seconds()
            if age > alerts.max_post_age:
                # Nobody answers a post from last month: a backfill is stored and scored, not paged.
                self.metrics.alerts_suppressed.labels("too_old").inc(len(drafts))
                log.debug(  # a first poll can hold hundreds: counted, not logged at INFO
                    "%s alert for mention %d (%s) not raised: the post is %.1f days old",
                    drafts[0].kind,
                    mention.id,
                    hit.brand,
                    age / 86400,
                )
                return
        for draft in drafts:
            created = enqueue(
                session,  # type: ignore[arg-type]
                self.settings,
                key=draft.key,
                kind=draft.kind,
                severity=draft.severity,
                title=draft.title,
                reason=draft.reason,
                labels=draft.labels,
                brand=hit.brand,
                source=mention.source,
                mention_id=mention.id,
                now=now,
            )
            if created:
                self.metrics.alerts_created.labels(draft.kind).inc()


def _stories_alerted(session: Session, ids: list[int]) -> set[tuple[int, str]]:
    """(root id, brand) of the given mentions whose story already has a per-mention alert.

    A copy stored before its original is a root until the original arrives and may alert then;
    the original, evaluated later, must not alert the same story again. Suppressed alerts
    (silenced, inhibited, throttled away) never reached anyone, so they do not count.
    """
    copy = aliased(models.Mention)
    rows = session.execute(
        select(copy.duplicate_of_id, models.Alert.brand)
        .join(models.Alert, models.Alert.mention_id == copy.id)
        .where(
            copy.duplicate_of_id.in_(ids),
            models.Alert.event == "mention",
            models.Alert.status != "suppressed",
        )
    )
    return {(root, brand) for root, brand in rows if root is not None and brand is not None}
