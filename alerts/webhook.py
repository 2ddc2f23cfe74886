"""Slack Incoming Webhook receiver: the simple alternative to the Web API (no token/threads/read-back).

Trade-off: a webhook cannot read the channel back, so :meth:`WebhookNotifier.find_delivered` always
returns None. The outbox marks a notification *sending* before calling :meth:`send`; after a crash in
that window it cannot tell whether Slack got the message and does not send it again, so webhook
delivery is **at most once** (a crash mid-send may lose that one message, never duplicate it), also
with ``alerts.jsonl_path``: the audit file is written after the POST, on the sending daemon's disk,
so it cannot prove a message missing and a tee reconciles only when its primary receiver can.
Incident updates cannot edit the root or reply in its thread: each update is posted as a new message
showing the incident as of that update. The webhook URL is the secret: it never appears in errors or logs.
"""

from __future__ import annotations

import logging
from datetime import datetime

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerts.model import DeliveryReceipt, Notification
from alerts.render import render_blocks, render_text
from alerts.slack import (
    FATAL_ERRORS,
    SlackDeliveryError,
    parse_retry_after,
    redact,
    retry_handlers,
    sdk_logger,
    to_delivery_error,
)

__all__ = ["WebhookNotifier"]

logger = logging.getLogger(__name__)


class WebhookNotifier:
    """Posts notifications to one channel through a Slack Incoming Webhook URL."""

    name = "webhook"
    #: find_delivered() cannot tell, so a send interrupted by a crash is not repeated (at most once).
    reconciles = False

    def __init__(
        self,
        url: str,
        *,
        timeout: int = 15,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_inline_wait: float = 5.0,
    ) -> None:
        if not url or not url.startswith(("https://", "http://")):
            raise ValueError("Slack webhook URL must be an http(s) URL")
        self._secrets = (url,)
        self._client = AsyncWebhookClient(
            url,
            timeout=timeout,
            retry_handlers=retry_handlers(max_retries, retry_backoff, max_inline_wait),
            logger=sdk_logger("repmon.alerts.webhook.sdk"),
        )

    def __repr__(self) -> str:
        return "WebhookNotifier(url=***)"

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """POST the rendered message; 429/5xx are retryable, 4xx (no_service, invalid_token…) final."""
        try:
            resp = await self._client.send(
                text=render_text(notification),
                blocks=render_blocks(notification),
                unfurl_links=False,
                unfurl_media=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            err = to_delivery_error(exc, "webhook", self._secrets)
            logger.debug("webhook delivery failed: %s", err)
            raise err from None
        status, body = resp.status_code, (resp.body or "").strip()
        if status == 200:
            return DeliveryReceipt(self.name, message_ts=None, channel=notification.channel)
        code = redact(body, self._secrets)[:80] or None
        if status == 429:
            wait = parse_retry_after(resp.headers)
            err = SlackDeliveryError(
                f"webhook: rate limited by Slack (retry after {wait if wait is not None else '?'} s)",
                retryable=True,
                retry_after=wait if wait is not None else 1.0,
                code="rate_limited",
                status=status,
            )
        elif status >= 500:
            err = SlackDeliveryError(
                f"webhook: Slack server error (HTTP {status})", retryable=True, status=status
            )
        else:
            # 4xx (invalid_token, no_service, channel_is_archived, invalid_payload…) do not heal.
            retryable = status == 408 or not (400 <= status < 500 or (code or "") in FATAL_ERRORS)
            err = SlackDeliveryError(
                f"webhook: Slack refused the message: {code or 'no body'} (HTTP {status})",
                retryable=retryable,
                code=code,
                status=status,
            )
        logger.log(logging.DEBUG if err.retryable else logging.WARNING, "webhook delivery failed: %s", err)
        raise err

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Always None: a webhook cannot read the channel back (delivery is at most once, see module doc)."""
        return None

    async def aclose(self) -> None:
        """Nothing to release: slack_sdk opens a short-lived HTTP session per call."""
