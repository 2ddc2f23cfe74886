"""``repmon status``: a source's problem is shown while it has one, not after it recovered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from monitor import models
from monitor.cli import app
from monitor.db import Database
from monitor.migrate import upgrade
from tests.pipeline_util import config_text, write_jsonl

SOURCES = """\
  - name: recovered
    type: rss
    url: https://example.org/recovered.xml
  - name: failing
    type: rss
    url: https://example.org/failing.xml
  - name: gone
    type: rss
    url: https://example.org/gone.xml
"""


def _health(name: str, **values: object) -> models.SourceHealth:
    return models.SourceHealth(source_name=name, kind="rss", **values)


def test_status_shows_a_source_error_only_while_the_source_is_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'status.db'}"
    cfg = tmp_path / "repmon.yaml"
    replay = write_jsonl(tmp_path / "posts.jsonl", [])
    cfg.write_text(config_text(url, replay, extra_sources=SOURCES), encoding="utf-8")
    db = Database(url)
    upgrade(db)
    day = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with db.session() as session:
        session.add_all(
            [
                _health(
                    "recovered",
                    last_error="transient: HTTP 500 from example.org",
                    last_error_at=day.replace(hour=8),
                    last_success_at=day,
                    consecutive_failures=0,
                ),
                _health(
                    "failing",
                    last_error="transient: HTTP 503 from example.org",
                    last_error_at=day,
                    last_success_at=day.replace(hour=7),
                    consecutive_failures=4,
                ),
                _health("gone", disabled_reason="the remote side answered 410 Gone", consecutive_failures=0),
            ]
        )
    db.dispose()

    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    sources = {s["name"]: s for s in json.loads(result.stdout)["sources"]}
    assert sources["recovered"]["problem"] is None
    assert sources["recovered"]["last_error"] == "transient: HTTP 500 from example.org"  # kept as history
    assert sources["failing"]["problem"] == "transient: HTTP 503 from example.org"
    assert sources["gone"]["problem"] == "the remote side answered 410 Gone"
    assert sources["replay"]["problem"] == "not polled yet"

    table = runner.invoke(app, ["status", "-c", str(cfg)])
    assert table.exit_code == 0, table.output
    # the problem column wraps in a narrow terminal: look for the status codes alone
    assert "500" not in table.output
    assert "503" in table.output and "Gone" in table.output


def test_status_shows_which_daemon_polls_each_source_and_which_daemons_are_alive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'status.db'}"
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(config_text(url, write_jsonl(tmp_path / "posts.jsonl", [])), encoding="utf-8")
    db = Database(url)
    upgrade(db)
    now = datetime.now(UTC)
    with db.session() as session:
        session.add_all(
            [
                _health("replay", lease_owner="host-a:1:aaaaaa", lease_until=now + timedelta(minutes=5)),
                _health("removed", lease_owner="host-b:2:bbbbbb", lease_until=now - timedelta(hours=1)),
                models.DaemonHeartbeat(
                    owner="host-a:1:aaaaaa", roles="alert,classify,poll", started_at=now, heartbeat_at=now
                ),
                models.DaemonHeartbeat(
                    owner="host-b:2:bbbbbb",
                    roles="poll",
                    started_at=now - timedelta(hours=2),
                    heartbeat_at=now - timedelta(hours=1),
                ),
            ]
        )
    db.dispose()
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["replay"]["lease_owner"] == "host-a:1:aaaaaa"
    assert sources["removed"]["lease_owner"] is None  # its lease ran out
    daemons = {d["owner"]: d for d in report["daemons"]}
    assert daemons["host-a:1:aaaaaa"]["alive"] and daemons["host-a:1:aaaaaa"]["sources"] == 1
    assert not daemons["host-b:2:bbbbbb"]["alive"]
    table = runner.invoke(app, ["status", "-c", str(cfg)], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "Daemons" in table.output and "stale" in table.output and "host-a:1:aaaaaa" in table.output


async def test_heartbeat_rows_of_daemons_gone_for_a_day_are_deleted(tmp_path: Path) -> None:
    from alerts.testing import CapturingNotifier
    from classifiers.testing import StubClassifier
    from monitor.clock import FakeClock
    from monitor.runtime import Runtime
    from tests.pipeline_util import T0, load

    url = f"sqlite:///{tmp_path / 'status.db'}"
    runtime = Runtime(
        load(config_text(url, write_jsonl(tmp_path / "posts.jsonl", []))),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        clock=FakeClock(T0),
        env={},
        owner="me",
    )
    upgrade(runtime.db)
    with runtime.db.session() as session:
        for owner, age in (("yesterday", timedelta(hours=25)), ("recent", timedelta(hours=2))):
            session.add(
                models.DaemonHeartbeat(owner=owner, roles="poll", started_at=T0 - age, heartbeat_at=T0 - age)
            )
    await runtime.heartbeat("poll")
    with runtime.db.session() as session:
        owners = set(session.execute(select(models.DaemonHeartbeat.owner)).scalars())
    assert owners == {"me", "recent"}
    await runtime.aclose()
