"""A capturing receiver for tests: records notifications, can fail on demand. Never a default."""

from __future__ import annotations

from datetime import datetime

from alerts.model import DeliveryError, DeliveryReceipt, Notification

__all__ = ["CapturingNotifier"]


class CapturingNotifier:
    """Keeps every notification it is sent; ``fail_next`` makes the next sends raise."""

    name = "capture"
    reconciles = True

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self._failures: list[DeliveryError] = []
        self._ts = 0

    def fail_next(self, count: int = 1, *, retryable: bool = True, retry_after: float | None = None) -> None:
        """Make the next ``count`` sends fail."""
        self._failures.extend(
            DeliveryError("receiver down (test)", retryable=retryable, retry_after=retry_after)
            for _ in range(count)
        )

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Record the notification, or raise a queued failure."""
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(notification)
        self._ts += 1
        return DeliveryReceipt(self.name, message_ts=f"{self._ts}.000", channel=notification.channel)

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Whether a notification with the same alert keys was recorded."""
        keys = {i.key for i in notification.items}
        for n in self.sent:
            if keys <= {i.key for i in n.items}:
                return DeliveryReceipt(self.name, channel=n.channel)
        return None

    async def aclose(self) -> None:
        """Nothing to close."""

    @property
    def keys(self) -> list[str]:
        """Alert keys in the order they were delivered."""
        return [i.key for n in self.sent for i in n.items]
