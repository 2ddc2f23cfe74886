"""Escaping untrusted text (posts, names, titles from the internet) for Slack mrkdwn, plain_text and HTML.

Rules (see docs/slack.md):

* ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;`` (Slack's own escaping rules), so no
  ``<!channel>``, ``<@U123>``, ``<#C123>``, ``<!subteam^S1>`` or ``<http://evil|click>`` survives.
* Slack mrkdwn has no backslash escape, so the formatting characters ``*``, ``~`` and backtick are
  replaced by look-alikes (``∗``, ``∼``, ``ˋ``), and ``_`` too unless it sits inside a word
  (``snake_case`` cannot open or close italics, so handles keep their underscores).
* http(s) URLs in the text are not touched by those replacements (a look-alike would make Slack's
  link point elsewhere): each becomes an explicit link ``<url>`` showing its own address, with
  ``&`` escaped and ``|`` percent-encoded so it can neither get a label nor end early (see
  :func:`find_urls` for where a URL ends). A URL longer than :data:`LINK_URL_LIMIT` is shown as its
  host and "…", without a link.
* ``@word`` at a word start gets a WORD JOINER after the ``@``: with ``link_names`` Slack would
  otherwise link ``@channel``, ``@here``, ``@everyone``, user and user-group names.
* Control characters (terminal escapes, NUL), bidi overrides/isolates and invisible zero-width
  characters are removed; emoji (including ZWJ sequences) are kept.
* Trimming counts UTF-16 code units (what Slack's limits count), never cuts an entity or a ``<…>``
  link in half (it cuts before the link), and marks the cut with "…".
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
    "find_urls",
    "link",
    "safe_url",
    "shorten",
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

#: Longest escaped URL put into Slack link markup. Longer ones (tracking parameters) would push a
#: field or section past Slack's limit, and trimming there would cut the markup in half.
LINK_URL_LIMIT = 600

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
# A URL candidate: http(s):// up to whitespace or a character no URL contains (and that would end
# Slack's ``<…>`` markup or a quotation around the link); :func:`_url_end` finds where it really ends.
_URL_CANDIDATE_RE = re.compile(r"(?<!\w)https?://[^\s<>\"\\]+", re.IGNORECASE)
# Sentence punctuation (and markdown emphasis) at the end is not part of the URL ("see https://x.nl/a.").
_URL_TRAILING = ".,;:!?'*_~"
_URL_CLOSERS = {")": "(", "]": "[", "}": "{"}


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
    """Cut ``text`` to ``limit`` UTF-16 units, ending in "…"; never splits an ``&amp;``-style entity
    or ``<…>`` markup (a link is dropped whole rather than cut into a link to a wrong address)."""
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
    # Escaped text has no raw "<": one without its ">" opens markup (a link) that the cut would break.
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        head = head[:opened]
    head = _ENTITY_TAIL_RE.sub("", head)  # a half entity ("&am") would render as garbage
    # Do not leave a dangling joiner, variation selector or combining mark in front of the ellipsis.
    while head and (head[-1] in "\u200d\ufe0f" + WORD_JOINER or unicodedata.combining(head[-1])):
        head = head[:-1]
    return head.rstrip() + ellipsis


def shorten(text: str, limit: int) -> str:
    """Plain ``text`` (HTML, a terminal) cut to ``limit`` characters ending in "…", before a link
    rather than through it: half an address is a wrong address a terminal or browser still opens."""
    if len(text) <= limit:
        return text
    cut = max(limit - len(ELLIPSIS), 0)
    for match in _URL_CANDIDATE_RE.finditer(text):
        if match.start() >= cut:
            break
        if cut < match.end():
            cut = match.start()
            break
    head = text[:cut].rstrip()
    while head and (head[-1] in "\u200d\ufe0f" + WORD_JOINER or unicodedata.combining(head[-1])):
        head = head[:-1]
    return head + ELLIPSIS


def _escape_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _url_end(text: str, start: int, end: int) -> int:
    """Where the URL candidate ``text[start:end]`` really ends (trailing punctuation left out)."""
    url = text[start:end]
    # Beyond ASCII only letters, digits and marks (an IRI path like /wiki/Köln) belong to a URL: a
    # quotation mark, ellipsis, CJK full stop or emoji right after a link ends it.
    for i, char in enumerate(url):
        if ord(char) > 0x7F and unicodedata.category(char)[0] not in "LNM":
            url = url[:i]
            break
    # Walk back over trailing punctuation and unmatched closing brackets ("(see https://x.nl/a)."),
    # keeping a matched one (/wiki/Foo_(bar)); counted once, so hostile input stays linear.
    closing = {c: url.count(c) for c in _URL_CLOSERS}
    opening = {c: url.count(o) for c, o in _URL_CLOSERS.items()}
    size = len(url)
    while size:
        char = url[size - 1]
        if char in _URL_TRAILING:
            size -= 1
        elif char in closing and closing[char] > opening[char]:
            closing[char] -= 1
            size -= 1
        else:
            break
    return start + size


def _url_target(url: str) -> str | None:
    """``url`` escaped for ``<url>`` markup (of any length), or None unless it is a plain http(s) URL
    to a named host."""
    target = _safe_url(url, max_length=None)
    if target is None:
        return None
    host = urlsplit(url).hostname or ""
    # "http://evil" or "https://x" is a word, not a link; IPv4 has dots and IPv6 colons. No host has
    # a "|": "http://evil.example|click" is Slack's link-label syntax, not an address someone shared,
    # so it stays escaped text. (In a path or query "|" is data: safe_url percent-encodes it.)
    if "|" in host or not ("." in host.strip(".") or ":" in host):
        return None
    return target


def find_urls(text: str) -> list[tuple[int, int]]:
    """Spans of the http(s) URLs in ``text`` (cleaned, not yet escaped) that become links.

    A URL runs from ``http://`` or ``https://`` to whitespace, ``<``, ``>``, ``"``, a backslash, or a
    non-ASCII character other than a letter, digit or mark; sentence punctuation and ``*_~`` at its
    end are left out, and so is a closing bracket without its opening one. Its host must have a dot
    (or be an IPv6 address) and no ``|``, and it must pass :func:`safe_url` (no ``user@host``).
    """
    return [(start, end) for start, end, _ in _links(text)]


def _links(text: str) -> list[tuple[int, int, str]]:
    """:func:`find_urls` with each URL's escaped ``<url>`` target."""
    links: list[tuple[int, int, str]] = []
    for match in _URL_CANDIDATE_RE.finditer(text):
        start = match.start()
        end = _url_end(text, start, match.end())
        target = _url_target(text[start:end])
        if target is not None:
            links.append((start, end, target))
    return links


