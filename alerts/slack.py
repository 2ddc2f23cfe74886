"""Slack Web API receiver: Block Kit alerts, incident threads, reconciliation after a crash, file uploads.

Retries are deliberately short: slack_sdk's retry handlers absorb a brief 429 (when ``Retry-After`` is
small), a 5xx blip or a dropped connection; anything longer surfaces as a retryable
:class:`~alerts.model.DeliveryError` and the persisted outbox retries later. Secrets (the token) never
appear in an exception message or a log record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from alerts.model import DeliveryError, DeliveryReceipt, Notification
from alerts.render import (
    alert_metadata,
    metadata_matches,
    render_blocks,
    render_text,
    render_update_blocks,
    render_update_text,
)

__all__ = [
    "FATAL_ERRORS",
    "BoundedRateLimitRetryHandler",
    "ServerErrorRetryHandler",
    "SlackDeliveryError",
    "SlackNotifier",
    "redact",
    "retry_handlers",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"

#: Slack error codes that no retry will fix: bad credentials, missing access, bad request.
FATAL_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
        "team_access_not_granted",
        "org_login_required",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "thread_not_found",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "action_prohibited",
        "channel_is_archived",
        "posting_to_general_channel_denied",
        "invalid_payload",
        "user_not_found",
    }
)
_ROOT_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
_TOKEN_RE = re.compile(r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")
_WEBHOOK_RE = re.compile(r"/services/[A-Za-z0-9/_-]+")
_CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets (and anything shaped like a Slack token or webhook path) from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _TOKEN_RE.sub("xox?-***", text)
    return _WEBHOOK_RE.sub("/services/***", text)


class SlackDeliveryError(DeliveryError):
    """A :class:`DeliveryError` that also carries Slack's error code and the HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.code = code
        self.status = status


def parse_retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (any case; list or str values), or None."""
    if not headers:
        return None
    for key in headers:
        if str(key).lower() == "retry-after":
            value = headers[key]
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class BoundedRateLimitRetryHandler(AsyncRetryHandler):
    """Retries a 429 in-process only if ``Retry-After`` ≤ ``max_wait``; longer waits go to the outbox."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 5.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = parse_retry_after(response.headers)
        return (wait if wait is not None else 1.0) <= self.max_wait

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = parse_retry_after(response.headers if response is not None else None)
        wait = 1.0 if wait is None else wait
        state.next_attempt_requested = True
        # Honour Retry-After exactly, plus a little jitter so several daemons do not retry in lockstep.
        await asyncio.sleep(wait + random.uniform(0, min(0.1 * wait, 1.0)))
        state.increment_current_attempt()


class ServerErrorRetryHandler(AsyncServerErrorRetryHandler):
    """Retries any 5xx (Slack answers 500/502/503/504 during incidents), with exponential backoff."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


class ProportionalJitter(Jitter):
    """Adds up to ``fraction`` of the delay (slack_sdk's default adds up to a whole second, even to 10 ms)."""

    def __init__(self, fraction: float = 0.5) -> None:
        self.fraction = fraction

    def recalculate(self, duration: float) -> float:
        """The delay plus a random share of it."""
        return duration * (1 + random.uniform(0, self.fraction))


def retry_handlers(
    max_retries: int = 2, backoff: float = 0.5, max_wait: float = 5.0
) -> list[AsyncRetryHandler]:
    """slack_sdk retry handlers with a small, bounded number of in-process retries."""
    calc = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=ProportionalJitter())
    return [
        BoundedRateLimitRetryHandler(max_retry_count=max_retries, max_wait=max_wait),
        ServerErrorRetryHandler(max_retry_count=max_retries, interval_calculator=calc),
        AsyncConnectionErrorRetryHandler(
            max_retry_count=max_retries,
            interval_calculator=calc,
            error_types=[
                aiohttp.ServerConnectionError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError,
            ],
        ),
    ]


def sdk_logger(name: str) -> logging.Logger:
    """A quiet logger for slack_sdk: below INFO it would dump request bodies and (webhooks) the secret URL."""
    log = logging.getLogger(name)
    if log.level == logging.NOTSET or log.level < logging.INFO:
        log.setLevel(logging.WARNING)
    return log


def _error_code(exc: SlackApiError) -> tuple[str | None, int | None]:
    response = exc.response
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    return (str(code) if code else None), status


