"""Button clicks: parsing block_actions payloads, and the Socket Mode round trip against the mock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.interactions import ActionEvent, SocketModeInteractions, parse_block_action
from alerts.model import DeliveryError, Notification
from alerts.slack import SlackNotifier
from tests.mock_slack import (
    APP_TOKEN,
    BOT_TOKEN,
    MockSlack,
    block_actions_payload,
    mention_item,
    notification,
)


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


def test_parse_block_action() -> None:
    event = parse_block_action(block_actions_payload(42, "claim"))
    assert event == ActionEvent(
        alert_id=42,
        action="claim",
        user_id="U0ALICE",
        user_name="alice",
        channel_id="C0WEBCARE1",
        message_ts="1700000000.000100",
        at=datetime(2023, 11, 14, 22, 15, 23, 456789, tzinfo=UTC),
    )
    assert event.user == "alice"


@pytest.mark.parametrize("action", ["claim", "handled", "not_relevant", "wrong_sentiment"])
def test_parse_every_action(action: str) -> None:
    event = parse_block_action(block_actions_payload(7, action))
    assert event is not None and event.action == action and event.alert_id == 7


def _mutate(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    act = {**payload["actions"][0], **changes}
    return {**payload, "actions": [act]}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"type": "view_submission"},
        {**block_actions_payload(1, "claim"), "type": "message_action"},
        _mutate(block_actions_payload(1, "claim"), action_id="other_app:claim"),
        _mutate(block_actions_payload(1, "claim"), action_id="repmon:delete_everything"),
        _mutate(block_actions_payload(1, "claim"), value="1; DROP TABLE alerts"),
        _mutate(block_actions_payload(1, "claim"), value="-1"),
        _mutate(block_actions_payload(1, "claim"), value="9" * 40),
        _mutate(block_actions_payload(1, "claim"), value=None),
        {**block_actions_payload(1, "claim"), "user": {}},
        {**block_actions_payload(1, "claim"), "user": "U1"},
        {**block_actions_payload(1, "claim"), "actions": "nope"},
        {**block_actions_payload(1, "claim"), "actions": ["nope"]},
    ],
)
def test_parse_rejects_foreign_or_malformed_payloads(payload: dict[str, Any]) -> None:
    assert parse_block_action(payload) is None


def test_parse_falls_back_to_channel_message_and_user_id() -> None:
    payload = block_actions_payload(3, "handled")
    del payload["container"]
    payload["user"] = {"id": "U0BOB"}
    payload["actions"][0]["action_ts"] = "garbage"
    event = parse_block_action(payload)
    assert event is not None
    assert (event.channel_id, event.message_ts, event.user, event.at) == (
        "C0WEBCARE1",
        "1700000000.000100",
        "U0BOB",
        None,
    )


def test_parse_picks_our_action_among_others() -> None:
    payload = block_actions_payload(9, "handled")
    foreign = {**payload["actions"][0], "action_id": "someone_else"}
    payload["actions"] = [foreign, *payload["actions"]]
    event = parse_block_action(payload)
    assert event is not None and event.action == "handled"


async def test_socket_mode_click_is_acked_recorded_and_reflected(
    slack: MockSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receipt = await SlackNotifier(BOT_TOKEN, slack.api_url).send(notification(mention_item(42)))
    assert receipt.message_ts
    clicks: list[tuple[int, str, str, datetime]] = []
    done = asyncio.Event()

    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        clicks.append((alert_id, action, user, at))
        done.set()
        return notification(replace(mention_item(42), claimed_by=user))

    interactions = SocketModeInteractions(APP_TOKEN, BOT_TOKEN, slack.api_url, on_action, ping_interval=1)
    await interactions.start()
    try:
        payload = block_actions_payload(42, "claim", message_ts=receipt.message_ts)
        envelope = await slack.push_interactive(payload)
        await slack.wait_ack(envelope)
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(100):  # the chat.update follows the callback
            if slack.updates:
                break
            await asyncio.sleep(0.01)
    finally:
        await interactions.aclose()

    assert slack.acks[0] == {"envelope_id": envelope}
    assert clicks == [(42, "claim", "alice", datetime(2023, 11, 14, 22, 15, 23, 456789, tzinfo=UTC))]
    (update,) = slack.updates
    assert update["channel"] == "C0WEBCARE1" and update["ts"] == receipt.message_ts
    assert "Claimed by *alice*" in str(update["blocks"])
    assert "repmon:claim" not in str(update["blocks"])
    (open_call,) = slack.method_calls("apps.connections.open")
    assert APP_TOKEN not in str(open_call)  # sent as the Authorization header, not a parameter
    assert APP_TOKEN not in caplog.text and BOT_TOKEN not in caplog.text


async def test_failing_callback_is_logged_and_listener_survives(slack: MockSlack) -> None:
    calls = 0

    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"db down (token {BOT_TOKEN})")
        return None

    interactions = SocketModeInteractions(APP_TOKEN, BOT_TOKEN, slack.api_url, on_action, ping_interval=1)
    await interactions.start()
    try:
        for _ in range(2):
            await slack.wait_ack(await slack.push_interactive(block_actions_payload(5, "handled")))
        for _ in range(100):
            if calls == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await interactions.aclose()
    assert calls == 2 and len(slack.acks) == 2 and not slack.updates


async def test_handle_uses_clock_when_payload_has_no_time(slack: MockSlack) -> None:
    seen: list[datetime] = []

    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        seen.append(at)
        return None

    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    interactions = SocketModeInteractions(APP_TOKEN, BOT_TOKEN, slack.api_url, on_action, clock=lambda: fixed)
    event = ActionEvent(1, "claim", "U1", None, None, None, None)
    assert await interactions.handle(event) is None
    assert seen == [fixed]


def test_requires_app_token() -> None:
    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        return None

    with pytest.raises(ValueError):
        SocketModeInteractions(BOT_TOKEN, BOT_TOKEN, "http://x/api/", on_action)


async def test_bad_app_token_fails_fast(slack: MockSlack) -> None:
    async def on_action(alert_id: int, action: str, user: str, at: datetime) -> Notification | None:
        return None

    interactions = SocketModeInteractions("xapp-wrong", BOT_TOKEN, slack.api_url, on_action)
    with pytest.raises(DeliveryError) as info:
        await asyncio.wait_for(interactions.start(), 5)
    assert not info.value.retryable and "xapp-wrong" not in str(info.value)
    await interactions.aclose()
