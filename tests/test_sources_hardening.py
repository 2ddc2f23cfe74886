"""Sources against awkward input: lone surrogates, repeated ids, future dates, feed languages;
and a daemon source task that survives an unexpected exception."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

import monitor.coordinator
from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from config.loader import load_config
from monitor import models
from monitor.daemon import Daemon
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from sources.appstore import AppStoreOptions, AppStoreSource, parse_review_feed
from sources.base import Author, Mention
from sources.replay import mention_from_record
from sources.rss import entries_to_mentions, parse_feed
from sources.text import clip, html_to_text
from tests.pipeline_util import config_text, load, make_runtime, post, wait_until, write_jsonl
from tests.replay_server import make_ctx

LONE = "\ud83d"  # the high half of a cut emoji: JSON's "\ud83d" escape decodes to it
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# -- lone surrogates ---------------------------------------------------------------------------


def test_text_helpers_replace_lone_surrogates() -> None:
    assert clip(f"great {LONE}") == "great \ufffd"
    assert html_to_text(f"<p>great {LONE}</p>") == "great \ufffd"
    assert html_to_text(f"great {LONE}") == "great \ufffd"
    # a whole emoji (no surrogates in a Python str) is untouched
    assert clip("great \U0001f600") == "great \U0001f600"


def test_scrub_mention_cleans_every_text_field() -> None:
    from sources.text import scrub_mention

    mention = Mention(
        source="x",
        external_id=f"id{LONE}",
        text=f"t{LONE}",
        created_at=NOW,
        url=f"https://example.org/{LONE}",
        author=Author(handle=f"h{LONE}", name=f"n{LONE}", id="1", followers=3),
        title=f"title{LONE}",
        mentioned_handles=(f"m{LONE}",),
        raw={"text": f"r{LONE}", "nested": [f"x{LONE}", 1]},
    )
    clean = scrub_mention(mention)
    for value in (
        clean.external_id,
        clean.text,
        clean.url,
        clean.author.handle,
        clean.author.name,
        clean.title,
        clean.mentioned_handles[0],
        json.dumps(clean.raw, ensure_ascii=False),
    ):
        assert isinstance(value, str)
        value.encode("utf-8")  # would raise UnicodeEncodeError with a surrogate left
        assert LONE not in value
    assert clean.author.followers == 3 and clean.created_at == NOW


def test_replay_record_with_lone_surrogate_is_scrubbed() -> None:
    line = (
        '{"id": "s1", "text": "Acme Rail \\ud83d", "title": "T \\ud83d", "url": "https://e.org/\\ud83d",'
        ' "author": {"handle": "h\\ud83d", "name": "N\\ud83d"}, "created_at": "2026-03-02T09:00:00Z"}'
    )
    mention = mention_from_record(json.loads(line), source_name="replay")
    assert mention.text == "Acme Rail \ufffd"
    assert mention.title == "T \ufffd"
    assert mention.url == "https://e.org/\ufffd"
    assert mention.author.handle == "h\ufffd" and mention.author.name == "N\ufffd"


async def test_replay_line_with_lone_surrogate_is_stored(sqlite_url: str, tmp_path: Path) -> None:
    replay = tmp_path / "posts.jsonl"
    # json.dumps writes the lone surrogate as the escape "\ud83d", as an API payload would carry it
    records = [
        post(1, f"Acme Rail lost my bag {LONE}", minutes=1, author={"handle": f"user{LONE}", "name": LONE}),
        post(2, "Acme Rail is on time today", minutes=2),
    ]
    write_jsonl(replay, records)
    assert "\\ud83d" in replay.read_text(encoding="utf-8")
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay)), tmp_path)
    try:
        summary = await runtime.run_once()
        assert summary.failed_sources == []
        assert summary.stored == 2
        with runtime.db.session() as session:
            rows = {m.external_id: m for m in session.execute(select(models.Mention)).scalars()}
        assert rows["p1"].text == "Acme Rail lost my bag \ufffd"
        assert rows["p1"].author_handle == "user\ufffd"
        assert "p2" in rows
    finally:
        await runtime.aclose()


# -- the daemon's source task survives ---------------------------------------------------------


async def test_daemon_source_task_survives_unexpected_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    replay = write_jsonl(
        tmp_path / "posts.jsonl",
        [post(i, f"Acme Rail is brilliant, thanks {i}", minutes=i) for i in range(1, 4)],
    )
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(
        config_text(f"sqlite:///{tmp_path / 'd.db'}", replay, interval="1s", health_port=None),
        encoding="utf-8",
    )
    real_store_poll = monitor.coordinator.store_poll
    calls = {"n": 0}

    def flaky_store_poll(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("boom while storing")
        return real_store_poll(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(monitor.coordinator, "store_poll", flaky_store_poll)
    monkeypatch.setattr(monitor.coordinator, "BASE_BACKOFF", 0.2)
    runtime = Runtime(load_config(cfg), notifier=CapturingNotifier(), classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    caplog.set_level(logging.ERROR, logger="repmon.daemon")

    def health() -> models.SourceHealth | None:
        with runtime.db.session() as session:
            row = session.get(models.SourceHealth, "replay")
            if row is not None:
                session.expunge(row)
            return row

    task = asyncio.create_task(daemon.run())
    try:
        # the failure is recorded like any failed poll (what /healthz and `repmon status` read)
        await wait_until(lambda: (h := health()) is not None and h.errors_total >= 1)
        row = health()
        assert row is not None and "RuntimeError: boom while storing" in (row.last_error or "")
        # and the source keeps being polled: the third try stores everything
        await wait_until(lambda: (h := health()) is not None and h.mentions_total == 3)
        row = health()
        assert row is not None and row.errors_total == 2 and row.consecutive_failures == 0
        assert not daemon._source_tasks["replay"].done()
        logged = [r for r in caplog.records if r.name == "repmon.daemon" and r.exc_info]
        assert logged and "replay" in logged[0].getMessage()
        assert runtime.metrics.source_errors.labels("replay", "unexpected")._value.get() == 2
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, timeout=20)


# -- RSS ---------------------------------------------------------------------------------------


def _rss(items: str, title: str = "Feed") -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://example.org/</link>{items}</channel></rss>"
    ).encode()


def test_repeated_guid_in_one_feed_is_skipped_and_counted() -> None:
    parsed = parse_feed(
        _rss(
            '<item><guid isPermaLink="false">42</guid><title>First text</title></item>'
            '<item><guid isPermaLink="false">42</guid><title>Second, different text</title></item>'
            '<item><guid isPermaLink="false">43</guid><title>Another</title></item>'
            '<item><guid isPermaLink="false">44</guid></item>'
        )
    )
    mentions, reasons = entries_to_mentions(
        parsed, source_name="f", fetched_at=NOW, scope="https://example.org/feed"
    )
    assert [m.text for m in mentions] == ["First text", "Another"]
    assert reasons == {"duplicate_id": 1, "empty_entry": 1}


def test_content_hash_ids_are_scoped_to_their_feed() -> None:
    body = _rss("<item><description>The same undated text, no id, no link</description></item>")
    one, _ = entries_to_mentions(
        parse_feed(body), source_name="a", fetched_at=NOW, scope="https://a.example/f"
    )
    two, _ = entries_to_mentions(
        parse_feed(body), source_name="b", fetched_at=NOW, scope="https://b.example/f"
    )
    assert len(one) == len(two) == 1
    assert one[0].external_id != two[0].external_id


def test_feed_entry_dated_in_the_future_is_dated_now() -> None:
    far = format_datetime(NOW + timedelta(days=400))
    near = format_datetime(NOW + timedelta(minutes=5))
    past = format_datetime(NOW - timedelta(days=1))
    parsed = parse_feed(
        _rss(
            f"<item><guid>https://e.org/1</guid><title>far</title><pubDate>{far}</pubDate></item>"
            f"<item><guid>https://e.org/2</guid><title>near</title><pubDate>{near}</pubDate></item>"
            f"<item><guid>https://e.org/3</guid><title>past</title><pubDate>{past}</pubDate></item>"
        )
    )
    mentions, _ = entries_to_mentions(parsed, source_name="f", fetched_at=NOW)
    dates = {m.text: m.created_at for m in mentions}
    assert dates["far"] == NOW
    assert dates["near"] == NOW + timedelta(minutes=5)  # clock skew within the tolerance stays
    assert dates["past"] == NOW - timedelta(days=1)


def test_not_after() -> None:
    from sources.text import not_after

    assert not_after(NOW + timedelta(hours=1), NOW) == NOW
    assert not_after(NOW + timedelta(minutes=1), NOW) == NOW + timedelta(minutes=1)


def test_feed_entry_with_lone_surrogate_is_scrubbed() -> None:
    parsed = {
        "feed": {"title": "F"},
        "entries": [
            {"id": f"https://e.org/{LONE}", "title": f"Title {LONE}", "link": f"https://e.org/{LONE}"}
        ],
    }
    (mention,), _ = entries_to_mentions(parsed, source_name="f", fetched_at=NOW)
    assert LONE not in mention.external_id and LONE not in (mention.url or "")
    assert mention.text == "Title \ufffd"


# -- App Store ---------------------------------------------------------------------------------

_APPSTORE_XML = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns:im="http://itunes.apple.com/rss" xmlns="http://www.w3.org/2005/Atom" xml:lang="ja">
  <id>https://itunes.apple.com/jp/rss/customerreviews/id=1/xml</id>
  <updated>2020-08-12T08:00:37-07:00</updated>
  <entry>
    <updated>2020-08-12T01:00:00-07:00</updated>
    <id>111</id>
    <title>良い</title>
    <content type="text">とても良いアプリです</content>
    <im:rating>5</im:rating>
    <author><name>太郎</name></author>
  </entry>
  <entry xml:lang="en-US">
    <updated>2020-08-12T02:00:00-07:00</updated>
    <id>112</id>
    <title>Good</title>
    <content type="text">Works well</content>
    <im:rating>4</im:rating>
  </entry>
</feed>
""".encode()


def test_appstore_xml_language_comes_from_xml_lang() -> None:
    reviews = parse_review_feed(_APPSTORE_XML, "xml")
    assert [r.language for r in reviews] == ["ja", "en"]
    source = AppStoreSource("as", AppStoreOptions(app_id="12345678", countries=["jp"]), make_ctx())
    assert source._mention(reviews[0], "jp").language == "ja"
