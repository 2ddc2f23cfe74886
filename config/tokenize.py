"""Tokeniser shared by watchlist queries and the posts they are matched against.

Both sides go through the same scanner, so a keyword and a post always agree on what a "word"
is. See docs/query-language.md for the rules in operator terms.

Every pattern does bounded work per start position (possessive runs, length limits on e-mail
and domain parts), so scanning stays linear in the length of the text even for crafted input.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class TokenKind(StrEnum):
    """What kind of thing a token is; decides which query terms can match it."""

    WORD = "word"
    HASHTAG = "hashtag"  # also cashtags ($AAPL): same matching rules, own `$` key
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

# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, Han, kana) and Hangul,
# whose words take particles directly: a word never mixes one of these with Latin letters or
# digits (`振り返る為にiPhoneで` is three words). Only letters, digits and marks are listed.
_NOSPACE = (
    "\u0e01-\u0e3a\u0e40-\u0e4e\u0e50-\u0e59"  # Thai
    "\u0e81-\u0ecd\u0ed0-\u0ed9\u0edc-\u0edf"  # Lao
    "\u1000-\u1049\u1050-\u109d"  # Myanmar
    "\u1100-\u11ff"  # Hangul jamo
    "\u1780-\u17d3\u17d7\u17dc\u17dd\u17e0-\u17e9"  # Khmer
    "\u3005-\u3007\u3021-\u302f\u3031-\u3035\u303b\u303c"  # iteration marks, Suzhou numerals
    "\u3041-\u3096\u3099\u309a\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"  # hiragana, katakana
    "\u3131-\u318e\u31f0-\u31ff"  # Hangul compatibility jamo, katakana extension
    "\u3400-\u4dbf\u4e00-\u9fff"  # Han
    "\ua960-\ua97c\uac00-\ud7a3\ud7b0-\ud7c6\ud7cb-\ud7fb"  # Hangul
    "\uf900-\ufaff\uff66-\uff9f\uffa0-\uffdc"  # Han compatibility, half-width kana and Hangul
    "\U00020000-\U0003134f"  # Han extensions
)
# Combining marks that `\w` does not cover, so that decomposed (non-NFC) input and scripts with
# vowel signs still form whole words. Offsets therefore always index the caller's own string.
# (Marks of the scripts above are in `_NOSPACE`.)
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff\u1ab0-\u1aff\u1dc0-\u1dff"
    "\u20d0-\u20e2\u20e4-\u20ef\ufe20-\ufe2f"
)
_W = rf"[\w{_MARKS}{_NOSPACE}]"  # any word character (hashtags, handles)
# A run of word characters of spaced scripts (letters, digits, marks). Each branch starts with a
# character class, which the regex engine checks before entering it.
_LETTER_TAIL = rf"[^\W{_NOSPACE}]*+(?:[{_MARKS}]++[^\W{_NOSPACE}]*+)*+"
_LETTER_RUN = rf"(?:[^\W{_NOSPACE}]{_LETTER_TAIL}|[{_MARKS}]{_LETTER_TAIL})"
_NOSPACE_RUN = rf"[{_NOSPACE}]++"
# A dot stays inside a word (bol.com, 3.5, e.g, ASP.NET) unless a capitalised word follows it:
# "KLM.Never again" lacks a space after a full stop. `.Com`, `.Org` and `.Nl` are domains.
_DOT = r"\.(?!(?!(?:Com|Org|Nl)\b)[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])"
_CASE_SPLIT: Final = re.compile(r"\.[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]")  # where `_DOT` may end a word
# `&` joins short letter groups into one word (AT&T, C&A, H&M, P&O) but not longer words
# (NS&ProRail is two words).
_AMP = r"&(?<!\w\w\w&)(?=[^\W\d_]{1,2}(?!\w))"
_WORD = rf"{_NOSPACE_RUN}|{_LETTER_RUN}(?:(?:[-'’]|{_DOT}|{_AMP}){_LETTER_RUN})*"
# Single-letter programming languages: C#, F#, C++ (the `#`/`++` is part of the word).
_LANGUAGE = r"[A-Za-z](?=[#+])(?<![\w#+][A-Za-z])(?:#|\+\+)(?![\w#+])"
_EMOJI_BASE_CHARS = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf"
    "\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001faff"
)
_EMOJI_MOD_CHARS = "\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f"
_EMOJI_BASE = f"[{_EMOJI_BASE_CHARS}]"
_EMOJI_MOD = f"[{_EMOJI_MOD_CHARS}]"
_EMOJI = (
    "[\U0001f1e6-\U0001f1ff]{2}"  # flags: a pair of regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # keycaps
    rf"|{_EMOJI_BASE}{_EMOJI_MOD}*(?:\u200d{_EMOJI_BASE}{_EMOJI_MOD}*)*"  # ZWJ sequences
)
_URL_BODY = "[^\\s<>\"'“”‘’]"
# Domain labels and e-mail local parts have length limits (63 and 64), which also keep a failed
# attempt from rescanning the rest of the text from every word start.
_LABEL = r"[\w-]{1,63}+"
_URL = rf"(?i:https?://|www\.){_URL_BODY}+|(?:{_LABEL}\.){{1,16}}+[A-Za-z]{{2,63}}+/{_URL_BODY}*"
_EMAIL = rf"[\w.+-]{{1,64}}+@{_LABEL}(?:\.{_LABEL})++"
# Bluesky handles are domains (@klm.bsky.social, @klm.com); fediverse ones add @instance.
_HANDLE = rf"@(?<![\w@]@){_W}++(?:{_DOT}{_LABEL})*+(?:@{_LABEL}(?:\.{_LABEL})++)?"
_HASHTAG = rf"#(?<![\w#&]#){_W}++"
_CASHTAG = r"\$(?<![\w$]\$)[A-Za-z][A-Za-z0-9_]*+"
# Fast paths first: a plain run of word characters that nothing else could extend (no URL, email,
# compound, keycap, combining mark or other script follows). They yield exactly what the full
# alternation would; the ASCII one only saves time. (Alternatives start with a character or class,
# lookbehinds come after it: the regex engine then skips an alternative on its first character.)
_FOLLOWERS = rf"-'’.@/:+&#\ufe0f\u20e3{_MARKS}{_NOSPACE}"  # characters that may extend a word
_ASCII_PLAIN = rf"[0-9A-Za-z_]++(?![{_FOLLOWERS}\w])"
_PLAIN = rf"[^\W{_NOSPACE}]++(?![{_FOLLOWERS}])"
_SCANNER: Final = re.compile(
    f"{_ASCII_PLAIN}|{_PLAIN}|{_URL}|{_EMAIL}|{_EMOJI}|{_HANDLE}|{_HASHTAG}|{_CASHTAG}|{_LANGUAGE}|{_WORD}"
)
_EMOJI_START: Final = re.compile(f"{_EMOJI}")
_COMPOUND_SPLIT: Final = re.compile(r"[-'’]")
_EMOJI_STRIP: Final = re.compile("[\ufe0f\U0001f3fb-\U0001f3ff]")
_URL_TRAILING = ".,;:!?)]}'\"…"

# Invisible format characters (Unicode category Cf: soft hyphen, zero-width space and joiner,
# word joiner, bidi controls, BOM, ...) are removed before scanning, so `Zig\u00adgo` is `Ziggo`.
# The zero-width joiner stays between emoji (👨\u200d👩\u200d👧) and tag characters stay in flags
# (🏴 + tag letters + cancel tag, the flag of Scotland).
# Left out: the format controls of Egyptian hieroglyphs, Duployan shorthand and musical notation
# (U+13430.., U+1BCA0.., U+1D173..), which never occur inside words we match and whose ranges
# would make the check below several times slower. U+02BC (modifier letter apostrophe,
# `McDonaldʼs`) becomes an ordinary apostrophe.
_FORMAT_CHARS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200c\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U000e0001"
)
_APOSTROPHE_LETTER = "\u02bc"
# Cheap first check (one character class, no context): most texts have none of these at all.
_MAYBE_INVISIBLE: Final = re.compile(f"[{_FORMAT_CHARS}\u200d{_APOSTROPHE_LETTER}]")
_INVISIBLE: Final = re.compile(
    f"[{_FORMAT_CHARS}{_APOSTROPHE_LETTER}]"
    f"|(?<![{_EMOJI_BASE_CHARS}{_EMOJI_MOD_CHARS}])\u200d"
    f"|\u200d(?![{_EMOJI_BASE_CHARS}])"
)

# English (and Dutch `zo'n`, `m'n`) contraction endings: `she'll` is not `shell`, `I'd` not `id`,
# `we're` not `were`, so such words get no joined form. `'s` (McDonald's, KLM's, auto's) and
# `n't` (don't ~ dont) keep theirs.
_CONTRACTIONS: Final = frozenset({"ll", "d", "re", "ve", "m", "n"})

# Characters that a keyword may lose without changing what it means (see `dropped_characters`).
_SYNTAX_CHARS: Final = frozenset("-'’ʼ*\"“”„")

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


def remove_invisible(text: str) -> str:
    """The text without invisible format characters (and with `ʼ` as an apostrophe)."""
    if text.isascii() or not _MAYBE_INVISIBLE.search(text):
        return text
    return _INVISIBLE.sub(_replacement, text)


def _replacement(m: re.Match[str]) -> str:
    """What an invisible character becomes: nothing, or `’` for a modifier-letter apostrophe."""
    return "’" if m.group() == _APOSTROPHE_LETTER else ""


def _clean(text: str) -> tuple[str, list[int], list[int]]:
    """`remove_invisible` plus an offset map: cleaned index i maps to i + shift of its segment.

    Returns (cleaned text, segment starts in the cleaned text, shift per segment); both lists
    are empty when nothing was removed.
    """
    if text.isascii() or not _MAYBE_INVISIBLE.search(text) or not _INVISIBLE.search(text):
        return text, [], []
    pieces: list[str] = []
    starts: list[int] = [0]
    shifts: list[int] = [0]
    last = 0
    length = 0
    for m in _INVISIBLE.finditer(text):
        s, e = m.span()
        pieces.append(text[last:s])
        length += s - last
        rep = _replacement(m)
        pieces.append(rep)
        length += len(rep)
        last = e
        starts.append(length)
        shifts.append(e - length)
    pieces.append(text[last:])
    return "".join(pieces), starts, shifts


def classify(raw: str) -> TokenKind:
    """Kind of a scanner match (the scanner's alternatives leave each kind a distinct shape)."""
    first = raw[0]
    if first == "@":
        return TokenKind.HANDLE
    if not raw.isascii() and ("\u20e3" in raw or _EMOJI_START.match(raw)):
        return TokenKind.EMOJI
    if first == "#" or first == "$":
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


def compound_parts(raw: str) -> tuple[list[str], int]:
    """The parts of a hyphenated / apostrophed word and how many leading parts form its joined form.

    The count is 0 when the word has no joined form: `she'll` is the words `she`, `ll` only.
    A contraction ending is never joined (`T-Mobile'll` joins `tmobile`, not `tmobilell`).
    """
    parts = split_compound(raw)
    joined = len(parts)
    last = parts[-1]
    if joined > 1 and raw[-len(last) - 1] != "-" and last.casefold() in _CONTRACTIONS:
        joined -= 1
    return parts, joined if joined > 1 else 0


def case_splits_words(text: str) -> bool:
    """Whether letter case decides a token boundary in `text` (a capital after a dot: `KLM.Never`).

    When it does not, scanning the lower-cased text gives the same tokens, lower-cased.
    """
    return _CASE_SPLIT.search(text) is not None


def dropped_characters(text: str) -> str:
    """Characters of a keyword that no token keeps, once each: `.NET` loses `.`, `€uro` loses `€`.

    Spaces, hyphens, apostrophes, quotes, `*` and invisible characters are separators or syntax
    by design and not reported.
    """
    kept = [False] * len(text)
    for *_, start, end in scan(text, fold_diacritics=False):
        kept[start:end] = [True] * (end - start)
    lost = (
        ch
        for ch, ok in zip(text, kept, strict=True)
        if not ok and not ch.isspace() and ch not in _SYNTAX_CHARS and unicodedata.category(ch) != "Cf"
    )
    return "".join(dict.fromkeys(lost))


def find_tokens(text: str) -> list[str]:
    """The raw token strings of a text, without offsets (the fast path for matching)."""
    return _SCANNER.findall(remove_invisible(text))


def strip_url(raw: str) -> str:
    """Drop sentence punctuation that the URL pattern swallowed at the end."""
    return raw.rstrip(_URL_TRAILING)


def scan(text: str, *, fold_diacritics: bool, base_position: int = 0) -> list[ScanItem]:
    """Scan text into raw token tuples with offsets (behind `tokenize` and `explain`).

    Offsets index `text` itself, also where invisible characters were removed before scanning.
    """
    clean, starts, shifts = _clean(text)
    out: list[ScanItem] = []
    pos = base_position
    for m in _SCANNER.finditer(clean):
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
    if starts:  # map offsets in the cleaned text back to the caller's text
        out = [
            (kind, key, p, n, _origin(s, starts, shifts), _origin(e - 1, starts, shifts) + 1)
            for kind, key, p, n, s, e in out
        ]
    return out


def _origin(index: int, starts: list[int], shifts: list[int]) -> int:
    """Offset in the original text of a character of the cleaned text."""
    return index + shifts[bisect_right(starts, index) - 1]


def _scan_compound(raw: str, start: int, pos: int, fold: bool, out: list[ScanItem]) -> int:
    """Emit the joined form of a hyphenated/apostrophed word, then its parts; return next position."""
    parts, joined = compound_parts(raw)
    keys = [fold_text(part, fold_diacritics=fold) for part in parts]
    if joined:
        end = start + sum(len(p) for p in parts[:joined]) + joined - 1
        out.append((TokenKind.WORD, "".join(keys[:joined]), pos, joined, start, end))
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