def _escape_words(text: str) -> str:
    """mrkdwn escaping of text that holds no link: entities, formatting look-alikes, mentions."""
    out = _escape_entities(text)
    out = _UNDERSCORE_RE.sub("\u02cd", out.translate(_FORMATTING))
    return defuse_mentions(out)


def _url_markup(url: str, target: str) -> str:
    """``<url>`` (the link shows its own address); a URL too long for Slack shows as ``host/…``."""
    if len(target) <= LINK_URL_LIMIT:
        return f"<{target}>"
    return _escape_words(f"{urlsplit(url).hostname}/{ELLIPSIS}")


def escape_mrkdwn(text: str | None, limit: int | None = None, *, links: bool = True) -> str:
    """Escape untrusted text for mrkdwn (blocks or fallback ``text``): no pings, formatting or
    disguised links; its http(s) URLs become byte-exact ``<url>`` links (``links=False``: plain text,
    for use inside a link label)."""
    if not text:
        return ""
    text = clean(text)
    parts: list[str] = []
    pos = 0
    for start, end, target in _links(text) if links else ():
        parts.append(_escape_words(text[pos:start]))
        parts.append(_url_markup(text[start:end], target))
        pos = end
    parts.append(_escape_words(text[pos:]))
    out = "".join(parts)
    return trim(out, limit) if limit is not None else out


def escape_plain(text: str | None, limit: int | None = None) -> str:
    """Make untrusted text safe for a ``plain_text`` object (header, button): no markup-looking brackets."""
    if not text:
        return ""
    out = defuse_mentions(clean(text).translate(_PLAIN))
    return trim(out, limit) if limit is not None else out


def safe_url(url: str | None) -> str | None:
    """The URL escaped for use inside ``<url|label>``, or None unless it is a plain http(s) URL to a host."""
    return _safe_url(url, max_length=2000)


def _safe_url(url: str | None, *, max_length: int | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    if (max_length is not None and len(url) > max_length) or any(
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


def link(url: str | None, label: str, *, trusted_label: bool = False) -> str:
    """Slack link markup ``<url|label>`` for a validated URL; the escaped label alone if the URL is
    unsafe or longer than :data:`LINK_URL_LIMIT`."""
    text = label if trusted_label else escape_mrkdwn(label, 200, links=False)  # no link in a link
    target = safe_url(url)
    if target is None or len(target) > LINK_URL_LIMIT:
        return text
    return f"<{target}|{text}>"


def escape_html(text: str | None) -> str:
    """Escape untrusted text for HTML reports (cleaned, then markupsafe-escaped)."""
    if not text:
        return ""
    return str(_markup_escape(clean(text)))
