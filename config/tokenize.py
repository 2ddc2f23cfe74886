"""Tokeniser shared by watchlist queries and the posts they are matched against.

Both sides go through the same scanner, so a keyword and a post always agree on what a "word"
is. See docs/query-language.md for the rules in operator terms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class TokenKind(StrEnum):
    """What kind of thing a token is; decides which query terms can match it."""

    WORD = "word"
    HASHTAG = "hashtag"
    HANDLE = "handle"
    EMAIL = "email"
    URL = "url"
    EMOJI = "emoji"


@dataclass(frozen=True, slots=True)
class Token:
    """One token of a text: normalised `text`, the `raw` slice, char offsets and word position.

    `position` counts words from 0; `span` is the number of positions the token covers (1, except
    for the joined form of a hyphenated word such as `ns-storing` -> `nsstoring`, which covers the
    positions of all its parts).
    """

    text: str
    raw: str
    kind: TokenKind
    start: int
    end: int
    position: int
    span: int = 1


# Letters that NFKD does not decompose but that readers treat as an accented base letter.
_LETTER_FOLDS: Final = MappingProxyType(
    {
        ord("ø"): "o",
        ord("đ"): "d",
        ord("ð"): "d",
        ord("ł"): "l",
        ord("ħ"): "h",
        ord("ı"): "i",
        ord("æ"): "ae",
        ord("œ"): "oe",
        ord("þ"): "th",
    }
)

# Combining marks that `\w` does not cover, so that decomposed (non-NFC) input and scripts with
# vowel signs still form whole words. Offsets therefore always index the caller's own string.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff\u0e31-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff"
    "\u20d0-\u20e2\u20e4-\u20ef\ufe20-\ufe2f\u3099\u309a"
)
_W = rf"[\w{_MARKS}]"
_EMOJI_BASE = (
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf"
    "\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001faff]"
)
_EMOJI_MOD = "[\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]"
_EMOJI = (
    "[\U0001f1e6-\U0001f1ff]{2}"  # flags: a pair of regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # keycaps
    rf"|{_EMOJI_BASE}{_EMOJI_MOD}*(?:\u200d{_EMOJI_BASE}{_EMOJI_MOD}*)*"  # ZWJ sequences
)
_URL_BODY = "[^\\s<>\"'“”‘’]"
_URL = rf"(?i:https?://|www\.){_URL_BODY}+|(?:[\w-]++\.)++[A-Za-z]{{2,}}/{_URL_BODY}*"
_EMAIL = r"[\w.+-]++@[\w-]+(?:\.[\w-]+)+"
_HANDLE = rf"(?<![\w@])@{_W}+(?:@[\w-]+(?:\.[\w-]+)+)?"  # optional @instance for the fediverse
_HASHTAG = rf"(?<![\w#&])#{_W}+"
_WORD = rf"{_W}+(?:[-'’.]{_W}+)*"  # hyphens/apostrophes: compounds; dots: bol.com, 3.5, e.g
# Fast path first: a plain run of word characters that nothing else could extend (no URL, email,
# compound, keycap or combining mark follows). It yields exactly what the full alternation would.
_PLAIN = rf"\w++(?![-'’.@/:+\ufe0f\u20e3{_MARKS}])"
_SCANNER: Final = re.compile(f"{_PLAIN}|{_URL}|{_EMAIL}|{_EMOJI}|{_HANDLE}|{_HASHTAG}|{_WORD}")
_EMOJI_START: Final = re.compile(f"{_EMOJI}")
_COMPOUND_SPLIT: Final = re.compile(r"[-'’]")
_EMOJI_STRIP: Final = re.compile("[\ufe0f\U0001f3fb-\U0001f3ff]")
_URL_TRAILING = ".,;:!?)]}'\"…"

# Raw scan result: (kind, key, position, span, start, end). Tuples keep the hot path cheap.
ScanItem = tuple[TokenKind, str, int, int, int, int]


def fold_text(text: str, *, fold_diacritics: bool) -> str:
    """Normalise a string for matching: case folding, NFKC, and optionally diacritic folding."""
    if text.isascii():
        return text.lower()
    text = text.casefold()
    if not fold_diacritics:
        return unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.translate(_LETTER_FOLDS)


def emoji_key(raw: str) -> str:
    """Normalise an emoji sequence: variation selectors and skin tones are ignored."""
    return _EMOJI_STRIP.sub("", raw) or raw


def normalize_handle(handle: str) -> str:
    """Normalise an account handle for comparison: no leading `@`, case-folded."""
    return handle.strip().removeprefix("@").casefold()


def classify(raw: str) -> TokenKind:
    """Kind of a scanner match (the scanner's alternatives leave each kind a distinct shape)."""
    first = raw[0]
    if first == "@":
        return TokenKind.HANDLE
    if not raw.isascii() and ("\u20e3" in raw or _EMOJI_START.match(raw)):
        return TokenKind.EMOJI
    if first == "#":
        return TokenKind.HASHTAG
    if "/" in raw or raw[:4].lower() == "www.":
        return TokenKind.URL
    if "@" in raw:
        return TokenKind.EMAIL
    return TokenKind.WORD


def token_key(kind: TokenKind, raw: str, *, fold_diacritics: bool) -> str:
    """The normalised text of a (non-compound) token, as used for matching."""
    if kind is TokenKind.WORD or kind is TokenKind.HASHTAG or kind is TokenKind.EMAIL:
        return fold_text(raw, fold_diacritics=fold_diacritics)
    if kind is TokenKind.EMOJI:
        return emoji_key(raw)
    return raw.casefold()  # handles and URLs: case-insensitive, accents significant


def is_compound(raw: str) -> bool:
    """Whether a word token is hyphenated / apostrophed (`ns-storing`, `auto's`)."""
    return "-" in raw or "'" in raw or "’" in raw


def split_compound(raw: str) -> list[str]:
    """The parts of a hyphenated / apostrophed word."""
    return _COMPOUND_SPLIT.split(raw)


def find_tokens(text: str) -> list[str]:
    """The raw token strings of a text, without offsets (the fast path for matching)."""
    return _SCANNER.findall(text)


def strip_url(raw: str) -> str:
    """Drop sentence punctuation that the URL pattern swallowed at the end."""
    return raw.rstrip(_URL_TRAILING)


def scan(text: str, *, fold_diacritics: bool, base_position: int = 0) -> list[ScanItem]:
    """Scan text into raw token tuples with offsets (behind `tokenize` and `explain`)."""
    out: list[ScanItem] = []
    pos = base_position
    for m in _SCANNER.finditer(text):
        raw = m.group()
        start = m.start()
        kind = classify(raw)
        if kind is TokenKind.WORD and is_compound(raw):
            pos = _scan_compound(raw, start, pos, fold_diacritics, out)
            continue
        if kind is TokenKind.URL:
            raw = strip_url(raw)
        out.append(
            (kind, token_key(kind, raw, fold_diacritics=fold_diacritics), pos, 1, start, start + len(raw))
        )
        pos += 1
    return out


def _scan_compound(raw: str, start: int, pos: int, fold: bool, out: list[ScanItem]) -> int:
    """Emit the joined form of a hyphenated/apostrophed word, then its parts; return next position."""
    parts = split_compound(raw)
    keys = [fold_text(part, fold_diacritics=fold) for part in parts]
    out.append((TokenKind.WORD, "".join(keys), pos, len(parts), start, start + len(raw)))
    offset = start
    for part, key in zip(parts, keys, strict=True):
        out.append((TokenKind.WORD, key, pos, 1, offset, offset + len(part)))
        offset += len(part) + 1
        pos += 1
    return pos


def tokenize(text: str, *, fold_diacritics: bool = True) -> list[Token]:
    """Split text into normalised tokens (words, hashtags, handles, emails, URLs, emoji)."""
    return [
        Token(key, text[start:end], kind, start, end, pos, span)
        for kind, key, pos, span, start, end in scan(text, fold_diacritics=fold_diacritics)
    ]
