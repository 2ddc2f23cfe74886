"""``repmon digest``: periods, printed summary, --html, --slack (against the mock Slack server)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from alerts.digest import build_digest
from alerts.digest_cli import digest_command, print_digest, resolve_period
from config.loader import parse_config
from monitor.db import Database
from monitor.migrate import upgrade
from tests.mock_slack import BOT_TOKEN, MockSlack
from tests.test_digest import CONFIG, WEEK, Seeder, seed_week


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("digest")(digest_command)
    app.command("noop")(lambda: None)  # two commands: typer then keeps "digest" as a subcommand
    return app


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = Database(f"sqlite:///{tmp_path / 'repmon.db'}")
    upgrade(db)
    seed_week(Seeder(db))
    db.dispose()
    path = tmp_path / "repmon.yaml"
    path.write_text(f"storage:\n  url: sqlite:///{tmp_path / 'repmon.db'}\n  url_env: null\n{CONFIG}")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("REPMON_CONFIG", raising=False)
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["digest", *args], env=env)
    return result.exit_code, result.output


def test_resolve_period_defaults_and_one_sided_ranges() -> None:
    week = resolve_period(None, None, "Europe/Amsterdam", now=datetime(2024, 5, 8, 12, tzinfo=UTC))
    assert week.slug == "2024-W18"
    assert resolve_period(date(2024, 4, 29), None, "Europe/Amsterdam").slug == "2024-W18"
    assert resolve_period(None, date(2024, 5, 5), "Europe/Amsterdam").slug == "2024-W18"
    assert (
        resolve_period(date(2024, 5, 1), date(2024, 5, 1), "Europe/Amsterdam").slug == "2024-05-01_2024-05-01"
    )
    with pytest.raises(ValueError, match="before"):
        resolve_period(date(2024, 5, 2), date(2024, 5, 1), "Europe/Amsterdam")


def test_prints_a_summary_and_writes_html(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "week.html"
    code, output = invoke(
        "--config", str(config), "--from", "2024-04-29", "--to", "2024-05-05", "--html", str(out)
    )
    assert code == 0, output
    assert "Acme" in output and "Week 18, 2024" in output
    assert "mentions 10 (+100% vs 5)" in output and "net sentiment -11" in output
    flat = " ".join(output.split())
    assert "positive 33%" in flat and "neutral 22%" in flat and "negative 45%" in flat  # sum 100, not 99
    assert "refund delayed (4)" in output
    assert "Newbie is new" in " ".join(output.split())
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "Newbie" in html and "Rival" in html


def test_brand_filter_and_errors(config: Path) -> None:
    code, output = invoke(
        "-c", str(config), "--brand", "Newbie", "--from", "2024-04-29", "--to", "2024-05-05"
    )
    assert code == 0 and "Newbie" in output and "Acme ·" not in output
    code, output = invoke("-c", str(config), "--brand", "Nope")
    assert code == 2 and "unknown brand(s): Nope" in output
    code, output = invoke("-c", str(config), "--from", "29-04-2024")
    assert code == 2 and "YYYY-MM-DD" in output
    code, output = invoke("-c", str(config), "--from", "2024-05-05", "--to", "2024-05-01")
    assert code == 2 and "before" in output


def test_slack_without_token_fails_clearly(config: Path) -> None:
    code, output = invoke("-c", str(config), "--slack")
    assert code == 2 and "SLACK_BOT_TOKEN" in output


def test_unreachable_slack_is_one_clear_line(config: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(config.read_text() + f"slack:\n  api_url: http://127.0.0.1:{port}/api/\n")
    result = CliRunner().invoke(
        _app(), ["digest", "-c", str(config), "--slack"], env={"SLACK_BOT_TOKEN": BOT_TOKEN}
    )
    assert result.exit_code == 1, result.output
    assert "Slack unreachable at http://127.0.0.1:" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_missing_schema_and_config_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(f"storage:\n  url: sqlite:///{tmp_path / 'none.db'}\n  url_env: null\n{CONFIG}")
    code, output = invoke("-c", str(path))
    assert code == 1 and "repmon db upgrade" in output
    code, output = invoke("-c", str(tmp_path / "missing.yaml"))
    assert code == 2 and "file not found" in output


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


async def test_slack_posts_summary_and_chart(config: Path, slack: MockSlack) -> None:
    config.write_text(
        config.read_text() + f"slack:\n  api_url: {slack.api_url}\n  default_channel: '#webcare'\n"
    )
    code, output = await asyncio.to_thread(
        invoke,
        "-c",
        str(config),
        "--from",
        "2024-04-29",
        "--to",
        "2024-05-05",
        "--brand",
        "Acme",
        "--slack",
        env={"SLACK_BOT_TOKEN": BOT_TOKEN},
    )
    assert code == 0, output
    [root] = slack.roots("#webcare")
    assert "Digest for Acme" in root["text"]
    assert len(slack.uploads) == 1 and slack.uploads[0]["thread_ts"] == root["ts"]
    assert f"posted Acme to #webcare (ts {root['ts']}, chart F" in output


def test_mounted_in_the_main_cli() -> None:
    from monitor.cli import app

    result = CliRunner().invoke(app, ["digest", "--help"])
    assert result.exit_code == 0
    assert "--from" in result.output and "--slack" in result.output and "--html" in result.output


def test_terminal_escapes_in_posts_are_not_printed(config: Path) -> None:
    db = Database(f"sqlite:///{config.parent / 'repmon.db'}")
    Seeder(db, first_id=10_000).mention(
        "Acme",
        datetime(2024, 5, 1, 10, tzinfo=UTC),
        "\x1b]0;pwned\x07 refund delayed \x1b[31mRED\x1b[0m",
        sentiment="negative",
        complaint=0.9,
        followers=10**7,
        author="evil\x1b[2J",
    )
    db.dispose()
    code, output = invoke("-c", str(config), "--brand", "Acme", "--from", "2024-04-29", "--to", "2024-05-05")
    assert code == 0, output
    assert "refund delayed [31mRED" in output  # shown, minus the escape character
    assert "\x1b" not in output and "\x07" not in output


def test_a_long_top_post_is_cut_before_its_link_not_through_it(config: Path) -> None:
    url = "https://example.com/orders/refund-status?id=9876543210"
    db = Database(f"sqlite:///{config.parent / 'repmon.db'}")
    Seeder(db, first_id=10_000).mention(
        "Acme",
        datetime(2024, 5, 1, 10, tzinfo=UTC),
        f"{'refund delayed again ' * 6}{url} still waiting",  # the link spans the 140th character
        sentiment="negative",
        complaint=0.9,
        followers=10**8,
    )
    db.dispose()
    code, output = invoke("-c", str(config), "--brand", "Acme", "--from", "2024-04-29", "--to", "2024-05-05")
    assert code == 0, output
    flat = " ".join(output.split())  # the console wraps long lines
    assert "delayed again…" in flat, output  # cut before the link ...
    assert "https://example.com/orders/refund" not in flat, output  # ... which is not printed half


def test_a_week_before_the_first_mention_is_neither_new_nor_a_change(config: Path) -> None:
    code, output = invoke("-c", str(config), "--brand", "Newbie", "--from", "2024-04-22")
    assert code == 0, output
    assert "mentions 0 (±0% vs 0)" in output and "new" not in output
    assert "No mentions in this period." in output


def test_a_drop_to_one_mention_is_not_shown_as_all_gone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(db)
    seed_week(Seeder(db))
    acme = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    db.dispose()
    console = Console(record=True, width=200)
    print_digest(dataclasses.replace(acme, volume=1, previous_volume=402), console)
    assert "mentions 1 (-99.8% vs 402)" in console.export_text()
