"""WebhookNotifier against the mock incoming-webhook endpoint."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from alerts.model import DeliveryError, Notifier
from alerts.render import render_blocks
from alerts.webhook import WebhookNotifier
from tests.mock_slack import WEBHOOK_PATH, MockSlack, notification, spike_item


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


def _hook(url: str) -> WebhookNotifier:
    return WebhookNotifier(url, retry_backoff=0.01, max_inline_wait=1.0)


async def test_posts_blocks_and_text(slack: MockSlack) -> None:
    hook = _hook(slack.webhook_url)
    assert isinstance(hook, Notifier) and hook.name == "webhook"
    n = notification()
    receipt = await hook.send(n)
    assert receipt.receiver == "webhook" and receipt.message_ts is None
    (post,) = slack.webhook_posts
    assert post["blocks"] == render_blocks(n)
    assert post["text"].startswith("Praise · Acme")
    assert post["unfurl_links"] is False
    assert await hook.find_delivered(n, datetime.now(UTC)) is None


async def test_incident_update_is_a_new_message_with_current_state(slack: MockSlack) -> None:
    await _hook(slack.webhook_url).send(notification(spike_item("resolve"), thread_ts="1.000001"))
    assert slack.webhook_posts[0]["blocks"][0]["text"]["text"] == "✅ Spike resolved · Acme"


async def test_short_rate_limit_is_retried(slack: MockSlack) -> None:
    slack.rate_limit(1, retry_after=0)
    await _hook(slack.webhook_url).send(notification())
    assert len(slack.webhook_posts) == 1


async def test_long_rate_limit_is_retryable_with_retry_after(slack: MockSlack) -> None:
    slack.rate_limit(5, retry_after=30)
    with pytest.raises(DeliveryError) as info:
        await _hook(slack.webhook_url).send(notification())
    assert info.value.retryable and info.value.retry_after == 30


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(slack: MockSlack, status: int) -> None:
    slack.outage(status=status)
    with pytest.raises(DeliveryError) as info:
        await _hook(slack.webhook_url).send(notification())
    assert info.value.retryable


async def test_no_service_is_not_retryable(slack: MockSlack) -> None:
    with pytest.raises(DeliveryError) as info:
        await _hook(slack.base_url + "/services/T0/B0/revoked").send(notification())
    assert not info.value.retryable and "no_service" in str(info.value)


@pytest.mark.parametrize("error", ["invalid_token", "action_prohibited"])
async def test_forbidden_is_not_retryable(slack: MockSlack, error: str) -> None:
    slack.fail_auth(error)
    with pytest.raises(DeliveryError) as info:
        await _hook(slack.webhook_url).send(notification())
    assert not info.value.retryable and error in str(info.value)


async def test_url_is_never_in_errors_or_logs(slack: MockSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = WEBHOOK_PATH.rsplit("/", 1)[-1]
    hook = _hook(slack.webhook_url)
    assert secret not in repr(hook)
    errors = []
    for setup in (
        lambda: slack.rate_limit(5, 60),
        lambda: slack.outage(),
        lambda: slack.fail_auth("invalid_token"),
    ):
        slack.heal()
        setup()
        with pytest.raises(DeliveryError) as info:
            await hook.send(notification())
        errors.append(info.value)
    slack.heal()
    await hook.send(notification())
    for err in errors:
        rendered = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert secret not in rendered
    assert secret not in caplog.text


def test_rejects_non_http_url() -> None:
    with pytest.raises(ValueError):
        WebhookNotifier("hooks.slack.com/services/x")
