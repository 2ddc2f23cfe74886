"""A classifier that cannot load: logged once, counted, unhealthy, retried with backoff, never 'neutral'."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from alerts.testing import CapturingNotifier
from classifiers.base import Classifier, ClassifierError
from classifiers.testing import StubClassifier
from config.loader import load_config
from config.settings import Settings
from monitor import models
from monitor.cli import app
from monitor.clock import FakeClock
from monitor.daemon import Daemon
from monitor.health import health_report
from monitor.migrate import upgrade
from monitor.runtime import ClassifierUnavailableError, Runtime
from tests.pipeline_util import T0, config_text, load, post, wait_until, write_jsonl


class FlakyLoader:
    """A classifier factory that fails while ``broken`` (e.g. no GPU), then loads a stub."""

    def __init__(self, *, broken: bool = True, seconds: float = 0.0) -> None:
        self.broken = broken
        self.seconds = seconds
        self.attempts = 0
        self.on_main_thread: list[bool] = []

    def __call__(self, settings: Settings) -> Classifier:
        self.attempts += 1
        self.on_main_thread.append(threading.current_thread() is threading.main_thread())
        if self.seconds:
            time.sleep(self.seconds)  # a model that takes a while to load
        if self.broken:
            raise ClassifierError("CUDA error: no CUDA-capable device is detected (test)")
        return StubClassifier()


def _load_errors(runtime: Runtime) -> float:
    return runtime.metrics.classify_errors.labels("load")._value.get()


async def test_a_failed_load_is_logged_once_counted_retried_with_backoff_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = config_text(f"sqlite:///{tmp_path / 'c.db'}", write_jsonl(tmp_path / "p.jsonl", []))
    loader = FlakyLoader()
    clock = FakeClock(T0)
    runtime = Runtime(
        load(text), notifier=CapturingNotifier(), classifier_factory=loader, clock=clock, env={}
    )
    upgrade(runtime.db)
    caplog.set_level(logging.DEBUG, logger="repmon")
    try:
        with pytest.raises(ClassifierUnavailableError, match="no CUDA-capable device"):
            await runtime.ensure_classifier()
        assert loader.attempts == 1 and _load_errors(runtime) == 1
        report = health_report(runtime)
        assert report["status"] == "unhealthy"
        assert any("classifier" in p for p in report["problems"])  # type: ignore[attr-defined]

        # Within the backoff nothing is loaded again; afterwards it is, with a growing wait.
        with pytest.raises(ClassifierUnavailableError):
            await runtime.ensure_classifier()
        assert loader.attempts == 1
        clock.advance(5)
        with pytest.raises(ClassifierUnavailableError):
            await runtime.ensure_classifier()
        assert loader.attempts == 2
        clock.advance(5)  # the second wait is 10 s
        with pytest.raises(ClassifierUnavailableError):
            await runtime.ensure_classifier()
        assert loader.attempts == 2
        clock.advance(5)
        with pytest.raises(ClassifierUnavailableError):
            await runtime.ensure_classifier()
        assert loader.attempts == 3 and _load_errors(runtime) == 3

        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "classifier" in r.getMessage()]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # once when it starts, not per try

        loader.broken = False
        clock.advance(60)
        classifier = await runtime.ensure_classifier()
        assert classifier.model_id == "stub@1"
        assert any("loaded after 3 failed attempts" in r.getMessage() for r in caplog.records)
        assert health_report(runtime)["status"] == "ok"
    finally:
        await runtime.aclose()


async def test_a_reload_retries_a_failed_load_at_once(tmp_path: Path) -> None:
    text = config_text(f"sqlite:///{tmp_path / 'r.db'}", write_jsonl(tmp_path / "p.jsonl", []))
    loader = FlakyLoader()
    runtime = Runtime(
        load(text), notifier=CapturingNotifier(), classifier_factory=loader, clock=FakeClock(T0), env={}
    )
    upgrade(runtime.db)
    try:
        with pytest.raises(ClassifierUnavailableError):
            await runtime.ensure_classifier()
        loader.broken = False  # say, the configuration now names a model that exists
        runtime.reload(load(text + "classifier:\n  batch_size: 8\n"))
        assert (await runtime.ensure_classifier()).model_id == "stub@1"
        assert loader.attempts == 2
    finally:
        await runtime.aclose()


def _daemon_config(tmp_path: Path, extra: str = "") -> Path:
    replay = write_jsonl(
        tmp_path / "posts.jsonl",
        [post(i, f"Acme Rail is brilliant, thanks {i}", minutes=i) for i in range(1, 4)],
    )
    text = config_text(f"sqlite:///{tmp_path / 'd.db'}", replay, extra=extra, interval="1s", health_port=0)
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        stored = session.execute(select(func.count()).select_from(models.Mention)).scalar_one()
        scored = session.execute(select(func.count()).select_from(models.Score)).scalar_one()
    return stored, scored


async def test_daemon_with_a_classifier_that_cannot_load_is_unhealthy_and_recovers_on_reload(
    tmp_path: Path,
) -> None:
    cfg = _daemon_config(tmp_path)
    loader = FlakyLoader()
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier_factory=loader, env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: _counts(runtime)[0] == 3 and _load_errors(runtime) >= 1)
        await wait_until(lambda: daemon.health_port not in (None, 0))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.health_port}") as client:
            response = await client.get("/healthz")
            assert response.status_code == 503
            health = response.json()
            assert health["status"] == "unhealthy"
            assert "no CUDA-capable device" in health["components"]["classifier"]["error"]
            assert health["queues"]["classify"] == 3
            assert _counts(runtime)[1] == 0 and notifier.keys == []  # unscored, never 'neutral'
            assert 'repmon_classify_errors_total{reason="load"}' in (await client.get("/metrics")).text

            # The operator fixes the configuration and reloads: scoring and alerts resume at once.
            loader.broken = False
            cfg.write_text(
                cfg.read_text(encoding="utf-8") + "classifier:\n  batch_size: 8\n", encoding="utf-8"
            )
            assert await daemon.reload("test") is True
            await wait_until(lambda: len(notifier.keys) == 3)
            response = await client.get("/healthz")
            assert response.status_code == 200 and response.json()["status"] == "ok"
        assert True not in loader.on_main_thread  # loaded in a worker thread, never on the event loop
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_the_model_loads_off_the_event_loop(tmp_path: Path) -> None:
    """/healthz answers at once while a slow model loads (it used to stall for the whole load)."""
    cfg = _daemon_config(tmp_path)
    loader = FlakyLoader(broken=False, seconds=3.0)
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier_factory=loader, env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: loader.attempts == 1)
        await wait_until(lambda: daemon.health_port not in (None, 0))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.health_port}") as client:
            started = time.monotonic()
            response = await client.get("/healthz", timeout=2.0)
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0
        assert len(notifier.keys) == 0  # still loading
        await wait_until(lambda: len(notifier.keys) == 3)
        assert loader.on_main_thread == [False]
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


def test_once_says_the_classifier_cannot_load_and_exits_1(tmp_path: Path) -> None:
    heads = tmp_path / "heads.npz"
    heads.write_bytes(b"not a head file")
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    cfg = tmp_path / "repmon.yaml"
    extra = f"classifier:\n  model: default\n  heads: {heads}\n"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'o.db'}", replay, extra=extra), encoding="utf-8")
    result = CliRunner().invoke(app, ["once", "--json", "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert summary["stored"] == 1 and summary["scored"] == 0  # kept for later, never 'neutral'
    assert "head file" in summary["classifier_error"]
    assert "classifier unavailable" in result.stderr and "head file" in result.stderr
