"""``repmon status``: a source's problem is shown while it has one, not after it recovered."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

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
