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
    shorten,
    trim,
    utf16_len,
)
from tests.mock_slack import HOSTILE_PAYLOADS

# Anything Slack would parse as a special token, link or mention.
SLACK_TOKEN_RE = re.compile(r"<[!@#]|<https?:|<mailto:|<[^>]*\|")
FORMATTING = set("*~`")
BIDI_AND_INVISIBLE = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\ufeff")


# The one kind of markup escaped text may hold: a link to a URL of the text that shows its own
# address (no "|label", nothing that could end it early or open another token).
BARE_LINK_RE = re.compile(r"<https?://[^\s<>|]+>", re.IGNORECASE)


def _assert_inert(out: str) -> None:
    for bare in BARE_LINK_RE.findall(out):
        assert not re.search(r"&(?!amp;)", bare), bare
    out = BARE_LINK_RE.sub(" ", out)
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
    # Slack's label syntax after a host is no address: all of it stays text (no link, no label).
    assert escape_mrkdwn("<http://evil.example|click>") == "&lt;http://evil.example|click&gt;"
    assert escape_mrkdwn("https://evil.example|click_me_") == "https://evil.example|click_meˍ"
    assert escape_mrkdwn("&lt;!here&gt;") == "&amp;lt;!here&amp;gt;"  # pre-escaped text is not trusted


def test_bare_broadcast_words_are_defused() -> None:
    out = escape_mrkdwn("@channel @here @everyone @Webcare-team mail me at a@b.nl")
    for word in ("channel", "here", "everyone", "Webcare"):
        assert f"@{WORD_JOINER}{word}" in out
    assert "a@b.nl" in out  # e-mail addresses are not mentions
    assert defuse_mentions("@here") == f"@{WORD_JOINER}here"


def test_formatting_characters_are_neutralised_but_snake_case_is_kept() -> None:
    out = escape_mrkdwn("*bold* _it_ ~s~ `c` ```x``` snake_case_name https://x.com/a_b")
    assert out == "∗bold∗ ˍitˍ ∼s∼ ˋcˋ ˋˋˋxˋˋˋ snake_case_name <https://x.com/a_b>"


# ---------------------------------------------------------------------------------------- URLs in text


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/_/",
        "https://example.com/a_b/_next/x_y",
        "https://example.com/search?q=*&sort=~new",
        "https://example.com/~user/*/`x`",
        "https://www.reddit.com/r/x/comments/1abc/why_is_it_so_slow/",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
        "http://example.nl/p?a=1&b=2#frag_1",
        "https://mastodon.social/@webcare/123",
        "HTTPS://Example.COM/Köln",
        "https://[2001:db8::1]:8443/a_b",
    ],
)
def test_urls_in_text_become_byte_exact_links(url: str) -> None:
    out = escape_mrkdwn(f"look _at_ {url} now")
    assert out == f"look ˍatˍ <{url.replace('&', '&amp;')}> now"
    _assert_inert(out)


def test_formatting_is_still_escaped_around_a_link() -> None:
    out = escape_mrkdwn("*see*https://x.com/a_b_ _now_ @here")
    assert out == f"∗see∗<https://x.com/a_b>ˍ ˍnowˍ @{WORD_JOINER}here"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://example.com/a_b.", "see <https://example.com/a_b>."),
        ("(see https://example.com/a_b).", "(see <https://example.com/a_b>)."),
        ("(https://en.wikipedia.org/wiki/Foo_(bar)).", "(<https://en.wikipedia.org/wiki/Foo_(bar)>)."),
        ("[x](https://example.com/a_b)", "[x](<https://example.com/a_b>)"),
        (
            "https://example.com/a, https://example.com/b!",
            "<https://example.com/a>, <https://example.com/b>!",
        ),
        ("“https://example.com/a_b”", "“<https://example.com/a_b>”"),
        ("'https://example.com/a_b'?", "'<https://example.com/a_b>'?"),
        ('"https://example.com/a_b"', '"<https://example.com/a_b>"'),
        ("*https://example.com/a_b*", "∗<https://example.com/a_b>∗"),
        ("https://example.com/a_b…", "<https://example.com/a_b>…"),
        ("https://example.com/a👍", "<https://example.com/a>👍"),
        ("https://example.com/a。次", "<https://example.com/a>。次"),
    ],
)
def test_trailing_punctuation_is_not_part_of_the_link(text: str, expected: str) -> None:
    assert escape_mrkdwn(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "|" would give the link a label: percent-encoded in a path or query, the end of a host.
        ("https://fonts.example.com/css?family=A|B", "<https://fonts.example.com/css?family=A%7CB>"),
        ("https://x.example/a|click me", "<https://x.example/a%7Cclick> me"),
        ("<https://evil.example/a|click here>", "&lt;<https://evil.example/a%7Cclick> here&gt;"),
        # ">" and "<" end the URL: the rest is escaped text, so nothing is injected.
        ("https://ok.example/a|b>c", "<https://ok.example/a%7Cb>&gt;c"),
        ("https://example.com/<!channel>", "<https://example.com/>&lt;!channel&gt;"),
        ("https://example.com/?q=<@U123|boss>", "<https://example.com/?q=>&lt;@\u2060U123|boss&gt;"),
        ("https://<!channel>.example/", "https://&lt;!channel&gt;.example/"),
        ("https://x.example/%3C!channel%3E", "<https://x.example/%3C!channel%3E>"),
        ("https://x.example/a&lt;!here&gt;", "<https://x.example/a&amp;lt;!here&amp;gt>;"),
        ("<https://evil.example>", "&lt;<https://evil.example>&gt;"),
    ],
)
def test_markup_inside_a_url_cannot_label_the_link_or_ping(text: str, expected: str) -> None:
    out = escape_mrkdwn(text)
    assert out == expected
    _assert_inert(out)


