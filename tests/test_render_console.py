"""The console and JSONL receivers show the same content as Slack (derived from the same blocks)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.console import ConsoleNotifier, JsonlNotifier, mrkdwn_to_text
from alerts.render import render_blocks, render_text
from tests.mock_slack import mention_item, notification, ops_item, spike_item


async def _console(n: object, **kw: object) -> str:
    out = io.StringIO()
    await ConsoleNotifier(out, color=False, width=120, **kw).send(n)  # type: ignore[arg-type]
    return out.getvalue()


async def test_console_shows_what_slack_shows() -> None:
    text = await _console(notification(mention_item(claimed_by="alice")))
    for expected in (
        "🌟 Praise · Acme",
        "Untagged praise",
        "│ Loving the new app from @",
        "Author: @",
        "Reach: 12.3k followers",
        "Source: X (https://x.com/jdoe/status/1790000000000000001)",
        "Posted: 2024-05-01 14:03 UTC",
        "Scores: positive 0.93 · complaint 0.04",
        "Why: positive 0.93",
        "Claimed by alice",
        "[✅ Handled]",
        "→ #webcare",
    ):
        assert expected in text, expected
    assert "*" not in text and "<!date" not in text and "\x1b" not in text


async def test_console_spike_ops_and_thread_update() -> None:
    spike = await _console(notification(spike_item("raise")))
    assert "🚨 Spike · Acme (level 1)" in spike and "Top terms: outage · refund · login" in spike
    resolved = await _console(notification(spike_item("resolve"), thread_ts="1.1"))
    assert "✅ Spike resolved · Acme" in resolved and "(thread update)" in resolved
    ops = await _console(notification(ops_item()))
    assert "Source x disabled" in ops and "error=auth · source=x" in ops


async def test_console_colours_per_kind() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier(out, color=True, width=100)
    await notifier.send(notification(mention_item(kind="complaint")))
    assert "\x1b[33m" in out.getvalue()  # yellow border for complaints
    out.truncate(0)
    await notifier.send(notification(spike_item("raise")))
    assert "\x1b[31m" in out.getvalue()  # red for spikes


async def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    notifier = ConsoleNotifier(color=False)
    await notifier.send(notification())
    assert "Praise · Acme" in capsys.readouterr().out
    assert await notifier.find_delivered(notification(), datetime.now(UTC)) is None


def test_mrkdwn_to_text_unescapes_only_our_markup() -> None:
    text = mrkdwn_to_text("*Bold* &lt;!channel&gt; &amp; <https://a.nl/?x=1&amp;y=2|link> `code`\n>quote")
    assert text.plain == "Bold <!channel> & link (https://a.nl/?x=1&y=2) code\n│ quote"
    assert any(span.style == "bold" for span in text.spans)


async def test_jsonl_writes_one_record_per_notification(tmp_path: Path) -> None:
    path = tmp_path / "a" / "alerts.jsonl"
    notifier = JsonlNotifier(path)
    n = notification(mention_item(1), mention_item(2))
    receipt = await notifier.send(n)
    await notifier.send(notification(spike_item("raise")))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["alert_keys"] == ["praise:x:1", "praise:x:2"]
    assert record["channel"] == "#webcare" and record["text"] == render_text(n)
    assert record["blocks"] == render_blocks(n)
    assert record["message_ts"] == receipt.message_ts


async def test_jsonl_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    since = datetime.now(UTC)
    n = notification(mention_item(1))
    line = json.dumps({"metadata": {"event_type": "repmon_alert"}})
    path.write_text(line[:20])  # kill -9 mid-write
    notifier = JsonlNotifier(path)
    assert await notifier.find_delivered(n, since) is None  # a torn record is not a delivery
    await notifier.send(n)
    assert len(list(notifier.records())) == 1
    assert await JsonlNotifier(path).find_delivered(n, since) is not None


async def test_jsonl_find_delivered_respects_since_and_thread(tmp_path: Path) -> None:
    notifier = JsonlNotifier(tmp_path / "alerts.jsonl")
    raised = await notifier.send(notification(spike_item("raise")))
    escalate = notification(spike_item("escalate"), thread_ts=raised.message_ts)
    receipt = await notifier.send(escalate)
    assert receipt.message_ts == raised.message_ts  # updates keep the incident's root id
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert await notifier.find_delivered(escalate, since) == receipt
    assert await notifier.find_delivered(escalate, datetime.now(UTC) + timedelta(minutes=1)) is None
    naive = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    assert await notifier.find_delivered(escalate, naive) == receipt


async def test_jsonl_concurrent_sends_do_not_interleave(tmp_path: Path) -> None:
    notifier = JsonlNotifier(tmp_path / "alerts.jsonl", fsync=False)
    await asyncio.gather(*(notifier.send(notification(mention_item(i))) for i in range(50)))
    records = list(notifier.records())
    assert sorted(r["alert_ids"][0] for r in records) == list(range(50))
    assert len({r["ts"] for r in records}) == 50
