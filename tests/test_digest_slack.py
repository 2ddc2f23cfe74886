"""The digest in Slack: Block Kit content, escaping of hostile posts, and delivery to the mock Slack server."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from alerts.digest import BrandDigest, PostRef, Theme, build_digest
from alerts.digest_slack import digest_blocks, digest_text, make_client, post_digest
from alerts.escape import FIELD_TEXT_LIMIT, HEADER_TEXT_LIMIT, SECTION_TEXT_LIMIT, utf16_len
from config.loader import parse_config
from monitor.db import Database
from monitor.migrate import upgrade
from tests.mock_slack import BOT_TOKEN, HOSTILE_PAYLOADS, MockSlack
from tests.test_digest import CONFIG, WEEK, Seeder, local, mon, seed_week

SLACK_TOKEN_RE = re.compile(r"<[!@#]|<https?:|<mailto:|<[^>]*\|")
OUR_LINK_RE = re.compile(r"<https?://[^\s|<>]+\|open>")


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrandDigest]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('slack') / 'repmon.db'}")
    upgrade(db)
    seed_week(Seeder(db))
    yield build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    db.dispose()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrandDigest]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('slack-hostile') / 'repmon.db'}")
    upgrade(db)
    s = Seeder(db)
    # (A lone surrogate cannot be stored: the pipeline drops it before the database, so do we.)
    payloads = [p for p in HOSTILE_PAYLOADS if not re.search("[\ud800-\udfff]", p)]
    for i, text in enumerate(payloads):
        url = ["javascript:alert(1)", "https://ok.example/a|b>c", "<!channel>"][i % 3]
        s.mention(
            "<!channel> Brand",
            local(mon(i % 7), 10),
            f"refund delayed {text}",
            sentiment="negative",
            complaint=0.9,
            followers=1000 - i,
            url=url,
            author="<!here>",
        )
        s.mention(
            "<!channel> Brand",
            local(mon(i % 7), 12),
            text,
            sentiment="positive",
            followers=900 - i,
            url=url,
            author="@everyone",
        )
    spike = s.incident("<!channel> Brand", local(mon(1), 8), local(mon(1), 9), None)
    s.alert(
        "<!channel> Brand",
        "spike",
        local(mon(1), 8),
        event="raise",
        incident_id=spike,
        details={"top_terms": ["<@U123>", "*bold*", "<!everyone>"]},
    )
    yield build_digest(db, parse_config(CONFIG).settings, "<!channel> Brand", WEEK.start, WEEK.end)
    db.dispose()


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in the blocks."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return out


def test_blocks_summarise_the_week(acme: BrandDigest) -> None:
    blocks = digest_blocks(acme)
    assert blocks[0]["type"] == "header" and "Acme" in blocks[0]["text"]["text"]
    text = "\n".join(_texts(blocks))
    assert "*10* mentions (+100% vs 5)" in text
    assert "*Net sentiment*\n-11 (-71 pts)" in text
    assert "🟢 33% · ⚪ 22% · 🔴 45%" in text and "_1 not scored_" in text  # shares sum to 100
    assert "*refund delayed* (4)" in text
    assert "X 7 (+75%)" in text and "Trustpilot 1 (new)" in text
    assert "Rival: 3 (+200%), net -33" in text
    assert "7 alerts, 6 claimed, 3 handled, 1 not relevant, 3 open" in text
    assert "Time to claim: median 12m, p90 25m" in text
    assert "peak 12 vs 1.5 expected (refund delayed, phone)" in text
    assert "<https://example.org/x/" in text  # most-reached posts link to the post
    assert "Digest for Acme, Week 18, 2024" in digest_text(acme)


def test_blocks_respect_slack_limits(acme: BrandDigest, hostile: BrandDigest) -> None:
    for digest in (acme, hostile):
        blocks = digest_blocks(digest)
        assert len(blocks) <= 50
        for block in blocks:
            if block["type"] == "header":
                assert utf16_len(block["text"]["text"]) <= HEADER_TEXT_LIMIT
            if block["type"] == "section":
                assert utf16_len(block["text"]["text"]) <= SECTION_TEXT_LIMIT
                assert all(utf16_len(f["text"]) <= FIELD_TEXT_LIMIT for f in block.get("fields", []))


def test_hostile_text_pings_and_links_nobody(hostile: BrandDigest) -> None:
    blocks = digest_blocks(hostile)
    texts = [*_texts(blocks), digest_text(hostile)]
    ours = [m for t in texts for m in OUR_LINK_RE.findall(t)]
    assert ours, "safe post links are missing"
    assert all(link.startswith("<https://ok.example/") for link in ours)  # never javascript: or <!channel>
    for text in texts:
        rest = OUR_LINK_RE.sub("", text)
        assert not SLACK_TOKEN_RE.search(rest), rest
        assert "@everyone" not in rest and "@channel" not in rest
        assert "*bold*" not in rest


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


async def test_post_digest_uploads_the_chart_in_the_thread(slack: MockSlack, acme: BrandDigest) -> None:
    client = make_client(BOT_TOKEN, slack.api_url)
    [posted] = await post_digest(client, "#webcare", [acme])
    [root] = slack.roots("#webcare")
    assert root["ts"] == posted.ts and posted.channel == "C0WEBCARE1"
    assert root["blocks"][0]["type"] == "header" and "Digest for Acme" in root["text"]
    [upload] = slack.uploads
    assert upload["completed"] and upload["channel_id"] == "C0WEBCARE1" and upload["thread_ts"] == posted.ts
    assert upload["filename"] == "digest-2024-W18-Acme.png" and posted.file_id == upload["file_id"]
    png = slack.upload_bytes[upload["file_id"]]
    assert png.startswith(b"\x89PNG") and len(png) == upload["length"]
    assert _png_size(png)[0] >= 600


async def test_hostile_digest_goes_over_the_wire_escaped(slack: MockSlack, hostile: BrandDigest) -> None:
    await post_digest(make_client(BOT_TOKEN, slack.api_url), "#webcare", [hostile], charts=False)
    wire = slack.wire_text()
    for token in (
        "<!channel>",
        "<!here",
        "<@U123",
        "<!everyone>",
        "<!subteam",
        "<http://evil",
        "javascript:",
    ):
        assert token not in wire, token
    assert slack.uploads == []


async def test_failed_chart_upload_keeps_the_summary(slack: MockSlack, acme: BrandDigest) -> None:
    slack.fail_next("files.completeUploadExternal", "internal_error")
    [posted] = await post_digest(make_client(BOT_TOKEN, slack.api_url), "#webcare", [acme])
    assert posted.file_id is None and posted.chart_error == "internal_error"
    assert len(slack.roots("#webcare")) == 1


async def test_failed_message_raises(slack: MockSlack, acme: BrandDigest) -> None:
    with pytest.raises(SlackApiError):
        await post_digest(make_client(BOT_TOKEN, slack.api_url), "#nowhere", [acme])
    assert slack.uploads == []


async def test_rate_limit_is_retried(slack: MockSlack, acme: BrandDigest) -> None:
    slack.rate_limit(1, retry_after=0, methods={"chat.postMessage"})
    [posted] = await post_digest(make_client(BOT_TOKEN, slack.api_url), "#webcare", [acme], charts=False)
    assert posted.ts and len(slack.method_calls("chat.postMessage")) == 2


def test_blocks_for_a_brand_without_mentions(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(db)
    ghost = build_digest(db, parse_config(CONFIG).settings, "Ghost", WEEK.start, WEEK.end)
    text = "\n".join(_texts(digest_blocks(ghost)))
    assert "*0* mentions (±0% vs 0)" in text and "No mentions of Ghost have been stored yet." in text
    assert "*Net sentiment*\n–" in text and "median –" in text
    assert "Most-reached" not in text and "Spikes" not in text
    db.dispose()


def test_small_remainder_is_not_shown_as_all_gone(acme: BrandDigest) -> None:
    text = "\n".join(_texts(digest_blocks(dataclasses.replace(acme, volume=1, previous_volume=402))))
    assert "*1* mentions (-99.8% vs 402)" in text
    assert "(-99.8%)" in digest_text(dataclasses.replace(acme, volume=1, previous_volume=402))


def _tracked_post(i: int, url_length: int, text: str = "refund slow") -> PostRef:
    """A post whose URL is ``url_length`` characters of tracking parameters (about twice that &-escaped)."""
    query = "&".join(["a=b"] * (url_length // 4))
    return PostRef(
        mention_id=i,
        source="x",
        created_at=WEEK.start,
        text=f"{text} {i}",
        url=f"https://news.example/{i}?{query}"[:url_length],
        author_handle=f"user{i}",
        followers=100 - i,
    )


def test_long_tracking_links_never_break_a_section(acme: BrandDigest) -> None:
    # Five themes whose examples link ~590-character escaped URLs: ~3,200 characters in all, so one
    # section cut at 3,000 would end inside the fifth link and lose it.
    themes = tuple(Theme(f"term{i}", 5 - i, (_tracked_post(i, 300 + i),)) for i in range(5))
    blocks = digest_blocks(dataclasses.replace(acme, themes=themes))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    parts = [t for t in sections if "refund slow" in t]
    assert len(parts) == 2 and parts[0].startswith("*Top complaint themes*\n")
    for text in parts:
        assert utf16_len(text) <= SECTION_TEXT_LIMIT and "…" not in text  # nothing was cut
        assert text.count("<") == len(OUR_LINK_RE.findall(text)) == text.count(">")  # only whole links
    joined = "\n".join(parts)
    for i in range(5):
        assert f"*term{i}* ({5 - i}) — “refund slow {i}” <https://news.example/{i}?a=b&amp;a=b" in joined
    assert "Team handling" in sections[-1]


def test_a_link_too_long_for_slack_is_left_out_not_cut(acme: BrandDigest) -> None:
    posts = (_tracked_post(1, 250), _tracked_post(2, 1990))  # ~4,000 characters escaped
    blocks = digest_blocks(dataclasses.replace(acme, top_complaints=posts))
    [text] = [
        b["text"]["text"] for b in blocks if b["type"] == "section" and "refund slow 1" in b["text"]["text"]
    ]
    assert "<https://news.example/1?" in text and "“refund slow 2”" in text
    assert "news.example/2" not in text and text.count("<") == 1


TEXT_URL = "https://example.com/a_b/_/?x=1&y=2"
TEXT_LINK = "<https://example.com/a_b/_/?x=1&amp;y=2>"


def test_links_in_post_text_are_whole_or_left_out(acme: BrandDigest) -> None:
    def post(i: int, text: str) -> PostRef:
        return PostRef(mention_id=i, source="x", created_at=WEEK.start, text=text, followers=10 - i)

    # Quotes are cut at 160 (posts) and 100 (theme examples) characters: both limits fall in the link.
    posts = (post(1, f"see {TEXT_URL}."), post(2, "z" * 140 + f" {TEXT_URL} tail"))
    themes = (Theme("refund", 2, (post(3, "q" * 90 + f" {TEXT_URL}"),)),)
    blocks = digest_blocks(dataclasses.replace(acme, top_complaints=posts, themes=themes))
    text = "\n".join(_texts(blocks))
    assert f"“see {TEXT_LINK}.”" in text  # byte-exact, "." left outside
    assert "“" + "z" * 140 + "…”" in text and "“" + "q" * 90 + "…”" in text
    assert text.count("example.com") == 1
