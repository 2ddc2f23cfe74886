"""Live reload (SIGHUP or a saved file) applies source changes, retries disabled sources and
rebuilds the alert receiver."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from config.loader import load_config
from monitor import models
from monitor.daemon import Daemon
from monitor.migrate import upgrade
from monitor.notify import build_notifier
from monitor.runtime import Runtime
from sources.base import AuthError, Cursor, PollResult
from tests.pipeline_util import config_text, load, post, wait_until, write_jsonl

NEWCO = '  - name: Newco\n    keywords: ["newco"]\n'


def _source(name: str, path: Path, batch: int = 100) -> str:
    return (
        f"  - name: {name}\n    type: replay\n    path: {path}\n    batch_size: {batch}\n    interval: 1s\n"
    )


def _text(
    tmp_path: Path, replay: Path, *, extra_sources: str = "", brands: str = "", alerts: str = ""
) -> str:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    text = config_text(db, replay, extra_sources=extra_sources, alerts=alerts, interval="1s")
    return text.replace("brands:\n", "brands:\n" + brands, 1)


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _alerted(notifier: CapturingNotifier) -> set[tuple[str | None, str]]:
    return {(i.brand, i.mention.text) for n in notifier.sent for i in n.items if i.mention is not None}


async def test_reload_restarts_changed_sources_stops_removed_ones_and_shares_the_new_watchlist(
    tmp_path: Path,
) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    b = write_jsonl(tmp_path / "b.jsonl", [post(2, "Acme Rail is brilliant, cheers", minutes=2)])
    old = write_jsonl(tmp_path / "old.jsonl", [])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(_text(tmp_path, a, extra_sources=_source("b", b) + _source("old", old)), encoding="utf-8")
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: len(notifier.keys) == 2)
        await wait_until(lambda: set(daemon._source_tasks) == {"replay", "b", "old"})
        unchanged, changed, removed = (runtime.coordinators[n] for n in ("replay", "b", "old"))
        changed_task, removed_task = daemon._source_tasks["b"], daemon._source_tasks["old"]
        closed: list[str] = []

        def closing(name: str):  # type: ignore[no-untyped-def]
            async def aclose() -> None:
                closed.append(name)

            return aclose

        changed.source.aclose = closing("b")  # type: ignore[method-assign]
        removed.source.aclose = closing("old")  # type: ignore[method-assign]

        # One reload: a new brand, source b with another batch size, source "old" gone.
        cfg.write_text(
            _text(tmp_path, a, extra_sources=_source("b", b, batch=50), brands=NEWCO), encoding="utf-8"
        )
        assert await daemon.reload("SIGHUP") is True
        assert runtime.coordinators["replay"] is unchanged
        assert runtime.coordinators["b"] is not changed and "old" not in runtime.coordinators
        await wait_until(lambda: changed_task.done() and removed_task.done())
        assert sorted(closed) == ["b", "old"]
        assert daemon._source_tasks["b"] is not changed_task and not daemon._source_tasks["b"].done()
        assert "old" not in daemon._source_tasks

        # New posts on both sources match the brand added in the same reload.
        _append(a, post(3, "Newco is brilliant, via a", minutes=3))
        _append(b, post(4, "Newco is brilliant, via b", minutes=4))
        await wait_until(
            lambda: (
                {("Newco", "Newco is brilliant, via a"), ("Newco", "Newco is brilliant, via b")}
                <= _alerted(notifier)
            )
        )
        with runtime.db.session() as session:
            ids = [m.external_id for m in session.query(models.Mention).all()]
        assert sorted(ids) == ["p1", "p2", "p3", "p4"]  # each stored once
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_a_source_disabled_for_credentials_polls_again_after_a_reload(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "p.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(_text(tmp_path, replay), encoding="utf-8")
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    source = runtime.coordinators["replay"].source
    real_poll = source.poll
    refusals = [AuthError("replay token: cannot read secret file /run/secrets/token: No such file")]

    async def poll(cursor: Cursor) -> PollResult:
        if refusals:
            raise refusals.pop()  # the token file is missing until the operator adds it
        return await real_poll(cursor)

    source.poll = poll  # type: ignore[method-assign]
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: runtime.coordinators["replay"].disabled == "auth")
        await wait_until(lambda: any(i.kind == "ops" for n in notifier.sent for i in n.items))
        ops = next(i for n in notifier.sent for i in n.items if i.kind == "ops")
        assert "restart repmon for environment variables" in ops.reason
        with runtime.db.session() as session:
            assert session.get(models.SourceHealth, "replay").disabled_reason  # type: ignore[union-attr]

        assert await daemon.reload("SIGHUP") is True  # configuration unchanged, token file fixed
        await wait_until(lambda: ("Acme Rail", "Acme Rail is brilliant, thanks") in _alerted(notifier))
        assert runtime.coordinators["replay"].disabled is None
        with runtime.db.session() as session:
            assert session.get(models.SourceHealth, "replay").disabled_reason is None  # type: ignore[union-attr]
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_reload_rebuilds_the_alert_receiver(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "p.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(
        _text(tmp_path, replay, alerts=f"  console: false\n  jsonl_path: {first}\n"), encoding="utf-8"
    )
    runtime = Runtime(
        load_config(cfg),
        notifier_factory=lambda settings: build_notifier(settings, {}),
        classifier=StubClassifier(),
        env={},
    )
    upgrade(runtime.db)
    old_receiver = runtime.notifier
    daemon = Daemon(runtime, config_path=cfg)
    task = asyncio.create_task(daemon.run())

    def lines(path: Path) -> int:
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    try:
        await wait_until(lambda: lines(first) == 1)
        cfg.write_text(
            _text(tmp_path, replay, alerts=f"  console: false\n  jsonl_path: {second}\n"), encoding="utf-8"
        )
        assert await daemon.reload("SIGHUP") is True
        assert runtime.notifier is not old_receiver
        _append(replay, post(2, "Acme Rail is brilliant again", minutes=2))
        await wait_until(lambda: lines(second) == 1)
        assert lines(first) == 1
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


def test_reload_warns_about_settings_that_need_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replay = write_jsonl(tmp_path / "p.jsonl", [])
    text = _text(tmp_path, replay)
    runtime = Runtime(load(text), notifier=CapturingNotifier(), classifier=StubClassifier(), env={})
    caplog.set_level(logging.WARNING, logger="repmon")
    runtime.reload(load(text.replace("health_port: null", "health_port: 9999")))
    assert any("daemon.health_port changed; restart repmon" in r.getMessage() for r in caplog.records)
