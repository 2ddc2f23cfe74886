"""Copies and their originals through the pipeline: a story alerts once, whatever order it arrives in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import aliased

from monitor import models
from monitor.runtime import Runtime
from tests.pipeline_util import config_text, load, make_runtime, post

STORY = "Acme Rail is terrible, my train broke down again and I am waiting for a refund for weeks"
BIG = {"handle": "bigacct", "followers": 500_000}
SMALL = {"handle": "smallacct", "followers": 3}
#: Untagged complaints from small accounts do not alert (the reach floor).
REACH_FLOOR = "thresholds:\n  complaint_min_reach: 1000\n"


def _append(path: Path, *records: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _state(runtime: Runtime) -> tuple[list[str], dict[str, str | None]]:
    """Alert keys, and every mention's original (external ids)."""
    original = aliased(models.Mention)
    with runtime.db.session() as session:
        keys = list(session.execute(select(models.Alert.key).order_by(models.Alert.id)).scalars())
        rows = session.execute(
            select(models.Mention.external_id, original.external_id).outerjoin(
                original, models.Mention.duplicate_of_id == original.id
            )
        )
        return keys, {copy_id: original_id for copy_id, original_id in rows}


@pytest.mark.parametrize("retweet_first", [True, False])
async def test_a_post_and_its_retweet_in_one_poll_alert_once_for_the_original(
    db_url: str, tmp_path: Path, retweet_first: bool
) -> None:
    # X lists newest first, so the retweet is usually stored before the post it retweets.
    original = post(1, STORY, author=BIG)
    retweet = post(2, "RT @bigacct: " + STORY, minutes=5, author=SMALL, repost_of="p1")
    replay = tmp_path / "posts.jsonl"
    _append(replay, *([retweet, original] if retweet_first else [original, retweet]))
    runtime, notifier = make_runtime(load(config_text(db_url, replay)), tmp_path)
    try:
        await runtime.run_once()
        keys, links = _state(runtime)
        assert keys == ["complaint:Acme Rail:x:p1"]
        assert links == {"p1": None, "p2": "p1"}
        assert [k for r in notifier.records() for k in r["alert_keys"]] == keys
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(
    "copy",
    [
        post(2, "RT @bigacct: " + STORY, minutes=5, author=BIG | {"handle": "other"}, repost_of="p1"),
        post(2, STORY, minutes=30, source="mastodon", author=BIG | {"handle": "other"}),
    ],
    ids=["retweet", "same-text-elsewhere"],
)
async def test_a_copy_that_alerted_before_its_original_arrived_is_the_story_alert(
    db_url: str, tmp_path: Path, copy: dict[str, Any]
) -> None:
    # The original is not stored yet (not fetched, or its source polls later): the copy is all
    # the team can see, so it alerts. When the original arrives it becomes the story's root but
    # does not alert the same story again.
    replay = tmp_path / "posts.jsonl"
    _append(replay, copy)
    runtime, notifier = make_runtime(load(config_text(db_url, replay)), tmp_path)
    try:
        await runtime.run_once()
        assert _state(runtime)[0] == [f"complaint:Acme Rail:{copy['source']}:p2"]
        _append(replay, post(1, STORY, author=BIG))
        await runtime.run_once()
        keys, links = _state(runtime)
        assert keys == [f"complaint:Acme Rail:{copy['source']}:p2"]
        assert links == {"p2": "p1", "p1": None}
        assert len([k for r in notifier.records() for k in r["alert_keys"]]) == 1
    finally:
        await runtime.aclose()


async def test_an_original_arriving_after_a_copy_that_did_not_alert_alerts(
    db_url: str, tmp_path: Path
) -> None:
    # A small account's retweet stays under the reach floor; the big original, stored a poll
    # later, is the story's alert and must not be silenced by being linked to its own retweet.
    replay = tmp_path / "posts.jsonl"
    _append(replay, post(2, "RT @bigacct: " + STORY, minutes=5, author=SMALL, repost_of="p1"))
    runtime, _ = make_runtime(load(config_text(db_url, replay, extra=REACH_FLOOR)), tmp_path)
    try:
        await runtime.run_once()
        assert _state(runtime)[0] == []
        _append(replay, post(1, STORY, author=BIG))
        await runtime.run_once()
        keys, links = _state(runtime)
        assert keys == ["complaint:Acme Rail:x:p1"]
        assert links == {"p2": "p1", "p1": None}
    finally:
        await runtime.aclose()
