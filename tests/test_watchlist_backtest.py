"""`repmon watchlist test`: what a watchlist change adds and drops on stored mentions, before it goes live."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from monitor.backtest import backtest, print_backtest
from monitor.cli import app
from tests.pipeline_util import T0, config_text, load, make_runtime, post, write_jsonl

POSTS = [
    post(1, "Acme Rail is late again", minutes=1),
    post(2, "acme rail thanks for the coffee", minutes=2),
    post(3, "ACME anvils are the best", minutes=3),  # only the broad word
    post(4, "acme roadrunner edition", minutes=4),  # only the broad word
    post(5, "kettle co kettle broke", minutes=5),
    post(6, "weather is nice", minutes=6),  # matches nobody
]


async def _stored(tmp_path: Path) -> tuple[str, Path]:
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    runtime, _ = make_runtime(load(config_text(db_url, replay)), tmp_path)
    try:
        await runtime.run_once()
    finally:
        await runtime.aclose()
    return db_url, replay


async def test_added_and_dropped_mentions_and_broad_terms(tmp_path: Path) -> None:
    db_url, replay = await _stored(tmp_path)
    current = load(config_text(db_url, replay))
    proposed_text = (
        config_text(db_url, replay)
        .replace('keywords: ["acme rail"]', 'keywords: ["acme rail", "acme"]')
        .replace('keywords: ["kettle co"]', 'keywords: ["kettle company"]')
    )
    proposed = load(proposed_text)
    report = backtest(current, proposed, now=T0 + timedelta(days=1), samples=1)

    acme, kettle = report["brands"]["Acme Rail"], report["brands"]["Kettle Co"]
    assert report["mentions"] == len(POSTS)  # unmatched mentions are kept for exactly this
    assert (acme["current"], acme["proposed"], acme["added_n"], acme["dropped_n"]) == (2, 4, 2, 0)
    assert len(acme["added"]) == 1 and "acme" in acme["added"][0]["text"].lower()  # samples=1
    assert (kettle["current"], kettle["proposed"], kettle["added_n"], kettle["dropped_n"]) == (1, 0, 0, 1)
    assert report["too_broad"] == []  # two more matches is no alarm


BROAD_POSTS = [
    *(post(i, f"acme rail {word}", minutes=i) for i, word in enumerate(("late", "cold", "fine"))),
    *(post(10 + i, f"the weather is nice today, number {i}", minutes=10 + i) for i in range(40)),
]


async def _stored_posts(tmp_path: Path, posts: list[dict[str, object]]) -> tuple[str, Path]:
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    replay = write_jsonl(tmp_path / "posts.jsonl", posts)
    runtime, _ = make_runtime(load(config_text(db_url, replay)), tmp_path)
    try:
        await runtime.run_once()
    finally:
        await runtime.aclose()
    return db_url, replay


async def test_a_change_that_matches_nearly_everything_is_flagged(tmp_path: Path) -> None:
    db_url, replay = await _stored_posts(tmp_path, BROAD_POSTS)
    current = load(config_text(db_url, replay))
    # 'NOT lang:de' is checked on every post: with the keyword it matches all stored mentions
    proposed = load(
        config_text(db_url, replay).replace(
            'keywords: ["acme rail"]', "keywords: [\"acme rail\"]\n    query: 'NOT lang:de'"
        )
    )
    report = backtest(current, proposed, now=T0 + timedelta(days=1))
    (warning,) = report["too_broad"]
    assert (warning["brand"], warning["current"], warning["proposed"]) == ("Acme Rail", 3, len(BROAD_POSTS))
    assert warning["terms"] == ["NOT lang:de"]  # what the added posts matched through
    out = Console(width=200, record=True)
    print_backtest(report, out)
    assert "Acme Rail would match 43 stored mentions instead of 3" in out.export_text()


async def test_the_brand_name_matching_most_of_a_brand_search_is_no_alarm(tmp_path: Path) -> None:
    # sources search for the brand, so its own name matches (nearly) every stored mention
    posts = [
        post(i, f"acme is {'late' if i % 2 else 'on time'} again, day {i}", minutes=i) for i in range(40)
    ]
    db_url, replay = await _stored_posts(tmp_path, posts)
    current = load(config_text(db_url, replay))
    proposed = load(config_text(db_url, replay).replace('keywords: ["acme rail"]', 'keywords: ["acme"]'))
    report = backtest(proposed, proposed, now=T0 + timedelta(days=1))
    assert report["brands"]["Acme Rail"]["proposed"] == 40 and report["too_broad"] == []
    grown = backtest(current, proposed, now=T0 + timedelta(days=1))  # from nothing to everything
    assert [w["brand"] for w in grown["too_broad"]] == ["Acme Rail"]


async def test_cli_reports_the_same_as_json(tmp_path: Path) -> None:
    db_url, replay = await _stored(tmp_path)
    cfg = tmp_path / "current.yaml"
    cfg.write_text(config_text(db_url, replay), encoding="utf-8")
    new = tmp_path / "proposed.yaml"
    new.write_text(
        config_text(db_url, replay).replace('keywords: ["acme rail"]', 'keywords: ["acme rail", "acme"]'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["watchlist", "test", "-c", str(cfg), "--file", str(new), "--days", "3650", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["brands"]["Acme Rail"]["added_n"] == 2 and report["brands"]["Kettle Co"]["added_n"] == 0
    text = CliRunner().invoke(
        app, ["watchlist", "test", "-c", str(cfg), "--file", str(new), "--days", "3650"]
    )
    flat = " ".join(text.output.split())
    assert "added for Acme Rail" in flat and "warning" not in flat


async def test_cli_brand_is_case_insensitive_and_days_are_capped(tmp_path: Path) -> None:
    db_url, replay = await _stored(tmp_path)
    cfg = tmp_path / "current.yaml"
    cfg.write_text(config_text(db_url, replay), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["watchlist", "test", "acme rail", "-c", str(cfg), "--days", "800000", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["brands"]) == ["Acme Rail"] and report["mentions"] == len(POSTS)
    unknown = CliRunner().invoke(app, ["watchlist", "test", "acme", "-c", str(cfg)])
    assert unknown.exit_code == 2 and "unknown brand: acme" in unknown.output
