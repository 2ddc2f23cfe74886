"""Button clicks on Slack messages, end to end: delivered through the mock Slack, clicked over Socket Mode.

A spike incident is one root message that every escalation updates in place, so a click on it must
re-render the incident (as of its latest delivered update, with the click shown), not every alert
that ever shared the root's ts; and the click must count in the digest's team handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alerts.console import JsonlNotifier
from alerts.digest import build_digest
from alerts.interactions import SocketModeInteractions
from alerts.slack import SlackNotifier
from alerts.spikes import SpikeEvent
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.feedback import make_action_handler, record_action
from monitor.migrate import upgrade
from monitor.notify import TeeNotifier
from monitor.runtime import Runtime
from tests.mock_slack import APP_TOKEN, BOT_TOKEN, MockSlack, block_actions_payload
from tests.pipeline_util import T0, config_text, load, post, write_jsonl

NOW = T0 + timedelta(days=4, hours=1)


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, slack: MockSlack) -> AsyncIterator[Runtime]:
    replay = write_jsonl(
        tmp_path / "posts.jsonl",
        [
            post(1, "Acme Rail was brilliant today, thanks", minutes=4 * 24 * 60),
            post(2, "Lovely trip with Acme Rail, great staff", minutes=4 * 24 * 60 + 1),
        ],
    )
    rt = Runtime(
        load(config_text(f"sqlite:///{tmp_path / 'f.db'}", replay)),
        notifier=SlackNotifier(BOT_TOKEN, slack.api_url, retry_backoff=0.01),
        classifier=StubClassifier(),
        clock=FakeClock(NOW),
        env={},
    )
    upgrade(rt.db)
    try:
        yield rt
    finally:
        await rt.aclose()


def _spike(runtime: Runtime, kind: str, count: float, level: int, minutes: int) -> None:
    """One detector event for Acme Rail's negative volume, handled by the spike stage."""
    start = NOW - timedelta(hours=1)
    at = start + timedelta(minutes=minutes)
    with runtime.db.session() as session:
        event = SpikeEvent(kind, at, count, 1.0, level, start, count, at)  # type: ignore[arg-type]
        runtime.spikes._handle(session, "Acme Rail", "negative", event, at)


async def _click(runtime: Runtime, slack: MockSlack, alert_id: int, action: str, ts: str) -> dict[str, Any]:
    """Click ``action`` on alert ``alert_id``'s button in message ``ts``; the chat.update that follows."""
    before = len(slack.updates)
    interactions = SocketModeInteractions(
        APP_TOKEN,
        BOT_TOKEN,
        slack.api_url,
        make_action_handler(runtime.db, runtime.delivery),
        ping_interval=1,
    )
    await interactions.start()
    try:
        clicked_at = f"{(NOW + timedelta(minutes=5)).timestamp():.6f}"
        payload = block_actions_payload(alert_id, action, message_ts=ts, action_ts=clicked_at)
        await slack.wait_ack(await slack.push_interactive(payload))
        for _ in range(500):
            if len(slack.updates) > before:
                break
            await asyncio.sleep(0.01)
    finally:
        await interactions.aclose()
    assert len(slack.updates) == before + 1, "the click was not reflected with a chat.update"
    return slack.updates[-1]


def _field(blocks: list[dict[str, Any]], label: str) -> str:
    for block in blocks:
        for field in block.get("fields", []):
            head, _, value = field["text"].partition("\n")
            if head == f"*{label}*":
                return str(value)
    raise AssertionError(f"no {label} field in {blocks}")


def _header(blocks: list[dict[str, Any]]) -> str:
    return str(next(b["text"]["text"] for b in blocks if b["type"] == "header"))


def _button_values(blocks: list[dict[str, Any]]) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {}
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            values.setdefault(element["action_id"], set()).add(element["value"])
    return values


def _spike_alerts(runtime: Runtime) -> dict[str, models.Alert]:
    with runtime.db.session() as session:
        rows = session.execute(select(models.Alert).where(models.Alert.kind == "spike")).scalars()
        return {row.event: row for row in rows}


async def _raised_and_escalated(runtime: Runtime, slack: MockSlack) -> tuple[str, dict[str, models.Alert]]:
    """A crisis raised (count 11, level 1) and escalated (count 20, level 2) in Slack: the root's ts."""
    _spike(runtime, "raise", 11, 1, 0)
    await runtime.delivery.drain()
    _spike(runtime, "escalate", 20, 2, 30)
    await runtime.delivery.drain()
    (root,) = slack.roots("C0WEBCARE1")
    (escalated,) = slack.updates  # the escalation updated the root in place
    assert escalated["ts"] == root["ts"] and _field(escalated["blocks"], "Peak") == "20"
    alerts = _spike_alerts(runtime)
    assert {a.message_ts for a in alerts.values()} == {root["ts"]}
    return str(root["ts"]), alerts


@pytest.mark.parametrize("button_of", ["escalate", "raise"])
async def test_claim_on_incident_root_shows_latest_update_and_claim(
    runtime: Runtime, slack: MockSlack, button_of: str
) -> None:
    # The root carries the latest update's buttons; a client showing a stale root still has the raise's.
    ts, alerts = await _raised_and_escalated(runtime, slack)
    update = await _click(runtime, slack, alerts[button_of].id, "claim", ts)

    blocks = update["blocks"]
    assert update["ts"] == ts
    assert _header(blocks) == "🚨 Spike · Acme Rail (level 2)", "not the incident card"
    assert _field(blocks, "Peak") == "20" and _field(blocks, "Level") == "2"
    assert "*20* in the last window" in str(blocks)
    assert "Claimed by *alice*" in str(blocks)
    buttons = _button_values(blocks)
    assert "repmon:claim" not in buttons
    assert buttons["repmon:handled"] == {str(alerts["escalate"].id)}
    assert "20 negative mentions" in update["text"]


