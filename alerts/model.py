"""What notifiers receive: alerts as plain data, independent of storage and of Slack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ACTIONS",
    "AlertItem",
    "DeliveryError",
    "DeliveryReceipt",
    "IncidentView",
    "MentionView",
    "Notification",
    "Notifier",
    "ScoreView",
]

AlertKind = Literal["praise", "complaint", "spike", "ops"]
AlertEvent = Literal["mention", "raise", "escalate", "resolve", "repeat", "ops"]
Severity = Literal["info", "warning", "critical"]
#: Button actions a team member can take on an alert (Slack block_actions ``action_id``s).
ACTIONS: tuple[str, ...] = ("claim", "handled", "not_relevant", "wrong_sentiment")


@dataclass(frozen=True, slots=True)
class MentionView:
    """The post as shown to the team (untrusted text: every notifier must escape it)."""

    source: str
    text: str
    created_at: datetime
    url: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    followers: int | None = None
    language: str | None = None
    title: str | None = None
    rating: float | None = None
    rating_max: float | None = None
    tagged: bool = False


@dataclass(frozen=True, slots=True)
class ScoreView:
    """Classifier scores as shown with an alert."""

    sentiment: str
    p_negative: float
    p_neutral: float
    p_positive: float
    complaint: float
    model: str
    severity: int | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    """A spike (crisis) as shown in its Slack thread."""

    incident_id: int
    brand: str
    metric: str
    status: Literal["open", "resolved"]
    started_at: datetime
    count: float
    expected: float
    peak_count: float
    level: int
    resolved_at: datetime | None = None
    samples: tuple[MentionView, ...] = ()
    top_terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One alert inside a notification."""

    alert_id: int
    key: str
    kind: AlertKind
    event: AlertEvent
    severity: Severity
    title: str
    reason: str
    brand: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    mention: MentionView | None = None
    scores: ScoreView | None = None
    incident: IncidentView | None = None
    claimed_by: str | None = None
    handled_by: str | None = None
    dismissed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one channel: a group of alerts, or one incident update."""

    channel: str
    group_key: str
    items: tuple[AlertItem, ...]
    #: For incident updates: the root message of the incident's thread, to update and reply under.
    thread_ts: str | None = None
    thread_channel: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """Where a notification landed (Slack message ts, or None for console/file)."""

    receiver: str
    message_ts: str | None = None
    channel: str | None = None


class DeliveryError(Exception):
    """Delivery failed; ``retryable`` says whether the outbox should try again (and when)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Notifier(Protocol):
    """A receiver: console, JSONL file, Slack Web API, Slack webhook."""

    name: str
    #: Whether find_delivered() can answer; if not, a send interrupted by a crash is not repeated.
    reconciles: bool

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Deliver one notification; raise :class:`DeliveryError` on failure."""
        ...

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """After a crash mid-send: the receipt if this notification did arrive, else None."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
