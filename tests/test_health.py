"""/healthz policy: 503 only when repmon itself cannot do its job; failing sources are 200 "degraded"."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from alerts.model import DeliveryReceipt, Notification
from alerts.slack import SlackDeliveryError
from alerts.testing import CapturingNotifier
from classifiers.testing import FailingClassifier, StubClassifier
from monitor.clock import FakeClock
from monitor.daemon import Daemon
from monitor.health import health_report
from monitor.migrate import upgrade
from monitor.outbox import retry_failed
from monitor.runtime import Runtime
from tests.pipeline_util import T0, config_text, load, post, wait_until, write_jsonl


def _text(tmp_path: Path, replay: Path, *, extra_sources: str = "") -> str:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    return config_text(db, replay, extra_sources=extra_sources, interval="1s", health_port=0)


async def _healthz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    await wait_until(lambda: daemon.health_port not in (None, 0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.health_port}") as client:
        response = await client.get("/healthz")
    return response.status_code, response.json()


def _one_post(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])


async def test_a_failing_third_party_source_is_degraded_not_unhealthy(tmp_path: Path) -> None:
    broken = f"  - name: broken\n    type: replay\n    path: {tmp_path / 'missing.jsonl'}\n"
    runtime = Runtime(
        load(_text(tmp_path, _one_post(tmp_path), extra_sources=broken)),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        env={},
    )
    upgrade(runtime.db)
    for _ in range(3):
        assert not (await runtime.coordinators["broken"].poll_once()).ok
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: runtime.metrics.polls.labels("replay", "ok")._value.get() >= 1)
        status, health = await _healthz(daemon)
        # Restarting repmon would not fix someone else's feed: the container stays healthy.
        assert status == 200, health
        assert health["status"] == "degraded" and health["problems"] == []
        assert health["degraded_sources"] == ["broken"]
        broken_health = health["sources"]["broken"]
        assert broken_health["state"] == "failing" and "missing.jsonl" in broken_health["last_error"]
        assert broken_health["last_success_at"] is None and broken_health["lag_seconds"] is None
        good = health["sources"]["replay"]
        assert good["state"] == "ok" and isinstance(good["lag_seconds"], float) and good["last_success_at"]
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


class RefusingNotifier(CapturingNotifier):
    """Slack answering invalid_auth on every post (a revoked token), until ``fixed``."""

    fixed = False

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Refuse, or deliver once fixed."""
        if not self.fixed:
            raise SlackDeliveryError(
                "chat.postMessage: Slack error invalid_auth (HTTP 200)", retryable=False, code="invalid_auth"
            )
        return await super().send(notification)


async def test_a_receiver_refusing_the_credentials_is_unhealthy_until_delivery_works(tmp_path: Path) -> None:
    notifier = RefusingNotifier()
    runtime = Runtime(
        load(_text(tmp_path, _one_post(tmp_path))), notifier=notifier, classifier=StubClassifier(), env={}
    )
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: runtime.metrics.alerts_failed.labels("capture", "false")._value.get() >= 1)
        status, health = await _healthz(daemon)
        assert status == 503, health
        assert health["status"] == "unhealthy"
        assert any("alert delivery" in p and "invalid_auth" in p for p in health["problems"])
        assert health["components"]["delivery"]["ok"] is False
        assert health["queues"]["failed_alerts"] == 1

        notifier.fixed = True  # a new token, and the parked alert retried
        retry_failed(runtime.db, runtime.clock.now())
        daemon.work.set()
        await wait_until(lambda: len(notifier.keys) == 1)
        status, health = await _healthz(daemon)
        assert status == 200 and health["status"] == "ok", health
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


class HangingNotifier(CapturingNotifier):
    """A receiver whose send never returns until released (a hung connection without a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = False
        self.release = asyncio.Event()

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Hang until released."""
        self.entered = True
        await self.release.wait()
        return await super().send(notification)


async def test_a_stuck_processing_loop_is_unhealthy(tmp_path: Path) -> None:
    notifier = HangingNotifier()
    clock = FakeClock(T0 + timedelta(hours=1))
    runtime = Runtime(
        load(_text(tmp_path, _one_post(tmp_path))),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=clock,
        env={},
    )
    upgrade(runtime.db)
    await runtime.poll_all()
    daemon = Daemon(runtime, roles=frozenset({"classify", "alert"}))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: notifier.entered)
        clock.advance(700)
        report = await asyncio.to_thread(health_report, runtime)
        assert report["status"] == "unhealthy", report
        assert any("processing loop stuck" in p for p in report["problems"])  # type: ignore[attr-defined]

        notifier.release.set()
        await wait_until(lambda: len(notifier.keys) == 1)
        await wait_until(lambda: health_report(runtime)["problems"] == [])
    finally:
        notifier.release.set()
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_a_classifier_failing_every_batch_is_unhealthy(tmp_path: Path) -> None:
    clock = FakeClock(T0 + timedelta(hours=1))
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(_text(tmp_path, _one_post(tmp_path))),
        notifier=notifier,
        classifier=FailingClassifier(),
        clock=clock,
        env={},
    )
    upgrade(runtime.db)
    await runtime.poll_all()
    daemon = Daemon(runtime, roles=frozenset({"classify", "alert"}))
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: health_report(runtime)["status"] == "unhealthy")
        report = health_report(runtime)
        assert any("classifier failing" in p for p in report["problems"])  # type: ignore[attr-defined]
        assert runtime.metrics.classify_errors.labels("ClassifierError")._value.get() >= 3
        assert notifier.keys == []  # a failure never turns into 'neutral' (or any alert)
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_a_source_whose_read_hangs_shows_as_late(tmp_path: Path) -> None:
    clock = FakeClock(T0 + timedelta(hours=1))
    runtime = Runtime(
        load(_text(tmp_path, _one_post(tmp_path))),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        clock=clock,
        env={},
    )
    upgrade(runtime.db)
    coordinator = runtime.coordinators["replay"]
    assert (await coordinator.poll_once()).ok
    hang = asyncio.Event()

    async def poll(cursor: Any) -> Any:
        await hang.wait()  # a read that never ends (no request timeout reaches it)

    coordinator.source.poll = poll  # type: ignore[method-assign]
    stuck = asyncio.create_task(coordinator.poll_once())
    try:
        await asyncio.sleep(0.1)
        assert health_report(runtime)["status"] == "ok"
        clock.advance(3 * 1 + 61)  # three 1 s intervals and the grace minute without a success
        report = health_report(runtime)
        source: Any = report["sources"]
        assert report["status"] == "degraded" and report["degraded_sources"] == ["replay"]
        assert source["replay"]["state"] == "late" and source["replay"]["lag_seconds"] >= 64
    finally:
        stuck.cancel()
        await runtime.aclose()
