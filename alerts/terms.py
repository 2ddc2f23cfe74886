"""Characteristic terms of a set of posts against a background (crisis top terms, digest themes)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

__all__ = ["STOP_WORDS", "phrases", "top_terms", "words"]

_WORD = re.compile(r"[#@]?[^\W\d_][\w'’\-]*", re.UNICODE)
_URL = re.compile(r"https?://\S+|www\.\S+")

#: Dutch and English function words, plus social-media noise. Brand names are excluded per call.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's
    her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it
    it's its itself let's me more most mustn't my myself no nor not of off on once only or other ought
    our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such
    than that that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll we're we've
    were weren't what what's when when's where where's which while who who's whom why why's with won't
    would wouldn't you you'd you'll you're you've your yours yourself yourselves just get got like
    really now still also even one two will amp rt via im dont cant ive youre thats u ur lol omg yes
    yeah ok okay pls please thanks thank gonna wanna de het een en van ik te dat die in is je niet er
    zijn op aan met als voor had maar om hem dan zou of wat mijn men dit zo door over ze zich bij ook
    tot je mij uit der daar haar naar heb hoe heeft hebben deze u want nog zal me zij nu ge geen omdat
    iets worden toch al waren veel meer doen toen moet ben zonder kan hun dus alles onder ja eens hier
    wie werd altijd doch wordt wezen kunnen ons zelf tegen na reeds wil kon niets uw iemand geweest
    andere we wij jullie jij hij mijn wel weer gaat gaan even echt heel nee nou hoor alweer gewoon zeer
    nog steeds waarom wanneer waar sinds vandaag gisteren morgen gisteravond
    """.split()  # noqa: SIM905 - a word list reads and diffs better as text than as 327 literals
)


def words(text: str, *, exclude: Iterable[str] = ()) -> list[str]:
    """Lower-cased content words of ``text`` (no URLs, stop words, numbers or excluded names)."""
    banned = {w.casefold() for name in exclude for w in name.split()}
    out = []
    for match in _WORD.finditer(_URL.sub(" ", text)):
        word = match.group(0).casefold().strip("'’-")
        bare = word.lstrip("#@")
        if len(bare) < 3 or bare in STOP_WORDS or bare in banned or word.startswith("@"):
            continue
        out.append(word)
    return out


def top_terms(
    texts: Sequence[str], background: Sequence[str] = (), *, limit: int = 5, exclude: Iterable[str] = ()
) -> list[str]:
    """Terms and two-word phrases frequent in ``texts`` and rarer in ``background`` (document counts)."""
    exclude = tuple(exclude)
    fg = _doc_freq(texts, exclude)
    if not fg:
        return []
    bg = _doc_freq(background, exclude)
    n_fg, n_bg = len(texts), max(len(background), 1)
    scored: list[tuple[float, str]] = []
    for term, df in fg.items():
        if df < 2 and n_fg > 3:
            continue
        lift = ((df + 0.5) / (n_fg + 1)) / ((bg.get(term, 0) + 0.5) / (n_bg + 1))
        # Frequent and distinctive: document share, damped by how common the term was before.
        scored.append((df * math.log1p(lift) * (1.3 if " " in term else 1.0), term))
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen: list[str] = []
    for _, term in scored:
        # Skip a single word already covered by a chosen phrase, and vice versa.
        if any(term in c.split() or c in term.split() for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) >= limit:
            break
    return chosen


def phrases(tokens: Sequence[str]) -> set[str]:
    """Two-word phrases of consecutive content words (a repeated word, "refund refund", is no phrase)."""
    return {f"{a} {b}" for a, b in pairwise(tokens) if a != b}


def _doc_freq(texts: Sequence[str], exclude: tuple[str, ...]) -> Counter[str]:
    df: Counter[str] = Counter()
    for text in texts:
        tokens = words(text, exclude=exclude)
        terms = set(tokens)
        terms.update(phrases(tokens))
        df.update(terms)
    return df