async def test_claim_on_incident_lands_where_the_digest_counts_it(runtime: Runtime, slack: MockSlack) -> None:
    # The digest counts an incident once, by its raise: a click on the root (whose buttons belong
    # to the latest update) is recorded there, so "claimed" and "handled" are not lost.
    ts, alerts = await _raised_and_escalated(runtime, slack)
    week = (NOW - timedelta(days=1), NOW + timedelta(days=1))
    await _click(runtime, slack, alerts["escalate"].id, "claim", ts)

    raised = _spike_alerts(runtime)["raise"]
    assert raised.claimed_by == "alice" and raised.claimed_at == NOW + timedelta(minutes=5)
    handling = build_digest(runtime.db, runtime.settings, "Acme Rail", *week).handling
    assert (handling.raised, handling.claimed, handling.handled) == (1, 1, 0)
    assert handling.claim_median == pytest.approx(5 * 60)

    await _click(runtime, slack, alerts["escalate"].id, "handled", ts)
    handling = build_digest(runtime.db, runtime.settings, "Acme Rail", *week).handling
    assert (handling.raised, handling.claimed, handling.handled, handling.open) == (1, 1, 1, 0)
    with runtime.db.session() as session:
        feedback = session.execute(select(models.Feedback.alert_id, models.Feedback.action)).all()
    assert feedback == [(alerts["escalate"].id, "claim"), (alerts["escalate"].id, "handled")]


async def test_update_after_a_claim_keeps_the_claim_on_the_root(runtime: Runtime, slack: MockSlack) -> None:
    ts, alerts = await _raised_and_escalated(runtime, slack)
    await _click(runtime, slack, alerts["escalate"].id, "claim", ts)

    _spike(runtime, "escalate", 35, 3, 45)
    await runtime.delivery.drain()
    root = slack.updates[-1]
    assert root["ts"] == ts and _field(root["blocks"], "Level") == "3"
    assert "Claimed by *alice*" in str(root["blocks"])
    assert "repmon:claim" not in _button_values(root["blocks"])


@pytest.mark.parametrize("audit_file", [False, True])
async def test_claim_racing_an_update_still_shows_on_the_root(
    runtime: Runtime, slack: MockSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, audit_file: bool
) -> None:
    """A click recorded after an update was rendered but before it reached Slack: the update would
    replace the root without the claim, so the root is rendered once more."""
    ts, alerts = await _raised_and_escalated(runtime, slack)
    if audit_file:  # alerts.jsonl_path: Slack behind a tee
        tee = TeeNotifier(runtime.delivery.notifier, JsonlNotifier(tmp_path / "audit.jsonl"))
        monkeypatch.setattr(runtime.delivery, "notifier", tee)
    render = runtime.delivery._notification
    clicked: list[int] = []

    def render_then_click(rows: list[models.Alert]) -> Any:
        notification = render(rows)
        if not clicked:  # the click lands while this update is on its way
            clicked.extend(record_action(runtime.db, alerts["raise"].id, "claim", "alice", NOW) or [])
        return notification

    monkeypatch.setattr(runtime.delivery, "_notification", render_then_click)
    _spike(runtime, "escalate", 35, 3, 45)
    await runtime.delivery.drain()

    assert clicked, "the click was not recorded"
    root = slack.updates[-1]
    assert root["ts"] == ts and _field(root["blocks"], "Level") == "3"
    assert "Claimed by *alice*" in str(root["blocks"]) and "Claimed by alice" in root["text"]
    assert "repmon:claim" not in _button_values(root["blocks"])


async def test_claim_in_a_grouped_message_rerenders_the_group(runtime: Runtime, slack: MockSlack) -> None:
    await runtime.run_once()
    (message,) = [m for m in slack.roots("C0WEBCARE1") if "praise" in _header(m["blocks"])]
    assert _header(message["blocks"]) == "🌟 2 praise alerts · Acme Rail"
    first, second = sorted(int(v) for v in _button_values(message["blocks"])["repmon:claim"])

    update = await _click(runtime, slack, first, "claim", str(message["ts"]))

    blocks = update["blocks"]
    assert update["ts"] == message["ts"] and _header(blocks) == "🌟 2 praise alerts · Acme Rail"
    assert str(blocks).count("Claimed by *alice*") == 1
    assert _button_values(blocks)["repmon:claim"] == {str(second)}
    with runtime.db.session() as session:
        claimed = session.execute(select(models.Alert.id).where(models.Alert.claimed_by == "alice")).scalars()
        assert list(claimed) == [first]


async def test_updates_after_a_deleted_root_edit_the_replacement_root(
    runtime: Runtime, slack: MockSlack
) -> None:
    # Someone deleted the crisis root: the next update posts a new root, and every update after
    # that must edit the new root instead of posting yet another one.
    _spike(runtime, "raise", 11, 1, 0)
    await runtime.delivery.drain()
    (old_root,) = slack.roots("C0WEBCARE1")
    slack.messages["C0WEBCARE1"].remove(old_root)

    _spike(runtime, "escalate", 20, 2, 30)
    await runtime.delivery.drain()
    (new_root,) = slack.roots("C0WEBCARE1")
    assert new_root["ts"] != old_root["ts"] and _field(new_root["blocks"], "Level") == "2"

    _spike(runtime, "escalate", 35, 3, 45)
    await runtime.delivery.drain()
    assert slack.roots("C0WEBCARE1") == [new_root], "a third root was posted"
    assert _field(new_root["blocks"], "Level") == "3", "the replacement root was not updated"
    with runtime.db.session() as session:
        group = session.execute(select(models.AlertGroup)).scalars().one()
        assert group.thread_ts == new_root["ts"]
