"""Button clicks over Socket Mode (no public URL needed): claim / handled / not relevant / wrong sentiment.

Each envelope is acknowledged at once (Slack expects an ack within 3 s), then the click is parsed,
recorded through the ``on_action`` callback (which writes who/when to the database and returns the
re-rendered notification) and the message is updated in place with ``chat.update``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from alerts.model import ACTIONS, DeliveryError, Notification
from alerts.render import ACTION_PREFIX
from alerts.slack import (
    DEFAULT_API_URL,
    SlackNotifier,
    redact,
    retry_handlers,
    sdk_logger,
    to_delivery_error,
)

__all__ = ["ActionCallback", "ActionEvent", "SocketModeInteractions", "parse_block_action"]

logger = logging.getLogger(__name__)

#: ``on_action(alert_id, action, user, at)``: record the click; return the re-rendered message (or None).
ActionCallback = Callable[[int, str, str, datetime], Awaitable[Notification | None]]


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One click on one of our alert buttons."""

    alert_id: int
    action: str
    user_id: str
    user_name: str | None
    channel_id: str | None
    message_ts: str | None
    at: datetime | None

    @property
    def user(self) -> str:
        """Who clicked, as shown in the message: the Slack user name, else the user id."""
        return self.user_name or self.user_id


def _ts_to_datetime(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_block_action(payload: Mapping[str, Any]) -> ActionEvent | None:
    """The click in a ``block_actions`` payload if on a ``repmon:<action>`` button, else None."""
    if not isinstance(payload, Mapping) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list):
        return None
    user = payload.get("user") if isinstance(payload.get("user"), Mapping) else {}
    assert isinstance(user, Mapping)
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        return None
    container = payload.get("container") if isinstance(payload.get("container"), Mapping) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), Mapping) else {}
    message = payload.get("message") if isinstance(payload.get("message"), Mapping) else {}
    assert isinstance(container, Mapping) and isinstance(channel, Mapping) and isinstance(message, Mapping)
    for act in actions:
        if not isinstance(act, Mapping):
            continue
        action_id = act.get("action_id")
        if not isinstance(action_id, str) or not action_id.startswith(ACTION_PREFIX):
            continue
        action = action_id.removeprefix(ACTION_PREFIX)
        value = act.get("value")
        if action not in ACTIONS or not isinstance(value, str) or not value.isdigit() or len(value) > 18:
            continue
        name = user.get("username") or user.get("name")
        return ActionEvent(
            alert_id=int(value),
            action=action,
            user_id=user_id,
            user_name=str(name) if name else None,
            channel_id=container.get("channel_id") or channel.get("id"),
            message_ts=container.get("message_ts") or message.get("ts"),
            at=_ts_to_datetime(act.get("action_ts")),
        )
    return None


class SocketModeInteractions:
    """Receives block_actions over Socket Mode, records them via ``on_action`` and updates the message."""

    def __init__(
        self,
        app_token: str,
        bot_token: str,
        api_url: str = DEFAULT_API_URL,
        on_action: ActionCallback | None = None,
        *,
        ping_interval: float = 10,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not app_token.startswith("xapp-"):
            raise ValueError("Socket Mode needs an app-level token (xapp-…)")
        if on_action is None:
            raise ValueError("on_action callback is required")
        self._secrets = (app_token, bot_token)
        self._app_token = app_token
        self._api_url = api_url
        self._on_action = on_action
        self._ping_interval = ping_interval
        self._clock = clock or (lambda: datetime.now(UTC))
        self._notifier = SlackNotifier(bot_token, api_url)
        self._client: SocketModeClient | None = None
        self._tasks: set[asyncio.Task[Notification | None]] = set()

    def __repr__(self) -> str:
        return f"SocketModeInteractions(api_url={self._api_url!r})"

    async def start(self) -> None:
        """Open the Socket Mode connection; a bad app token raises a final :class:`DeliveryError`."""
        self._client = SocketModeClient(
            app_token=self._app_token,
            web_client=AsyncWebClient(
                base_url=self._api_url,
                retry_handlers=retry_handlers(),
                logger=sdk_logger("repmon.alerts.socket.sdk"),
            ),
            logger=sdk_logger("repmon.alerts.socket.sdk"),
            ping_interval=self._ping_interval,
        )
        self._client.socket_mode_request_listeners.append(self._on_request)
        # Open the first connection ourselves: slack_sdk's connect() retries a bad app token forever.
        try:
            resp = await self._client.web_client.apps_connections_open(app_token=self._app_token)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            await self._client.close()
            self._client = None
            raise to_delivery_error(exc, "apps.connections.open", self._secrets) from None
        self._client.wss_uri = str(resp["url"])
        await self._client.connect()

    async def _on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        # Ack first: Slack retries an unacknowledged envelope, and the user sees an error after 3 s.
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        if req.type != "interactive":
            return
        event = parse_block_action(req.payload)
        if event is None:
            return
        task = asyncio.create_task(self.handle(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, event: ActionEvent) -> Notification | None:
        """Record one click via ``on_action`` and reflect the new state in the message."""
        at = event.at or self._clock()
        try:
            updated = await self._on_action(event.alert_id, event.action, event.user, at)
        except Exception as exc:  # noqa: BLE001 - one bad click must not stop the listener
            logger.error(
                "recording %s on alert %s failed: %s",
                event.action,
                event.alert_id,
                redact(f"{type(exc).__name__}: {exc}", self._secrets),
            )
            return None
        if updated is not None and event.channel_id and event.message_ts:
            try:
                await self._notifier.update_message(event.channel_id, event.message_ts, updated)
            except DeliveryError as exc:
                logger.warning("could not update the alert message after %s: %s", event.action, exc)
        return updated

    async def aclose(self) -> None:
        """Close the websocket and wait for clicks being handled."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        await self._notifier.aclose()
