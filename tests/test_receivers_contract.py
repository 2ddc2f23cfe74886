"""Contract tests run over every receiver: console, JSONL, Slack Web API, Slack webhook.

Each receiver must: be a :class:`Notifier`; classify failures as retryable or final with a
:class:`DeliveryError` (never another exception); never leak a secret in errors or logs; deliver
hostile post text escaped (checked on what actually left the process); and reconcile after a crash
if it can read back (JSONL, Slack) or say it cannot (console, webhook) by returning None.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

import pytest

from alerts.console import ConsoleNotifier, JsonlNotifier
from alerts.model import DeliveryError, Notification, Notifier
from alerts.slack import SlackNotifier
from alerts.webhook import WebhookNotifier
from tests.mock_slack import BOT_TOKEN, HOSTILE_PAYLOADS, MockSlack, mention, mention_item, notification

RAW_SPECIALS = (
    "<!channel>",
    "<!here",
    "<!everyone>",
    "<@U123>",
    "<@U123|",
    "<#C123",
    "<!subteam",
    "<http://evil",
)


@dataclass
class Harness:
    """One receiver plus ways to observe what it emitted and to break its transport."""

    name: str
    make: Callable[[], Notifier]
    emitted: Callable[[], str]
    break_transient: Callable[[], None]
    break_fatal: Callable[[], None]
    heal: Callable[[], None]
    secret: str | None = None
    reconciles: bool = False
    wire_is_slack_markup: bool = True
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture(params=["console", "jsonl", "slack", "webhook"])
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    kind = request.param
    if kind == "console":
        state: dict[str, io.StringIO] = {"stream": io.StringIO()}

        class Flaky(io.StringIO):
            def write(self, s: str) -> int:
                raise OSError(errno.EPIPE, "Broken pipe")

        def console_fatal() -> None:
            closed = io.StringIO()
            closed.close()
            state["stream"] = closed

        yield Harness(
            "console",
            make=lambda: ConsoleNotifier(cast(IO[str], _Proxy(state)), color=False, width=120),
            emitted=lambda: state["stream"].getvalue() if not state["stream"].closed else "",
            break_transient=lambda: state.update(stream=Flaky()),
            break_fatal=console_fatal,
            heal=lambda: state.update(stream=io.StringIO()),
            wire_is_slack_markup=False,
        )
    elif kind == "jsonl":
        path = tmp_path / "audit" / "alerts.jsonl"

        def jsonl_transient() -> None:
            def full(fd: int) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(os, "fsync", full)

        def jsonl_fatal() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.unlink()
            path.mkdir()  # a directory where the file should be: EISDIR

        def jsonl_heal() -> None:
            monkeypatch.undo()
            if path.is_dir():
                path.rmdir()

        yield Harness(
            "jsonl",
            make=lambda: JsonlNotifier(path),
            emitted=lambda: path.read_text() if path.is_file() else "",
            break_transient=jsonl_transient,
            break_fatal=jsonl_fatal,
            heal=jsonl_heal,
            reconciles=True,
        )
    elif kind == "slack":
        async with MockSlack() as slack:
            yield Harness(
                "slack",
                make=lambda: SlackNotifier(BOT_TOKEN, slack.api_url, retry_backoff=0.01, max_inline_wait=0.5),
                emitted=slack.wire_text,
                break_transient=lambda: slack.outage(),
                break_fatal=lambda: slack.fail_auth("invalid_auth"),
                heal=slack.heal,
                secret=BOT_TOKEN,
                reconciles=True,
            )
    else:
        async with MockSlack() as slack:
            yield Harness(
                "webhook",
                make=lambda: WebhookNotifier(slack.webhook_url, retry_backoff=0.01, max_inline_wait=0.5),
                emitted=slack.wire_text,
                break_transient=lambda: slack.rate_limit(10, retry_after=30),
                break_fatal=lambda: slack.fail_auth("invalid_token"),
                heal=slack.heal,
                secret=slack.webhook_url.rsplit("/", 1)[-1],
            )


class _Proxy(io.TextIOBase):
    """A stream that forwards to whatever stream the harness currently holds (so tests can swap it)."""

    def __init__(self, state: dict[str, io.StringIO]) -> None:
        self._state = state

    def write(self, s: str) -> int:
        return self._state["stream"].write(s)

    def flush(self) -> None:
        self._state["stream"].flush()

    def isatty(self) -> bool:
        return False


def _hostile_notifications() -> list[Notification]:
    items = [
        mention_item(i, "complaint", mention=mention(p, author_name=p[:60]), reason=p[:100])
        for i, p in enumerate(HOSTILE_PAYLOADS, start=1)
    ]
    return [notification(*items[i : i + 8], group_key=f"hostile:{i}") for i in range(0, len(items), 8)]


async def test_is_a_notifier(harness: Harness) -> None:
    notifier = harness.make()
    assert isinstance(notifier, Notifier)
    assert notifier.name == harness.name
    await notifier.aclose()


async def test_send_delivers(harness: Harness) -> None:
    notifier = harness.make()
    receipt = await notifier.send(notification())
    assert receipt.receiver == harness.name
    assert "Loving the new app" in harness.emitted()


async def test_hostile_text_is_delivered_inert(harness: Harness) -> None:
    notifier = harness.make()
    for n in _hostile_notifications():
        await notifier.send(n)
    emitted = harness.emitted()
    assert emitted
    if harness.wire_is_slack_markup:
        # JSON on the wire may escape characters: decode every JSON document we can find.
        decoded = emitted
        for line in emitted.splitlines():
            try:
                decoded += "\n" + json.dumps(json.loads(line), ensure_ascii=False)
            except ValueError:
                continue
        for needle in RAW_SPECIALS:
            assert needle not in decoded, needle
        assert not re.search(r"(?<![\w\u2060])@(?:channel|here|everyone)\b", decoded)
    else:
        # The console is not Slack: the post reads as written, but cannot drive the terminal or rich markup.
        assert "<!channel> refund now" in emitted
        assert "[bold red]rich markup[/]" in emitted
    assert "\x1b" not in emitted and "\x00" not in emitted and "\u202e" not in emitted


async def test_transient_failure_is_retryable(harness: Harness) -> None:
    notifier = harness.make()
    harness.break_transient()
    with pytest.raises(DeliveryError) as info:
        await notifier.send(notification())
    assert info.value.retryable
    harness.heal()
    assert (await notifier.send(notification())).receiver == harness.name


async def test_fatal_failure_is_not_retryable(harness: Harness) -> None:
    notifier = harness.make()
    harness.break_fatal()
    with pytest.raises(DeliveryError) as info:
        await notifier.send(notification())
    assert not info.value.retryable


async def test_never_leaks_a_secret(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = harness.make()
    errors: list[DeliveryError] = []
    for breaker in (harness.break_transient, harness.break_fatal):
        harness.heal()
        breaker()
        with pytest.raises(DeliveryError) as info:
            await notifier.send(notification())
        errors.append(info.value)
    harness.heal()
    await notifier.send(notification())
    secrets = [s for s in (harness.secret,) if s]
    for err in errors:
        rendered = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert all(s not in rendered for s in secrets)
    assert all(s not in caplog.text for s in secrets)
    assert all(s not in repr(notifier) for s in secrets)
    assert all(s not in harness.emitted() for s in secrets if harness.name != "slack")


async def test_find_delivered_reconciles_or_declines(harness: Harness) -> None:
    since = datetime.now(UTC)
    n = notification(mention_item(1), mention_item(2))
    receipt = await harness.make().send(n)
    restarted = harness.make()  # a new process after a crash between send and commit
    found = await restarted.find_delivered(n, since)
    if harness.reconciles:
        assert found is not None and found.receiver == harness.name
        assert found.message_ts == receipt.message_ts
    else:
        assert found is None
    assert await restarted.find_delivered(notification(mention_item(3)), since) is None