@pytest.mark.parametrize(
    "text",
    [
        "javascript:alert(1)//https",
        "http://evil",  # no dot: a word, not a link
        "https://good.example@evil.example/a_b",  # reads as good, goes to evil: never our link
        "https://x.example:99999/",
        "xhttps://x.example/",
        "ftp://x.example/a_b",
    ],
)
def test_only_plain_http_urls_to_a_host_become_links(text: str) -> None:
    assert "<" not in escape_mrkdwn(text)


def test_a_url_too_long_for_slack_shows_its_host_without_a_link() -> None:
    url = "https://shop.example/p?" + "utm=1&" * 300
    out = escape_mrkdwn(f"deal {url} now")
    assert out == "deal shop.example/… now"
    ok = "https://shop.example/p?" + "u=1&" * 72  # 599 characters once & is escaped
    assert escape_mrkdwn(ok) == f"<{ok.replace('&', '&amp;')}>"
    assert escape_mrkdwn(ok + "u=1&") == "shop.example/…"
    assert escape_mrkdwn(f"({url * 5})") == "(shop.example/…)"  # past safe_url's 2,000 too


def test_trim_never_cuts_a_link() -> None:
    url = "https://example.com/a_b/c_d?x=1&y=2"
    text = escape_mrkdwn(f"{'word ' * 10}{url} tail")
    full = len(text) - len(" tail")
    for limit in range(2, full):
        out = trim(text, limit)
        assert utf16_len(out) <= limit
        assert out.count("<") == out.count(">") and "&am…" not in out, out
        if "<" in out:
            assert f"<{url.replace('&', '&amp;')}>" in out
    assert trim(text, full - 1) == "word " * 9 + "word…"  # the link is left out, not cut
    assert escape_mrkdwn(f"{'word ' * 10}{url}", 60) == "word " * 9 + "word…"
    assert escape_mrkdwn(f"{url} word", 20) == "…"


def test_shorten_plain_text_never_ends_in_part_of_a_link() -> None:
    url = "https://example.com/refund/status?order=12345"
    text = f"{'word ' * 10}{url} tail"
    assert shorten(text, len(text)) == text
    for limit in range(1, len(text)):
        out = shorten(text, limit)
        assert len(out) <= limit and out.endswith(ELLIPSIS), (limit, out)
        # the link is there whole or not at all
        assert "http" not in out or url in out, (limit, out)
    assert shorten(text, 60) == "word " * 9 + "word" + ELLIPSIS
    assert shorten(f"{url} word", 20) == ELLIPSIS
    assert shorten("e\u0301" * 50, 10).endswith("e" + ELLIPSIS)  # no orphaned combining accent


def test_link_label_gets_no_link_of_its_own() -> None:
    out = link("https://x.com/1", "see https://evil.example/_x_")
    assert out == "<https://x.com/1|see https://evil.example/ˍxˍ>"


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
    # Finding where a URL ends is linear, also when it ends in a long run of brackets and dots.
    out = escape_mrkdwn("https://x.example/a" + ")." * 200_000, 3000)
    assert out.startswith("<https://x.example/a>)") and utf16_len(out) <= 3000


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