def to_delivery_error(exc: BaseException, what: str, secrets: Iterable[str] = ()) -> SlackDeliveryError:
    """Map a slack_sdk/aiohttp failure of ``what`` to a retryable or final, secret-free DeliveryError."""
    if isinstance(exc, SlackApiError):
        code, status = _error_code(exc)
        headers = getattr(exc.response, "headers", None)
        if status == 429 or code == "ratelimited":
            wait = parse_retry_after(headers) if headers is not None else None
            return SlackDeliveryError(
                f"{what}: rate limited by Slack (retry after {wait if wait is not None else '?'} s)",
                retryable=True,
                retry_after=wait if wait is not None else 1.0,
                code="ratelimited",
                status=status,
            )
        if status is not None and status >= 500:
            return SlackDeliveryError(
                f"{what}: Slack server error (HTTP {status})", retryable=True, code=code, status=status
            )
        retryable = code not in FATAL_ERRORS if code else status not in (400, 401, 403, 404, 410)
        message = redact(f"{what}: Slack error {code or 'unknown'} (HTTP {status})", secrets)
        return SlackDeliveryError(message, retryable=retryable, code=code, status=status)
    if isinstance(exc, SlackRequestError):
        # Raised by files_upload_v2 when the upload URL answered non-200: transient on Slack's side.
        text = redact(str(exc).split("\n", 1)[0], secrets)[:300]
        return SlackDeliveryError(f"{what}: {text}", retryable=text.startswith("Failed to upload"))
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError | SlackClientError):
        detail = redact(str(exc), secrets)[:200]
        return SlackDeliveryError(
            f"{what}: connection problem ({type(exc).__name__}{': ' + detail if detail else ''})",
            retryable=True,
        )
    return SlackDeliveryError(f"{what}: unexpected {type(exc).__name__}", retryable=False)


