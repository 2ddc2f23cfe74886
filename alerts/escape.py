"""Escaping untrusted text (posts, names, titles from the internet) for Slack mrkdwn, plain_text and HTML.

Rules (see docs/slack.md):

* ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;`` (Slack's own escaping rules), so no
  ``<!channel>``, ``<@U123>``, ``<#C123>``, ``<!subteam^S1>`` or ``<http://evil|click>`` survives.
* Slack mrkdwn has no backslash escape, so the formatting characters ``*``, ``~`` and backtick are
  replaced by look-alikes (``∗``, ``∼``, ``ˋ``), and ``_`` too unless it sits inside a word
  (``snake_case`` cannot open or close italics, so handles and URLs keep their underscores).
* ``@word`` at a word start gets a WORD JOINER after the ``@``: with ``link_names`` Slack would
  otherwise link ``@channel``, ``@here``, ``@everyone``, user and user-group names.
* Control characters (terminal escapes, NUL), bidi overrides/isolates and invisible zero-width
  characters are removed; emoji (including ZWJ sequences) are kept.
* Trimming counts UTF-16 code units (what Slack's limits count), never cuts an entity in half, and
  marks the cut with "…".
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from markupsafe import escape as _markup_escape

__all__ = [
    "BUTTON_TEXT_LIMIT",
    "BUTTON_VALUE_LIMIT",
    "CONTEXT_TEXT_LIMIT",
    "FALLBACK_TEXT_LIMIT",
    "FIELD_TEXT_LIMIT",
    "HEADER_TEXT_LIMIT",
    "MAX_BLOCKS",
    "SECTION_TEXT_LIMIT",
    "clean",
    "defuse_mentions",
    "escape_html",
    "escape_mrkdwn",
    "escape_plain",
    "link",
    "safe_url",
    "trim",
    "utf16_len",
]

#: Block Kit limits (characters as Slack counts them: UTF-16 code units).
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
CONTEXT_TEXT_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 4000
BUTTON_VALUE_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75
HEADER_TEXT_LIMIT = 150
MAX_BLOCKS = 50

ELLIPSIS = "…"
WORD_JOINER = "\u2060"

# Bidi embeddings/overrides/isolates and marks: they can make our message read differently from
# what it says ("RTL override" spoofing), so they go; the text keeps its own directionality.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
# Invisible characters that only serve to hide or split words (ZWJ and ZWNJ stay: emoji and scripts).
_INVISIBLE = "\u200b\u2060\ufeff\u180e\u2061\u2062\u2063\u2064"
_DROP = dict.fromkeys(map(ord, _BIDI + _INVISIBLE))
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NEWLINES_RE = re.compile("\r\n?|[\u2028\u2029\x85]")
_MENTION_RE = re.compile(r"(?<!\w)@(?=\w)")
_UNDERSCORE_RE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # "_" unless between two letters/digits
_FORMATTING = str.maketrans({"*": "\u2217", "~": "\u223c", "`": "\u02cb"})
_PLAIN = str.maketrans({"<": "\u2039", ">": "\u203a"})
_ENTITY_TAIL_RE = re.compile(r"&[a-z#0-9]{0,5}$")


def clean(text: str) -> str:
    """Normalise untrusted text: NFC, ``\\n`` newlines, no control, bidi-override or invisible characters."""
    text = _SURROGATE_RE.sub("", text)
    text = _NEWLINES_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text.replace("\t", "    "))
    return unicodedata.normalize("NFC", text.translate(_DROP))


def defuse_mentions(text: str) -> str:
    """Put a WORD JOINER after each word-initial ``@`` so ``@channel``/``@here``/``@user`` never link."""
    return _MENTION_RE.sub("@" + WORD_JOINER, text)


def utf16_len(text: str) -> int:
    """Length as Slack counts it (UTF-16 code units: most emoji count 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def trim(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """Cut ``text`` to ``limit`` UTF-16 units, ending in "…"; never splits an ``&amp;``-style entity."""
    if utf16_len(text) <= limit:
        return text
    budget = limit - utf16_len(ellipsis)
    if budget <= 0:
        return ellipsis[: max(limit, 0)]
    used = 0
    cut = 0
    for cut, char in enumerate(text):  # noqa: B007 - ``cut`` is the index where the budget runs out
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            break
    head = text[:cut]
    head = _ENTITY_TAIL_RE.sub("", head)  # a half entity ("&am") would render as garbage
    # Do not leave a dangling joiner, variation selector or combining mark in front of the ellipsis.
    while head and (head[-1] in "\u200d\ufe0f" + WORD_JOINER or unicodedata.combining(head[-1])):
        head = head[:-1]
    return head.rstrip() + ellipsis


def _escape_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_mrkdwn(text: str | None, limit: int | None = None) -> str:
    """Escape untrusted text for mrkdwn (blocks or fallback ``text``): no pings, links or formatting."""
    if not text:
        return ""
    out = _escape_entities(clean(text))
    out = _UNDERSCORE_RE.sub("\u02cd", out.translate(_FORMATTING))
    out = defuse_mentions(out)
    return trim(out, limit) if limit is not None else out


def escape_plain(text: str | None, limit: int | None = None) -> str:
    """Make untrusted text safe for a ``plain_text`` object (header, button): no markup-looking brackets."""
    if not text:
        return ""
    out = defuse_mentions(clean(text).translate(_PLAIN))
    return trim(out, limit) if limit is not None else out


def safe_url(url: str | None) -> str | None:
    """The URL escaped for use inside ``<url|label>``, or None unless it is a plain http(s) URL to a host."""
    if not url:
        return None
    url = url.strip()
    if len(url) > 2000 or any(
        ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in url
    ):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc:  # "https://good.example@evil.example/" reads as good but goes to evil
        return None
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return url.replace("&", "&amp;")


#: Longest escaped URL put into Slack link markup. Longer ones (tracking parameters) would push a
#: field or section past Slack's limit, and trimming there would cut the markup in half.
LINK_URL_LIMIT = 600


def link(url: str | None, label: str, *, trusted_label: bool = False) -> str:
    """Slack link markup ``<url|label>`` for a validated URL; the escaped label alone if the URL is
    unsafe or longer than :data:`LINK_URL_LIMIT`."""
    text = label if trusted_label else escape_mrkdwn(label, 200)
    target = safe_url(url)
    if target is None or len(target) > LINK_URL_LIMIT:
        return text
    return f"<{target}|{text}>"


def escape_html(text: str | None) -> str:
    """Escape untrusted text for HTML reports (cleaned, then markupsafe-escaped)."""
    if not text:
        return ""
    return str(_markup_escape(clean(text)))
