"""SQLAlchemy models: every piece of state repmon keeps, with constraints doing the deduplication."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Alert",
    "AlertGroup",
    "Base",
    "DaemonHeartbeat",
    "Feedback",
    "Mention",
    "MentionBrand",
    "Score",
    "Silence",
    "SourceCursor",
    "SourceHealth",
    "SpikeIncident",
    "SpikeProgress",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit ids on PostgreSQL, SQLite's rowid alias on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        from sources.base import ensure_utc

        return ensure_utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        from sources.base import ensure_utc

        return ensure_utc(value) if value is not None else None


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints predictably."""

    metadata = MetaData(naming_convention=_NAMING)


class Mention(Base):
    """One stored post; (source, external_id) is unique, so a re-poll never duplicates."""

    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_mentions_source_external_id"),
        Index("ix_mentions_classify_queue", "classify_state", "next_classify_at"),
        Index("ix_mentions_created_at", "created_at"),
        Index("ix_mentions_content_hash", "content_hash"),
        # Copy linking looks up the stored reposts of each new post, and the copies of a story.
        Index("ix_mentions_repost_of", "source", "repost_of"),
        Index("ix_mentions_duplicate_of_id", "duplicate_of_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    source_name: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(Text)
    author_handle: Mapped[str | None] = mapped_column(String(255))
    author_name: Mapped[str | None] = mapped_column(String(255))
    author_id: Mapped[str | None] = mapped_column(String(255))
    author_followers: Mapped[int | None] = mapped_column(BigInteger)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rating: Mapped[float | None] = mapped_column(Float)
    rating_max: Mapped[float | None] = mapped_column(Float)
    parent_id: Mapped[str | None] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(255))
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    mentioned_handles: Mapped[list[str]] = mapped_column(JSON, default=list)
    repost_of: Mapped[str | None] = mapped_column(String(255))
    #: Near-identical copy (retweet, syndicated news) of an earlier mention: linked, never re-alerted.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("mentions.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(40))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: pending → scored | failed (gave up after max attempts) | unmatched (no brand: never scored)
    classify_state: Mapped[str] = mapped_column(String(16), default="pending")
    classify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    classify_error: Mapped[str | None] = mapped_column(Text)
    next_classify_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rules_done: Mapped[bool] = mapped_column(Boolean, default=False)


class MentionBrand(Base):
    """Which brand a mention is about, and whether it tags the brand's own handles."""

    __tablename__ = "mention_brands"
    __table_args__ = (
        UniqueConstraint("mention_id", "brand", name="uq_mention_brands_mention_id_brand"),
        Index("ix_mention_brands_brand_created", "brand", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id", ondelete="CASCADE"))
    brand: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tagged: Mapped[bool] = mapped_column(Boolean, default=False)
    from_brand: Mapped[bool] = mapped_column(Boolean, default=False)
    competitor: Mapped[bool] = mapped_column(Boolean, default=False)
    terms: Mapped[str] = mapped_column(Text, default="")


class Score(Base):
    """Classifier output for one mention, with the model that produced it."""

    __tablename__ = "scores"

    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id", ondelete="CASCADE"), primary_key=True)
    sentiment: Mapped[str] = mapped_column(String(16))
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    complaint: Mapped[float] = mapped_column(Float)
    severity: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(255))
    #: The model's calibrated praise threshold (None: not calibrated), for ``praise_min_positive: auto``.
    praise_threshold: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SourceCursor(Base):
    """One named piece of a source's resume state (since_id, etag, ...)."""

    __tablename__ = "source_cursors"

    source_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SourceHealth(Base):
    """Per-source health, schedule and lease (which daemon polls it)."""

    __tablename__ = "source_health"

    source_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    polls_total: Mapped[int] = mapped_column(BigInteger, default=0)
    errors_total: Mapped[int] = mapped_column(BigInteger, default=0)
    mentions_total: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped_total: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SpikeIncident(Base):
    """A crisis: a spike of a brand's volume, raised, escalated and resolved in one Slack thread."""

    __tablename__ = "spike_incidents"
    __table_args__ = (Index("ix_spike_incidents_brand_status", "brand", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    peak_at: Mapped[datetime] = mapped_column(UTCDateTime())
    peak_count: Mapped[float] = mapped_column(Float)
    last_count: Mapped[float] = mapped_column(Float)
    expected: Mapped[float] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer, default=1)
    updates: Mapped[int] = mapped_column(Integer, default=0)


class SpikeProgress(Base):
    """The last bucket the spike detector has processed per brand and metric (restart point)."""

    __tablename__ = "spike_progress"

    brand: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_bucket: Mapped[datetime] = mapped_column(UTCDateTime())


class Alert(Base):
    """The outbox: one row per alert key, so an alert is created once and sent at most once."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("key", name="uq_alerts_key"),
        Index("ix_alerts_status_next", "status", "next_attempt_at"),
        Index("ix_alerts_brand_created", "brand", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    brand: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="info")
    channel: Mapped[str] = mapped_column(String(128))
    group_key: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    title: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    mention_id: Mapped[int | None] = mapped_column(ForeignKey("mentions.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("spike_incidents.id", ondelete="SET NULL"))
    #: Incident alerts: "raise" | "escalate" | "resolve" | "repeat"; others: "mention" | "ops".
    event: Mapped[str] = mapped_column(String(16), default="mention")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: pending → sending → sent; or suppressed (silenced/inhibited/throttled away) or failed.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sending_by: Mapped[str | None] = mapped_column(String(128))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receiver: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(64))
    message_channel: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handled_by: Mapped[str | None] = mapped_column(String(128))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dismissed_by: Mapped[str | None] = mapped_column(String(128))
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AlertGroup(Base):
    """Notification log per group (Alertmanager's nflog): when the group was last notified."""

    __tablename__ = "alert_groups"

    group_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Slack thread of an incident group (root message ts) so updates stay in one thread.
    thread_ts: Mapped[str | None] = mapped_column(String(64))
    thread_channel: Mapped[str | None] = mapped_column(String(64))


class Silence(Base):
    """Mutes alerts whose labels match until it expires."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    matchers: Mapped[dict[str, str]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Feedback(Base):
    """A team member's action on an alert: claim, handled, not relevant, wrong sentiment."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_mention", "mention_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    mention_id: Mapped[int | None] = mapped_column(ForeignKey("mentions.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DaemonHeartbeat(Base):
    """A running daemon's liveness: work it claimed is taken over once its heartbeat goes stale."""

    __tablename__ = "daemon_heartbeats"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    roles: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DigestPost(Base):
    """One brand's digest for one period in Slack: claimed by one daemon, then posted once."""

    __tablename__ = "digest_posts"

    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    brand: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: "posting" (claimed by ``owner`` at ``started_at``) → "posted".
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(64))
    ts: Mapped[str | None] = mapped_column(String(64))
    file_id: Mapped[str | None] = mapped_column(String(64))
