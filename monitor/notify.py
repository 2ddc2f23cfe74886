"""Choosing the receiver: Slack Web API when a bot token is set, a webhook when one is set, else
the console (the embedded default); optionally every delivered alert is also appended to JSONL."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from alerts.model import DeliveryReceipt, Notification, Notifier
from config.settings import Settings

__all__ = ["TeeNotifier", "build_notifier"]

log = logging.getLogger("repmon.notify")


class TeeNotifier:
    """Sends to a primary receiver and then records to a JSONL audit file."""

    def __init__(self, primary: Notifier, audit: Notifier) -> None:
        self.primary = primary
        self.audit = audit
        self.name = primary.name
        # Only the primary can say whether a message arrived: the audit line is written after the
        # primary's answer, to a file that is local to one daemon, so its absence proves nothing
        # (killed between the two, or another daemon's file). A webhook or console primary stays
        # at most once with an audit file; the file can still confirm a send (see find_delivered).
        self.reconciles = bool(getattr(primary, "reconciles", False))

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Deliver to the primary receiver, then append to the audit file."""
        receipt = await self.primary.send(notification)
        await self.audit.send(notification)
        return receipt

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Ask the primary receiver, then the audit file."""
        found = await self.primary.find_delivered(notification, since)
        if found is None:
            found = await self.audit.find_delivered(notification, since)
            if found is not None:
                found = DeliveryReceipt(
                    receiver=self.primary.name, message_ts=found.message_ts, channel=found.channel
                )
        return found

    async def aclose(self) -> None:
        """Close both receivers."""
        await self.primary.aclose()
        await self.audit.aclose()

    def __getattr__(self, name: str) -> Any:
        # Receiver-specific extras (SlackNotifier.update_message) are the primary's.
        return getattr(self.primary, name)


def build_notifier(settings: Settings, env: Mapping[str, str], *, stream: TextIO | None = None) -> Notifier:
    """The receiver the configuration and environment ask for."""
    from alerts.console import ConsoleNotifier, JsonlNotifier

    slack = settings.slack
    primary: Notifier
    token = env.get(slack.token_env, "").strip()
    webhook = env.get(slack.webhook_url_env, "").strip()
    if token:
        from alerts.slack import SlackNotifier

        primary = SlackNotifier(token, api_url=slack.api_url)
        log.info("alerts go to Slack (%s)", slack.api_url)
    elif webhook:
        from alerts.webhook import WebhookNotifier

        primary = WebhookNotifier(webhook)
        log.info("alerts go to a Slack incoming webhook")
    elif not settings.alerts.console and settings.alerts.jsonl_path:
        log.info("no Slack credentials and console off: alerts are written to %s", settings.alerts.jsonl_path)
        return JsonlNotifier(Path(settings.alerts.jsonl_path))
    else:
        primary = ConsoleNotifier(stream=stream)
        log.info(
            "no Slack credentials (%s / %s): alerts render on the console",
            slack.token_env,
            slack.webhook_url_env,
        )
    if settings.alerts.jsonl_path:
        return TeeNotifier(primary, JsonlNotifier(Path(settings.alerts.jsonl_path)))
    return primary