_EXPECTED = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class SlackNotifier:
    """Delivers notifications with the Slack Web API (chat.postMessage / chat.update / threads)."""

    name = "slack"
    #: find_delivered() can tell whether a notification arrived, so an unconfirmed one is re-sent.
    reconciles = True

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: int = 15,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_inline_wait: float = 5.0,
        broadcast_escalations: bool = True,
        history_pages: int = 10,
        clock_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        if not token or not token.strip():
            raise ValueError("Slack bot token is empty")
        self._secrets = (token.strip(),)
        self.api_url = api_url
        self._client = AsyncWebClient(
            token=token.strip(),
            base_url=api_url,
            timeout=timeout,
            retry_handlers=retry_handlers(max_retries, retry_backoff, max_inline_wait),
            logger=sdk_logger("repmon.alerts.slack.sdk"),
        )
        self._broadcast_escalations = broadcast_escalations
        self._history_pages = history_pages
        self._clock_skew = clock_skew
        self._channel_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SlackNotifier(api_url={self.api_url!r})"

    # ------------------------------------------------------------------ plumbing

    async def _call(self, what: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except _EXPECTED as exc:
            err = to_delivery_error(exc, what, self._secrets)
        level = logging.DEBUG if err.retryable else logging.WARNING
        logger.log(level, "slack delivery failed: %s", err)
        raise err from None  # the SDK error holds request args (headers with the token): do not chain it

    async def resolve_channel(self, channel: str) -> str:
        """The channel id for ``#name`` or ``name`` (cached; conversations.list); ids pass through."""
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        if _CHANNEL_ID_RE.match(channel):
            return channel
        name = channel.lstrip("#")
        cursor: str | None = None
        for _ in range(50):
            resp = await self._call(
                "conversations.list",
                self._client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
                ),
            )
            for ch in resp.get("channels") or []:
                if ch.get("name") == name:
                    self._channel_ids[channel] = ch["id"]
                    return str(ch["id"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        raise SlackDeliveryError(
            f"channel {name!r} not found (is the app invited to it?)",
            retryable=False,
            code="channel_not_found",
        )

    async def _post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], **kw: Any
    ) -> AsyncSlackResponse:
        resp = await self._call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                link_names=False,
                **kw,
            ),
        )
        if resp.get("channel") and not _CHANNEL_ID_RE.match(channel):
            self._channel_ids.setdefault(channel, str(resp["channel"]))
        return resp

    # ------------------------------------------------------------------ Notifier

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Post a new message (the root of a raised incident's thread) or update an incident."""
        blocks, text = render_blocks(notification), render_text(notification)
        metadata = alert_metadata(notification)
        if notification.thread_ts:
            return await self._send_incident_update(notification, blocks, text, metadata)
        resp = await self._post(notification.channel, text, blocks, metadata=metadata)
        return DeliveryReceipt(self.name, message_ts=str(resp["ts"]), channel=str(resp["channel"]))

    async def _send_incident_update(
        self, n: Notification, blocks: list[dict[str, Any]], text: str, metadata: dict[str, Any]
    ) -> DeliveryReceipt:
        assert n.thread_ts is not None
        channel = n.thread_channel or await self.resolve_channel(n.channel)
        try:  # the root shows the incident as of this update (the latest one: updates go in order) ...
            await self._call(
                "chat.update",
                self._client.chat_update(channel=channel, ts=n.thread_ts, text=text, blocks=blocks),
            )
        except SlackDeliveryError as exc:
            if exc.code not in _ROOT_GONE:
                raise
            # The root was deleted or can no longer be edited: start a fresh root with this update's state.
            logger.info(
                "incident root %s in %s is gone (%s); posting a new root", n.thread_ts, channel, exc.code
            )
            resp = await self._post(channel, text, blocks, metadata=metadata)
            return DeliveryReceipt(self.name, message_ts=str(resp["ts"]), channel=str(resp["channel"]))
        # ... and a thread reply says what changed. It carries the metadata, so it is the delivery marker.
        broadcast = self._broadcast_escalations and any(i.event == "escalate" for i in n.items)
        await self._post(
            channel,
            render_update_text(n),
            render_update_blocks(n),
            thread_ts=n.thread_ts,
            reply_broadcast=broadcast or None,
            metadata=metadata,
        )
        return DeliveryReceipt(self.name, message_ts=n.thread_ts, channel=channel)

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Search the channel (and incident thread) since ``since`` for a message with our metadata."""
        n = notification
        channel = (
            n.thread_channel if (n.thread_ts and n.thread_channel) else await self.resolve_channel(n.channel)
        )
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)  # naive means UTC
        oldest = f"{(since - self._clock_skew).timestamp():.6f}"
        if n.thread_ts:
            async for msg in self._messages("conversations.replies", channel, oldest, ts=n.thread_ts):
                if msg.get("ts") != n.thread_ts and metadata_matches(msg.get("metadata"), n):
                    return DeliveryReceipt(self.name, message_ts=n.thread_ts, channel=channel)
        async for msg in self._messages("conversations.history", channel, oldest):
            if metadata_matches(msg.get("metadata"), n):
                return DeliveryReceipt(self.name, message_ts=str(msg["ts"]), channel=channel)
        return None

    async def _messages(self, method: str, channel: str, oldest: str, ts: str | None = None) -> Any:
        cursor: str | None = None
        for _ in range(self._history_pages):
            if method == "conversations.replies":
                assert ts is not None
                call = self._client.conversations_replies(
                    channel=channel, ts=ts, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                )
            else:
                call = self._client.conversations_history(
                    channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                )
            resp = await self._call(method, call)
            for msg in resp.get("messages") or []:
                yield msg
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                return

    async def aclose(self) -> None:
        """Nothing to release: slack_sdk opens a short-lived HTTP session per call."""
        if self._client.session is not None and not self._client.session.closed:
            await self._client.session.close()

    # ------------------------------------------------------------------ extras

    async def auth_test(self) -> dict[str, Any]:
        """Check the token (for ``repmon check``): team, bot user and workspace URL."""
        resp = await self._call("auth.test", self._client.auth_test())
        keys = ("url", "team", "team_id", "user", "user_id", "bot_id")
        return {k: resp.get(k) for k in keys if resp.get(k) is not None}

    async def update_message(self, channel: str, ts: str, notification: Notification) -> DeliveryReceipt:
        """Re-render a message in place (e.g. after a button click changed an alert's state)."""
        channel_id = await self.resolve_channel(channel)
        await self._call(
            "chat.update",
            self._client.chat_update(
                channel=channel_id, ts=ts, text=render_text(notification), blocks=render_blocks(notification)
            ),
        )
        return DeliveryReceipt(self.name, message_ts=ts, channel=channel_id)

    async def upload_file(
        self,
        channel: str,
        content: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        title: str | None = None,
        initial_comment: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Share a file (e.g. the digest chart) via files_upload_v2; returns its file id.

        ``initial_comment`` is sent as mrkdwn as given: escape untrusted parts with :mod:`alerts.escape`.
        """
        if isinstance(content, bytes):
            data, name = content, filename or "file"
        else:
            path = Path(content)
            data, name = await asyncio.to_thread(path.read_bytes), filename or path.name
        channel_id = await self.resolve_channel(channel)
        resp = await self._call(
            "files.upload",
            self._client.files_upload_v2(
                file=data,
                filename=name,
                title=title or name,
                channel=channel_id,
                initial_comment=initial_comment,
                thread_ts=thread_ts,
            ),
        )
        files = resp.get("files") or []
        return str(files[0]["id"]) if files else ""
