"""Escaping of untrusted text for Slack mrkdwn, plain_text and HTML, against hostile payloads."""

from __future__ import annotations

import re

import pytest

from alerts.escape import (
    ELLIPSIS,
    WORD_JOINER,
    clean,
    defuse_mentions,
    escape_html,
    escape_mrkdwn,
    escape_plain,
    link,
    safe_url,
    trim,
    utf16_len,
)
from tests.mock_slack import HOSTILE_PAYLOADS

# Anything Slack would parse as a special token, link or mention.
SLACK_TOKEN_RE = re.compile(r"<[!@#]|<https?:|<mailto:|<[^>]*\|")
FORMATTING = set("*~`")
BIDI_AND_INVISIBLE = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\ufeff")


def _assert_inert(out: str) -> None:
    assert "<" not in out and ">" not in out, out[:200]
    assert not SLACK_TOKEN_RE.search(out)
    assert not FORMATTING & set(out), out[:200]
    assert not re.search(r"(?<![^\W_])_|_(?![^\W_])", out), out[:200]
    assert not re.search(r"(?<!\w)@(?=\w)", out), "a bare @mention survived"
    assert not BIDI_AND_INVISIBLE & set(out)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    assert not re.search(r"&(?!amp;|lt;|gt;)", out), "a raw & could start an entity"
    out.encode("utf-8")  # no lone surrogates


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS, ids=lambda p: repr(p[:20]))
def test_mrkdwn_escaping_makes_hostile_payloads_inert(payload: str) -> None:
    _assert_inert(escape_mrkdwn(payload))
    limited = escape_mrkdwn(payload, 300)
    _assert_inert(limited)
    assert utf16_len(limited) <= 300


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS, ids=lambda p: repr(p[:20]))
def test_plain_text_escaping_has_no_markup_brackets(payload: str) -> None:
    out = escape_plain(payload, 150)
    assert "<" not in out and ">" not in out
    assert not re.search(r"(?<!\w)@(?=\w)", out)
    assert utf16_len(out) <= 150


def test_slack_specials_are_entity_escaped() -> None:
    assert escape_mrkdwn("<!channel> & <@U123>") == f"&lt;!channel&gt; &amp; &lt;@{WORD_JOINER}U123&gt;"
    assert escape_mrkdwn("<http://evil|click>") == "&lt;http://evil|click&gt;"
    assert escape_mrkdwn("&lt;!here&gt;") == "&amp;lt;!here&amp;gt;"  # pre-escaped text is not trusted


def test_bare_broadcast_words_are_defused() -> None:
    out = escape_mrkdwn("@channel @here @everyone @Webcare-team mail me at a@b.nl")
    for word in ("channel", "here", "everyone", "Webcare"):
        assert f"@{WORD_JOINER}{word}" in out
    assert "a@b.nl" in out  # e-mail addresses are not mentions
    assert defuse_mentions("@here") == f"@{WORD_JOINER}here"


def test_formatting_characters_are_neutralised_but_snake_case_is_kept() -> None:
    out = escape_mrkdwn("*bold* _it_ ~s~ `c` ```x``` snake_case_name https://x.com/a_b")
    assert out == "∗bold∗ ˍitˍ ∼s∼ ˋcˋ ˋˋˋxˋˋˋ snake_case_name https://x.com/a_b"


def test_clean_removes_controls_bidi_invisible_and_normalises_newlines() -> None:
    assert clean("a\x00b\x1b[31mc\x7f") == "ab[31mc"
    assert clean("\u202eevil\u202c") == "evil"
    assert clean("zero\u200bwidth\ufeff") == "zerowidth"
    assert clean("l1\r\nl2\rl3\u2028l4") == "l1\nl2\nl3\nl4"
    assert clean("tab\there") == "tab    here"
    assert clean("e\u0301") == "é"  # NFC
    family = "👨\u200d👩\u200d👧"
    assert clean(family) == family  # ZWJ emoji sequences survive
    assert clean("x\ud800y") == "xy"


def test_trim_counts_utf16_and_marks_the_cut() -> None:
    assert trim("short", 10) == "short"
    out = trim("x" * 5000, 3000)
    assert utf16_len(out) == 3000 and out.endswith(ELLIPSIS)
    emoji = "😀" * 100  # 2 UTF-16 units each
    cut = trim(emoji, 11)
    assert utf16_len(cut) <= 11 and cut == "😀" * 5 + ELLIPSIS
    assert trim("abc", 0) == ""


def test_trim_never_splits_an_entity() -> None:
    escaped = escape_mrkdwn("&" * 100)
    for limit in range(5, 40):
        out = trim(escaped, limit)
        assert re.fullmatch(r"(&amp;)*…", out), out


def test_escape_mrkdwn_limit_counts_the_escaped_text() -> None:
    out = escape_mrkdwn("<" * 3000, 3000)
    assert utf16_len(out) <= 3000
    assert out.endswith(ELLIPSIS) and out.startswith("&lt;")


def test_very_long_input_is_fast_and_bounded() -> None:
    out = escape_mrkdwn("a <!channel> " * 200_000, 3000)
    assert utf16_len(out) <= 3000


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.com/a/status/1", "https://x.com/a/status/1"),
        ("http://example.nl/p?a=1&b=2", "http://example.nl/p?a=1&amp;b=2"),
        ("https://example.nl/a|b<c>", "https://example.nl/a%7Cb%3Cc%3E"),
        ("javascript:alert(1)", None),
        ("data:text/html,<b>x</b>", None),
        ("ftp://example.nl/x", None),
        ("https://good.example@evil.example/", None),
        ("https://exa mple.nl/", None),
        ("https://example.nl/\u202egnp.exe", None),
        ("https://example.nl:99999/", None),
        ("//example.nl/x", None),
        ("https:///nohost", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_link_uses_validated_url_and_escaped_label() -> None:
    assert link("https://x.com/1", "X") == "<https://x.com/1|X>"
    assert link("javascript:alert(1)", "<!channel>") == "&lt;!channel&gt;"
    assert link("https://x.com/1", "*b* <@U1>") == f"<https://x.com/1|∗b∗ &lt;@{WORD_JOINER}U1&gt;>"


def test_escape_html() -> None:
    assert escape_html('<script>alert("x")</script> & \x00') == (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; "
    )
    assert escape_html(None) == ""
