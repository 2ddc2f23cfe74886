"""SlackNotifier against the mock Slack Web API (through slack_sdk's base_url)."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.model import DeliveryError, Notifier
from alerts.render import render_blocks
from alerts.slack import SlackDeliveryError, SlackNotifier, redact
from tests.mock_slack import BOT_TOKEN, MockSlack, mention_item, notification, spike_item


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


def _notifier(slack: MockSlack, token: str = BOT_TOKEN, **kw: object) -> SlackNotifier:
    opts: dict = {"retry_backoff": 0.01, "max_inline_wait": 1.0, **kw}
    return SlackNotifier(token, slack.api_url, **opts)


@pytest.fixture
def notifier(slack: MockSlack) -> SlackNotifier:
    return _notifier(slack)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_is_a_notifier(notifier: SlackNotifier) -> None:
    assert isinstance(notifier, Notifier) and notifier.name == "slack"
    assert BOT_TOKEN not in repr(notifier)


async def test_post_message_with_blocks_text_and_metadata(slack: MockSlack, notifier: SlackNotifier) -> None:
    n = notification(mention_item(1), mention_item(2))
    receipt = await notifier.send(n)
    assert receipt.receiver == "slack" and receipt.channel == "C0WEBCARE1" and receipt.message_ts
    (call,) = slack.method_calls("chat.postMessage")
    assert call["channel"] == "#webcare"
    assert call["blocks"] == render_blocks(n)
    assert call["text"].startswith("2 praise alerts · Acme:")
    assert call["unfurl_links"] is False and call["unfurl_media"] is False and call["link_names"] is False
    assert call["metadata"]["event_type"] == "repmon_alert"
    assert call["metadata"]["event_payload"]["keys"] == ["praise:x:1", "praise:x:2"]
    (root,) = slack.roots("#webcare")
    assert root["ts"] == receipt.message_ts


async def test_incident_is_one_root_updated_in_place_plus_thread_replies(
    slack: MockSlack, notifier: SlackNotifier
) -> None:
    raised = await notifier.send(notification(spike_item("raise")))
    assert raised.message_ts and raised.channel == "C0WEBCARE1"
    for event in ("escalate", "resolve"):
        n = notification(spike_item(event), thread_ts=raised.message_ts, thread_channel=raised.channel)
        receipt = await notifier.send(n)
        assert receipt.message_ts == raised.message_ts  # the thread root stays the incident's handle

    (root,) = slack.roots("C0WEBCARE1")
    assert root["ts"] == raised.message_ts
    assert root["blocks"][0]["text"]["text"] == "✅ Spike resolved · Acme"  # current state
    assert len(slack.updates) == 2
    replies = slack.replies("C0WEBCARE1", raised.message_ts)
    assert [r["text"].split(" ")[:2] for r in replies] == [["📈", "Escalated"], ["✅", "Resolved"]]
    escalate_call, resolve_call = slack.method_calls("chat.postMessage")[1:]
    assert escalate_call["reply_broadcast"] is True and "reply_broadcast" not in resolve_call
    assert all(r["metadata"]["event_payload"]["events"] for r in replies)


async def test_thread_update_resolves_channel_name(slack: MockSlack, notifier: SlackNotifier) -> None:
    raised = await notifier.send(notification(spike_item("raise")))
    fresh = _notifier(slack)  # new process: channel id not cached
    await fresh.send(notification(spike_item("escalate"), thread_ts=raised.message_ts))
    assert slack.method_calls("conversations.list")
    assert slack.updates[0]["channel"] == "C0WEBCARE1"


async def test_deleted_root_starts_a_new_root(slack: MockSlack, notifier: SlackNotifier) -> None:
    n = notification(spike_item("escalate"), thread_ts="1600000000.000001", thread_channel="C0WEBCARE1")
    receipt = await notifier.send(n)
    (root,) = slack.roots("C0WEBCARE1")
    assert receipt.message_ts == root["ts"] != "1600000000.000001"
    assert root["blocks"][0]["text"]["text"].startswith("🚨 Spike · Acme")


async def test_short_rate_limit_is_retried_by_the_handler(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.rate_limit(1, retry_after=0)
    receipt = await notifier.send(notification())
    assert receipt.message_ts
    assert len(slack.method_calls("chat.postMessage")) == 2
    assert len(slack.roots("#webcare")) == 1


async def test_long_rate_limit_surfaces_as_retryable_with_retry_after(slack: MockSlack) -> None:
    slack.rate_limit(5, retry_after=1)
    notifier = _notifier(slack, max_inline_wait=0.5)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable and info.value.retry_after == 1.0
    assert len(slack.method_calls("chat.postMessage")) == 1  # no in-process wait beyond the bound


async def test_rate_limit_retries_are_bounded(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.rate_limit(10, retry_after=0)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable and info.value.retry_after == 0.0
    assert len(slack.method_calls("chat.postMessage")) == 3  # 1 + max_retries


async def test_brief_outage_is_retried(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.outage(1, status=502)
    assert (await notifier.send(notification())).message_ts
    assert len(slack.roots("#webcare")) == 1


async def test_outage_surfaces_as_retryable(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.outage(status=503)
    with pytest.raises(SlackDeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable and info.value.status == 503
    assert len(slack.method_calls("chat.postMessage")) == 3
    slack.heal()
    assert (await notifier.send(notification())).message_ts


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "account_inactive", "token_revoked"])
async def test_auth_failures_are_not_retryable(slack: MockSlack, notifier: SlackNotifier, error: str) -> None:
    slack.fail_auth(error)
    with pytest.raises(SlackDeliveryError) as info:
        await notifier.send(notification())
    assert not info.value.retryable and info.value.code == error
    assert len(slack.method_calls("chat.postMessage")) == 1


async def test_wrong_token_is_not_retryable(slack: MockSlack) -> None:
    with pytest.raises(SlackDeliveryError) as info:
        await _notifier(slack, token="xoxb-wrong-1234").send(notification())
    assert not info.value.retryable and info.value.code == "invalid_auth"


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "invalid_blocks"])
async def test_channel_and_request_errors_are_not_retryable(
    slack: MockSlack, notifier: SlackNotifier, error: str
) -> None:
    slack.fail_next("chat.postMessage", error)
    with pytest.raises(SlackDeliveryError) as info:
        await notifier.send(notification())
    assert not info.value.retryable and info.value.code == error


async def test_unknown_channel_is_not_retryable(notifier: SlackNotifier) -> None:
    with pytest.raises(SlackDeliveryError) as info:
        await notifier.send(notification(channel="#nope"))
    assert not info.value.retryable and info.value.code == "channel_not_found"


async def test_transient_slack_error_codes_are_retryable(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.fail_next("chat.postMessage", "internal_error")
    with pytest.raises(SlackDeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable


async def test_connection_refused_is_retryable() -> None:
    notifier = SlackNotifier(BOT_TOKEN, f"http://127.0.0.1:{_free_port()}/api/", retry_backoff=0.01)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable and "connection problem" in str(info.value)


async def test_find_delivered_after_a_crash(slack: MockSlack, notifier: SlackNotifier) -> None:
    since = datetime.now(UTC)
    n = notification(mention_item(1), mention_item(2))
    receipt = await notifier.send(n)
    # The process dies before committing; a new one reconciles instead of sending again.
    fresh = _notifier(slack)
    found = await fresh.find_delivered(n, since)
    assert found is not None and found.message_ts == receipt.message_ts and found.channel == "C0WEBCARE1"
    assert await fresh.find_delivered(notification(mention_item(3)), since) is None
    call = slack.method_calls("conversations.history")[-1]
    assert call["include_all_metadata"] in ("1", "true", True) and call["channel"] == "C0WEBCARE1"


async def test_find_delivered_respects_since(slack: MockSlack) -> None:
    notifier = _notifier(slack, clock_skew=timedelta(0))
    n = notification()
    await notifier.send(n)
    assert await notifier.find_delivered(n, datetime.now(UTC) + timedelta(seconds=5)) is None


async def test_find_delivered_pages_through_history(slack: MockSlack, notifier: SlackNotifier) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    n = notification()
    receipt = await notifier.send(n)
    slack.inject("C0WEBCARE1", 450)  # newer messages on top of ours
    found = await notifier.find_delivered(n, since)
    assert found is not None and found.message_ts == receipt.message_ts
    assert len(slack.method_calls("conversations.history")) == 3


async def test_find_delivered_for_a_thread_update(slack: MockSlack, notifier: SlackNotifier) -> None:
    since = datetime.now(UTC)
    raised = await notifier.send(notification(spike_item("raise")))
    escalate = notification(
        spike_item("escalate"), thread_ts=raised.message_ts, thread_channel=raised.channel
    )
    resolve = notification(spike_item("resolve"), thread_ts=raised.message_ts, thread_channel=raised.channel)
    await notifier.send(escalate)
    fresh = _notifier(slack)
    assert await fresh.find_delivered(escalate, since) == raised
    assert await fresh.find_delivered(resolve, since) is None
    assert slack.method_calls("conversations.replies")


async def test_crash_between_update_and_reply_is_resent_once(
    slack: MockSlack, notifier: SlackNotifier
) -> None:
    since = datetime.now(UTC)
    raised = await notifier.send(notification(spike_item("raise")))
    escalate = notification(
        spike_item("escalate"), thread_ts=raised.message_ts, thread_channel=raised.channel
    )
    slack.fail_next("chat.postMessage", "internal_error")  # the reply (delivery marker) fails
    with pytest.raises(DeliveryError):
        await notifier.send(escalate)
    assert await notifier.find_delivered(escalate, since) is None
    await notifier.send(escalate)
    assert len(slack.replies("C0WEBCARE1", raised.message_ts or "")) == 1


async def test_find_delivered_errors_are_raised_not_guessed(
    slack: MockSlack, notifier: SlackNotifier
) -> None:
    await notifier.send(notification())
    slack.outage()
    with pytest.raises(DeliveryError) as info:
        await notifier.find_delivered(notification(), datetime.now(UTC))
    assert info.value.retryable


async def test_update_message_reflects_state(slack: MockSlack, notifier: SlackNotifier) -> None:
    receipt = await notifier.send(notification(mention_item(5)))
    claimed = notification(replace(mention_item(5), claimed_by="alice"))
    await notifier.update_message("C0WEBCARE1", receipt.message_ts or "", claimed)
    (root,) = slack.roots("C0WEBCARE1")
    assert "Claimed by *alice*" in str(root["blocks"])
    assert "repmon:claim" not in str(root["blocks"])


async def test_auth_test(slack: MockSlack, notifier: SlackNotifier) -> None:
    info = await notifier.auth_test()
    assert info["team"] == "Repmon Test" and info["bot_id"] == "B0REPMON"
    slack.fail_auth()
    with pytest.raises(DeliveryError) as err:
        await notifier.auth_test()
    assert not err.value.retryable


async def test_upload_file_from_path_and_bytes(
    slack: MockSlack, notifier: SlackNotifier, tmp_path: Path
) -> None:
    chart = tmp_path / "digest.png"
    chart.write_bytes(b"\x89PNG fake chart")
    file_id = await notifier.upload_file("#webcare", chart, title="Weekly digest", initial_comment="Digest")
    assert slack.upload_bytes[file_id] == b"\x89PNG fake chart"
    (upload,) = slack.uploads
    assert upload["completed"] and upload["channel_id"] == "C0WEBCARE1"
    assert upload["title"] == "Weekly digest" and upload["filename"] == "digest.png"
    assert upload["initial_comment"] == "Digest"
    other = await notifier.upload_file("C0CRISIS01", b"a,b\n1,2\n", filename="numbers.csv")
    assert slack.upload_bytes[other] == b"a,b\n1,2\n"


async def test_upload_failure_is_retryable(slack: MockSlack, notifier: SlackNotifier) -> None:
    slack.outage(3, methods={"upload"})
    with pytest.raises(DeliveryError) as info:
        await notifier.upload_file("#webcare", b"x", filename="x.txt")
    assert info.value.retryable


async def test_token_never_in_errors_or_logs(slack: MockSlack, caplog: pytest.LogCaptureFixture) -> None:
    secret = "xoxb-super-secret-9f8e7d6c"
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    bad = _notifier(slack, token=secret)
    for setup in (lambda: None, lambda: slack.rate_limit(5, 9), lambda: slack.outage(), lambda: None):
        slack.heal()
        setup()
        with pytest.raises(DeliveryError) as info:
            await bad.send(notification())
        errors.append(info.value)
    refused = SlackNotifier(secret, f"http://127.0.0.1:{_free_port()}/api/", retry_backoff=0.01)
    with pytest.raises(DeliveryError) as info:
        await refused.send(notification())
    errors.append(info.value)
    for err in errors:
        assert err.__cause__ is None and err.__suppress_context__
        rendered = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert secret not in rendered and "9f8e7d6c" not in rendered
    assert secret not in caplog.text
    assert all(secret not in str(r.args) for r in caplog.records)


def test_redact() -> None:
    assert redact("token xoxb-1-2-abc and xapp-1-A-x", ()) == "token xox?-*** and xox?-***"
    assert redact("https://hooks.slack.com/services/T0/B0/abc", ()) == "https://hooks.slack.com/services/***"
    assert redact("my-secret here", ("my-secret",)) == "*** here"


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError):
        SlackNotifier("  ")
