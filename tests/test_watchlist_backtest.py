"""`repmon watchlist test`: what a watchlist change adds and drops on stored mentions, before it goes live."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from monitor.backtest import backtest
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
    # 'acme' alone matches 4 of 6 stored mentions: flagged; the phrase 'acme rail' is not
    flagged = {(w["brand"], w["term"]) for w in report["broad_terms"]}
    assert ("Acme Rail", "acme") in flagged
    assert all(" " not in term for _, term in flagged)


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
    assert "added for Acme Rail" in flat and "term 'acme' matches" in flat
