"""The daemon in-process: health and metrics endpoints, live reload, bounded graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from config.loader import load_config
from monitor import models
from monitor.daemon import Daemon
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import config_text, post, wait_until, write_jsonl


def _files(tmp_path: Path) -> Path:
    replay = write_jsonl(
        tmp_path / "posts.jsonl",
        [post(i, f"Acme Rail is brilliant, thanks {i}", minutes=i) for i in range(1, 6)],
    )
    text = config_text(f"sqlite:///{tmp_path / 'd.db'}", replay, interval="1s", health_port=0)
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


async def test_health_metrics_reload_and_shutdown(tmp_path: Path) -> None:
    cfg = _files(tmp_path)
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: len(notifier.keys) == 5)
        await wait_until(lambda: daemon.health_port not in (None, 0))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.health_port}") as client:
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok"
            assert health["sources"]["replay"]["mentions_total"] == 5
            metrics = (await client.get("/metrics")).text
            assert 'repmon_mentions_stored_total{source="replay"} 5.0' in metrics
            assert 'repmon_alerts_sent_total{kind="praise",receiver="capture"} 5.0' in metrics

        # A broken edit is refused and the running configuration stays.
        good = cfg.read_text(encoding="utf-8")
        cfg.write_text(good.replace("interval: 1s", "interval: often"), encoding="utf-8")
        assert await daemon.reload("test") is False
        assert runtime.settings.brands[0].name == "Acme Rail"

        # A valid edit is applied without restart: a new brand appears.
        cfg.write_text(
            good.replace("brands:\n", 'brands:\n  - name: Newco\n    keywords: ["newco"]\n'), encoding="utf-8"
        )
        assert await daemon.reload("test") is True
        assert next(b.name for b in runtime.settings.brands) == "Newco"
        assert "replay" in runtime.coordinators
        with runtime.db.session() as session:
            assert session.execute(select(models.DaemonHeartbeat.owner)).scalars().all() == [runtime.owner]
    finally:
        started = time.monotonic()
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)
        assert time.monotonic() - started < runtime.settings.daemon.shutdown_timeout + 3
    # A clean stop leaves no heartbeat behind: the next `repmon once` need not wait for it.
    with runtime.db.session() as session:
        assert session.execute(select(models.DaemonHeartbeat)).first() is None
    runtime.db.dispose()


def _slow_tick_config(tmp_path: Path, *, group_wait: str) -> tuple[Path, Path]:
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    text = config_text(f"sqlite:///{tmp_path / 'd.db'}", replay, extra="  classify_interval: 60s\n")
    text = text.replace("    batch_size: 100\n", "    batch_size: 100\n    interval: 1s\n")
    text = text.replace("  group_wait: 0s\n", f"  group_wait: {group_wait}\n")
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(text, encoding="utf-8")
    return cfg, replay


async def test_new_mentions_wake_the_processing_loop(tmp_path: Path) -> None:
    # The idle tick is 60 s; a stored poll must not wait for it.
    cfg, replay = _slow_tick_config(tmp_path, group_wait="0s")
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: len(notifier.keys) == 1)
        await asyncio.sleep(1.5)  # the loop is idle now, in its 60 s wait
        with replay.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(post(2, "Acme Rail is brilliant again", minutes=2)) + "\n")
        started = time.monotonic()
        await wait_until(lambda: len(notifier.keys) == 2, timeout=10.0)
        assert time.monotonic() - started < 5.0
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_idle_loop_wakes_when_group_wait_ends(tmp_path: Path) -> None:
    # The alert is held 2 s by group_wait; with a 60 s tick it must still go out right after.
    cfg, _replay = _slow_tick_config(tmp_path, group_wait="2s")
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    started = time.monotonic()
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: len(notifier.keys) == 1, timeout=15.0)
        assert 1.5 < time.monotonic() - started < 8.0
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)
