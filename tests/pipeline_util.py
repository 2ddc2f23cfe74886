"""Helpers for pipeline tests: write replay files and configs, build runtimes with fakes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.console import JsonlNotifier
from classifiers.base import Classifier
from classifiers.testing import StubClassifier
from config.loader import LoadedConfig, parse_config
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def post(n: int, text: str, *, minutes: float = 0, source: str = "x", **extra: Any) -> dict[str, Any]:
    """One replay record."""
    return {
        "id": f"p{n}",
        "source": source,
        "text": text,
        "created_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "author": extra.pop("author", {"handle": f"user{n}", "followers": 100}),
        "url": f"https://example.org/p{n}",
        **extra,
    }


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write replay records, one JSON object per line."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def config_text(
    db_url: str,
    replay: Path,
    *,
    extra_sources: str = "",
    alerts: str = "",
    batch: int = 100,
    extra: str = "",
    interval: str | None = None,
    health_port: int | None = None,
) -> str:
    """A configuration with two brands and one replay source.

    A daemon test sets ``interval`` (the replay source's, e.g. "1s") and ``health_port`` 0 (any free
    port) so it runs quickly and serves /healthz.
    """
    source_interval = f"\n    interval: {interval}" if interval else ""
    port = "null" if health_port is None else health_port
    return f"""
storage:
  url: {db_url}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
  - name: Kettle Co
    handles: ["@kettleco"]
    keywords: ["kettle co"]
    channels: ["#kettle"]
sources:
  - name: replay
    type: replay
    path: {replay}
    batch_size: {batch}{source_interval}
{extra_sources}
alerts:
  group_wait: 0s
  group_interval: 0s
  max_per_minute: 1000
{alerts}
spikes:
  clock: data
daemon:
  health_port: {port}
{extra}"""


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait (polling every 50 ms) until ``predicate()`` is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def make_runtime(
    config: LoadedConfig,
    tmp_path: Path,
    *,
    classifier: Classifier | None = None,
    clock: FakeClock | None = None,
    owner: str = "test-daemon",
) -> tuple[Runtime, JsonlNotifier]:
    """A runtime with a JSONL notifier and a stub classifier, schema upgraded."""
    notifier = JsonlNotifier(tmp_path / "alerts.jsonl")
    runtime = Runtime(
        config,
        notifier=notifier,
        classifier=classifier or StubClassifier(),
        clock=clock or FakeClock(T0 + timedelta(hours=1)),
        env={},
        owner=owner,
    )
    upgrade(runtime.db)
    return runtime, notifier


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    """``repmon run`` as a real process (no Slack credentials: alerts go where the config says)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg), "--log-level", "INFO"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


def load(text: str) -> LoadedConfig:
    """Parse configuration text."""
    return parse_config(text, "test.yaml")
