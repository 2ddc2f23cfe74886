"""Block Kit and fallback-text rendering of per-mention, spike, ops and grouped notifications."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from alerts.escape import WORD_JOINER, utf16_len
from alerts.model import ACTIONS
from alerts.render import (
    alert_metadata,
    format_count,
    format_duration,
    format_rating,
    metadata_matches,
    notification_fingerprint,
    render_blocks,
    render_text,
    render_update_blocks,
    render_update_text,
)
from tests.mock_slack import (
    HOSTILE_PAYLOADS,
    incident,
    mention,
    mention_item,
    notification,
    ops_item,
    spike_item,
)


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in the blocks (section text, fields, context elements, headers, buttons)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    return out


def _check_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for b in blocks:
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and utf16_len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert utf16_len(b["text"]["text"]) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(utf16_len(f["text"]) <= 2000 for f in b.get("fields", []))
        if b["type"] == "context":
            assert 1 <= len(b["elements"]) <= 10
        if b["type"] == "actions":
            assert len({e["action_id"] for e in b["elements"]}) == len(b["elements"])
            assert all(len(e["value"]) <= 2000 and utf16_len(e["text"]["text"]) <= 75 for e in b["elements"])


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_praise_alert_shows_post_author_reach_link_scores_reason_and_buttons() -> None:
    blocks = render_blocks(notification(mention_item(alert_id=42)))
    _check_limits(blocks)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🌟 Praise · Acme", "emoji": True},
    }
    joined = "\n".join(_texts(blocks))
    assert ">Loving the new app from @" in joined
    assert f"@{WORD_JOINER}jdoe · Jane Doe" in joined
    assert "12.3k followers" in joined
    assert "<https://x.com/jdoe/status/1790000000000000001|X>" in joined
    assert "<!date^1714572180^" in joined and "|2024-05-01 14:03 UTC>" in joined
    assert "positive 0.93 · complaint 0.04" in joined
    assert "*Why:* positive 0.93" in joined
    assert "untagged" in joined
    buttons = _buttons(blocks)
    assert [b["action_id"] for b in buttons] == [f"repmon:{a}" for a in ACTIONS]
    assert {b["value"] for b in buttons} == {"42"}


def test_review_shows_rating_stars_and_title() -> None:
    m = mention(
        "Slechte service, nooit meer.", source="trustpilot", rating=2, rating_max=5, title="Teleurgesteld"
    )
    item = mention_item(kind="complaint", mention=m)
    joined = "\n".join(_texts(render_blocks(notification(item))))
    assert "★★☆☆☆ 2/5" in joined
    assert "Teleurgesteld" in joined
    assert "|Trustpilot>" in joined
    assert "Rating ★★☆☆☆ 2/5" in render_text(notification(item))
    # Slack's bold ends at a line break: every line with an opening * closes it on the same line
    post = render_blocks(notification(item))[1]["text"]["text"]
    assert post.splitlines()[:2] == ["*Complaint that needs care*", "*Teleurgesteld*"]
    assert all(line.count("*") % 2 == 0 for line in post.splitlines())


def test_overlong_link_keeps_its_label_and_the_markup_whole() -> None:
    url = "https://shop.example/p?" + "utm=1&" * 300  # 1,823 characters; 3,000 once & is escaped
    fields = render_blocks(notification(mention_item(mention=mention("ok", url=url))))[1]["fields"]
    source = next(f["text"] for f in fields if f["text"].startswith("*Source*"))
    assert source.count("<") == source.count(">") == 0 and source.endswith("X")
    short = render_blocks(notification(mention_item(mention=mention("ok", url="https://x.example/1"))))
    assert "<https://x.example/1|X>" in "\n".join(_texts(short))


def test_claimed_state_is_shown_and_claim_button_dropped() -> None:
    blocks = render_blocks(notification(mention_item(claimed_by="alice")))
    assert "🙋 Claimed by *alice*" in "\n".join(_texts(blocks))
    assert [b["action_id"] for b in _buttons(blocks)] == [
        "repmon:handled",
        "repmon:not_relevant",
        "repmon:wrong_sentiment",
    ]
    handled = render_blocks(notification(mention_item(claimed_by="alice", handled_by="bob")))
    assert "✅ Handled by *bob*" in "\n".join(_texts(handled))
    assert [b["action_id"] for b in _buttons(handled)] == ["repmon:not_relevant", "repmon:wrong_sentiment"]
    dismissed = render_blocks(notification(mention_item(dismissed_by="carol")))
    assert [b["action_id"] for b in _buttons(dismissed)] == ["repmon:wrong_sentiment"]


def test_state_names_are_escaped() -> None:
    blocks = render_blocks(notification(mention_item(claimed_by="<!channel>")))
    assert "<!channel>" not in json.dumps(blocks)


def test_unsafe_post_url_is_not_linked() -> None:
    item = mention_item(mention=mention(url="javascript:alert(1)"))
    joined = "\n".join(_texts(render_blocks(notification(item))))
    assert "javascript" not in joined
    assert "*Source*\nX" in joined


def test_spike_raise_root_has_counts_terms_samples_and_level() -> None:
    blocks = render_blocks(notification(spike_item("raise")))
    _check_limits(blocks)
    assert blocks[0]["text"]["text"] == "🚨 Spike · Acme (level 1)"
    joined = "\n".join(_texts(blocks))
    assert "*48* in the last window vs *6* expected (8.0×)" in joined
    assert "*Top terms:* outage · refund · login" in joined
    assert joined.count("\n>") >= 3  # three quoted sample posts
    assert "&lt;!channel&gt; everyone boycott" in joined
    assert "incident #7" in joined
    assert [b["action_id"] for b in _buttons(blocks)] == [
        "repmon:claim",
        "repmon:handled",
        "repmon:not_relevant",
    ]


def test_spike_resolve_root_and_thread_update() -> None:
    n = notification(spike_item("resolve"), thread_ts="1714572180.000100", thread_channel="C0WEBCARE1")
    blocks = render_blocks(n)
    assert blocks[0]["text"]["text"] == "✅ Spike resolved · Acme"
    assert "lasted *2h 15m*" in "\n".join(_texts(blocks))
    update = render_update_text(n)
    assert update.startswith("✅ Resolved at 2024-05-01 16:18 UTC after 2h 15m; peaked at 130 (level 2).")
    assert render_update_blocks(n)[0]["text"]["text"] == update


def test_spike_escalate_update_says_what_changed() -> None:
    n = notification(spike_item("escalate"), thread_ts="1.000100")
    assert render_update_text(n).startswith("📈 Escalated to level 2: 130 vs 6 expected")
    assert render_blocks(n)[0]["text"]["text"] == "🚨 Spike · Acme (level 2)"
    repeat = notification(spike_item("repeat"), thread_ts="1.000100")
    assert render_update_text(repeat).startswith("🔁 Still ongoing")


def test_ops_alert_is_plain() -> None:
    blocks = render_blocks(notification(ops_item()))
    assert [b["type"] for b in blocks] == ["section", "context"]
    assert "Source x disabled" in blocks[0]["text"]["text"]
    assert blocks[1]["elements"][0]["text"] == "error=auth · source=x"
    assert render_text(notification(ops_item())).startswith("Ops: Source x disabled")


def test_grouped_notification_has_a_section_per_item_and_and_n_more() -> None:
    items = [mention_item(alert_id=i, kind="complaint", claimed_by="alice") for i in range(1, 15)]
    n = notification(*items)
    blocks = render_blocks(n)
    _check_limits(blocks)
    assert blocks[0]["text"]["text"] == "⚠️ 14 complaints · Acme"
    posts = [b for b in blocks if b.get("block_id", "").endswith(":post")]
    assert len(posts) == 10
    assert posts[0]["text"]["text"].startswith("⚠️ Complaint · Acme\n")
    assert blocks[-1]["elements"][0]["text"] == "…and 4 more alerts in this group"
    text = render_text(n)
    assert text.startswith("14 complaints · Acme: 1. Complaint · Acme:")
    assert text.endswith("…and 4 more")
    assert utf16_len(text) <= 4000


def test_grouped_spikes_stay_within_50_blocks() -> None:
    items = [replace(spike_item("raise", alert_id=i), key=f"spike:{i}") for i in range(10)]
    blocks = render_blocks(notification(*items))
    _check_limits(blocks)
    assert "more alert" in blocks[-1]["elements"][0]["text"]


def test_mixed_group_header() -> None:
    blocks = render_blocks(notification(mention_item(1), mention_item(2, "complaint")))
    assert blocks[0]["text"]["text"] == "🔔 2 alerts · Acme"


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS, ids=lambda p: repr(p[:20]))
def test_hostile_text_everywhere_renders_inert(payload: str) -> None:
    m = mention(
        payload,
        author_handle=payload[:50],
        author_name=payload[:80],
        title=payload[:100],
        url="https://x.com/a?q=" + payload[:30],
    )
    item = mention_item(
        mention=m,
        title=payload[:100],
        reason=payload[:200],
        brand=payload[:40],
        claimed_by=payload[:30],
        labels={"x": payload[:20]},
    )
    spike = spike_item(incident=incident(samples=(m,), top_terms=(payload[:30],)), title=payload[:50])
    for n in (
        notification(item),
        notification(item, spike),
        notification(replace(item, kind="ops", mention=None)),
    ):
        blocks = render_blocks(n)
        _check_limits(blocks)
        wire = json.dumps(blocks, ensure_ascii=False) + render_text(n) + render_update_text(n)
        for needle in (
            "<!channel",
            "<!here",
            "<!everyone",
            "<@U123",
            "<#C123",
            "<!subteam",
            "<http://evil.example|",
        ):
            assert needle not in wire
        # A URL of the text may link to itself ("<http://evil.example>", where a label value was cut
        # to "<http://evil.example"); no link but our source link has a label.
        for token in re.findall(r"<https?:[^>]*>", wire):
            assert "|" not in token or token.endswith("|X>"), token
        assert "\u202e" not in wire and "\x00" not in wire and "\x1b" not in wire
        assert not re.search(r"(?<!\w)@(?:channel|here|everyone)", wire)
        assert utf16_len(render_text(n)) <= 4000
        json.dumps(blocks).encode("utf-8")


def test_long_post_is_trimmed_with_ellipsis_and_bounded_lines() -> None:
    text = "\n".join(f"line {i} " + "word " * 50 for i in range(100))
    blocks = render_blocks(notification(mention_item(text=text)))
    section = blocks[1]["text"]["text"]
    assert "…" in section
    assert section.count("\n>") <= 12


# ---------------------------------------------------------------------------------------- URLs in posts

POST_URL = "https://example.com/a_b/_/x*y~z?utm_source=x&id=1"
POST_LINK = "<https://example.com/a_b/_/x*y~z?utm_source=x&amp;id=1>"


def test_urls_in_a_post_are_byte_exact_links() -> None:
    item = mention_item(text=f"Refund? See {POST_URL}. Or (https://example.com/_/)!", claimed_by="ann_")
    n = notification(item)
    post = render_blocks(n)[1]["text"]["text"]
    assert f">Refund? See {POST_LINK}. Or (<https://example.com/_/>)!" in post
    text = render_text(n)
    assert f"See {POST_LINK}. Or (<https://example.com/_/>)!" in text


@pytest.mark.parametrize("lead", [1150, 1170, 1190, 1195])
def test_trimming_a_post_never_cuts_a_link(lead: int) -> None:
    # The 1,200-character quote limit falls inside the link (or right at its start): it is left out.
    item = mention_item(text="x" * lead + f" {POST_URL} more words after the link")
    post = render_blocks(notification(item))[1]["text"]["text"]
    assert post.endswith("x…") and "<" not in post and "example.com" not in post


def test_fallback_and_samples_never_cut_a_link() -> None:
    m = mention("x" * 960 + f" {POST_URL} more")
    text = render_text(notification(mention_item(mention=m)))
    assert "<https://example" not in text and "x…”" in text
    sample = mention("y" * 250 + f" {POST_URL}")
    blocks = render_blocks(notification(spike_item(incident=incident(samples=(sample,)))))
    samples = next(t for t in _texts(blocks) if t.startswith("*Sample posts*"))
    assert "y…" in samples and "<https://example" not in samples
    whole = mention(f"short {POST_URL}")
    blocks = render_blocks(notification(spike_item(incident=incident(samples=(whole,)))))
    assert f">short {POST_LINK}" in "\n".join(_texts(blocks))


def test_state_names_keep_their_links_in_the_fallback_text() -> None:
    text = render_text(notification(mention_item(claimed_by="https://x.example/a*b")))
    assert "Claimed by <https://x.example/a*b>" in text


def test_incident_fallback_text_says_who_claimed_and_handled_it() -> None:
    """Push notifications and screen readers read the fallback: a claimed crisis must say so."""
    text = render_text(notification(spike_item(claimed_by="alice", handled_by="bob")))
    assert "Claimed by alice" in text and "Handled by bob" in text
    assert "Claimed" not in render_text(notification(spike_item()))


def test_fallback_text_is_plain_and_informative() -> None:
    text = render_text(notification(mention_item()))
    assert text.startswith("Praise · Acme: Untagged praise — @")
    assert "12.3k followers" in text and "on X, 2024-05-01 14:03 UTC" in text
    assert "“Loving the new app" in text and "Untagged. Why:" in text
    assert "*" not in text and "<" not in text


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1k"),
        (12_345, "12.3k"),
        (999_950, "1M"),
        (1_234_567, "1.2M"),
        (3e9, "3B"),
    ],
)
def test_format_count(n: float, expected: str) -> None:
    assert format_count(n) == expected


def test_format_rating_and_duration() -> None:
    assert format_rating(2, 5) == "★★☆☆☆ 2/5"
    assert format_rating(9, 10) == "★★★★★ 9/10"
    assert format_rating(4.5) == "★★★★★ 4.5/5"
    assert format_rating(1, 5) == "★☆☆☆☆ 1/5"
    assert format_duration(45 * 60) == "45m"
    assert format_duration(8100) == "2h 15m"
    assert format_duration(3 * 86400 + 4 * 3600) == "3d 4h"


def test_metadata_identity() -> None:
    n = notification(mention_item(1), mention_item(2))
    meta = alert_metadata(n)
    assert meta["event_type"] == "repmon_alert"
    assert meta["event_payload"]["keys"] == ["praise:x:1", "praise:x:2"]
    assert metadata_matches(meta, n)
    assert metadata_matches(meta, notification(mention_item(2), group_key="other"))  # subset of keys+events
    assert not metadata_matches(meta, notification(mention_item(3)))
    assert not metadata_matches({"event_type": "other", "event_payload": meta["event_payload"]}, n)
    assert not metadata_matches(None, n)
    raise_n = notification(spike_item("raise"))
    escalate_n = notification(replace(spike_item("escalate"), key=spike_item("raise").key), thread_ts="1.1")
    assert not metadata_matches(alert_metadata(raise_n), escalate_n)  # same key, different event
    assert notification_fingerprint(n) == notification_fingerprint(
        notification(mention_item(1), mention_item(2))
    )
    assert notification_fingerprint(n) != notification_fingerprint(raise_n)
