"""Evaluation of parsed watchlist queries against documents tokenised once."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from config.query_parser import And, Field, Near, Node, Not, Or, Phrase, Term, normalize_field_value
from config.tokenize import (
    TokenKind,
    case_splits_words,
    classify,
    compound_parts,
    emoji_key,
    find_tokens,
    fold_text,
    is_compound,
    normalize_handle,
    strip_url,
)

# Title and text are tokenised into one position space with a gap, so phrases and NEAR never
# span from the title into the body.
TEXT_GAP: Final = 1 << 20
_HOST_RE: Final = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?([^/?#\s]+)(.*)", re.IGNORECASE | re.DOTALL)
_BARE_DOMAIN: Final = re.compile(r"(?:[a-z0-9-]+\.)+[a-z]{2,}")
_PLAIN_ASCII: Final = re.compile(r"[a-z0-9]+")

Span = tuple[int, int]  # [first position, position after the last)
SpanMap = dict[str, list[Span]]
# Index keys: (kind, key). Kinds: w/t/h/e exact word/hashtag/handle/email, wp/tp/hp prefixes, f field.
IndexKey = tuple[str, str]
Clause = list[IndexKey]
KeyScorer = Callable[[Clause], float]


@dataclass(frozen=True, slots=True)
class Document:
    """A post to match: text plus the metadata that field filters look at."""

    text: str
    title: str | None = None
    lang: str | None = None
    source: str | None = None
    author: str | None = None
    url: str | None = None
    author_name: str | None = None  # display name; `author:` matches it as well as the handle


def split_url(url: str) -> tuple[str, str]:
    """Host (lower-case, no `www.`, no port or credentials) and the rest of a URL."""
    m = _HOST_RE.match(url.strip())
    if m is None:  # pragma: no cover - the pattern matches any string
        return "", ""
    host = m.group(1).casefold().rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    return host.removeprefix("www."), m.group(2)


class PreparedDocument:
    """A document tokenised once (for one diacritic-folding mode), ready for many queries."""

    __slots__ = (
        "_extra",
        "_links",
        "_runs",
        "_sorted",
        "_words",
        "author",
        "author_name",
        "doc",
        "emails",
        "fold",
        "handles",
        "lang",
        "lang_primary",
        "source",
        "tags",
        "url_tokens",
        "word_set",
    )

    def __init__(self, doc: Document, *, fold_diacritics: bool = True) -> None:
        self.doc = doc
        self.fold = fold_diacritics
        self.tags: SpanMap = {}
        self.handles: SpanMap = {}
        self.emails: SpanMap = {}
        self.url_tokens: list[str] = []
        self._runs: list[tuple[int, list[str]]] = []  # (first position, word key per position)
        self._extra: list[tuple[str, int, int]] = []  # joined forms of hyphenated words
        self._words: SpanMap | None = None
        self._links: list[tuple[str, str, str]] | None = None
        self._sorted: dict[str, list[str]] = {}
        word_set: set[str] = set()
        base = 0
        for text in (doc.title, doc.text):
            if not text:
                continue
            seq = self._scan_field(text, base)
            if seq:
                self._runs.append((base, seq))
                word_set.update(seq)
                base += len(seq) - 1 + TEXT_GAP
        word_set.update(key for key, _a, _b in self._extra)
        word_set.discard("")
        self.word_set = word_set
        lang = (doc.lang or "").casefold().replace("_", "-")
        self.lang = lang
        self.lang_primary = lang.split("-", 1)[0]
        self.source = (doc.source or "").casefold()
        self.author = normalize_handle(doc.author or "")
        self.author_name = normalize_handle(doc.author_name or "")

    def _scan_field(self, text: str, base: int) -> list[str]:
        """Word key per position of one field ("" where the token is no word, e.g. an email).

        Hot path: the same scanner as `tokenize`, without offsets; plain ASCII words need no
        further work.
        """
        if text.isascii():
            if case_splits_words(text):  # "KLM.Never": the capital makes two words of it
                toks = list(map(str.lower, find_tokens(text)))
            else:  # lower-casing the text first then moves no token boundary
                toks = find_tokens(text.lower())
            plain: Iterable[object] = map(str.isalnum, toks)
        else:  # non-ASCII lower-casing can (İ -> i + U+0307), so only ASCII tokens are lowered
            toks = [t.lower() if t.isascii() else t for t in find_tokens(text)]
            plain = map(_PLAIN_ASCII.fullmatch, toks)
        special = [i for i, ok in enumerate(plain) if not ok]
        if not special:
            return toks
        if any("-" in toks[i] or "'" in toks[i] or "’" in toks[i] for i in special):
            return self._scan_field_slow(toks, base)
        for i in special:
            toks[i] = self._special(toks[i], base + i)
        return toks

    def _scan_field_slow(self, toks: list[str], base: int) -> list[str]:
        """General path: hyphenated words take one position per part, plus a joined form (mostly)."""
        seq: list[str] = []
        fold = self.fold
        for tok in toks:
            pos = base + len(seq)
            if is_compound(tok) and classify(tok) is TokenKind.WORD:
                raw_parts, joined = compound_parts(tok)
                parts = [fold_text(part, fold_diacritics=fold) for part in raw_parts]
                if joined:  # `she'll` has none: it is not `shell`
                    self._extra.append(("".join(parts[:joined]), pos, pos + joined))
                seq.extend(parts)
            else:
                seq.append(self._special(tok, pos))
        return seq

    def _special(self, tok: str, pos: int) -> str:
        """Index a non-plain token (hashtag, handle, email, URL, emoji, non-ASCII word); its word key."""
        fold = self.fold
        kind = classify(tok)
        if kind is TokenKind.WORD:
            return fold_text(tok, fold_diacritics=fold)
        if kind is TokenKind.HASHTAG:
            key = fold_text(tok, fold_diacritics=fold)
            _add(self.tags, key, pos, pos + 1)
            return key[1:]  # `#storing` also matches the word `storing`
        if kind is TokenKind.HANDLE:
            _add(self.handles, tok.casefold(), pos, pos + 1)
            return fold_text(tok[1:], fold_diacritics=fold)
        if kind is TokenKind.EMAIL:
            _add(self.emails, fold_text(tok, fold_diacritics=fold), pos, pos + 1)
            return ""
        if kind is TokenKind.URL:  # not split into words; the host is one word (`bol.com`)
            url = strip_url(tok).casefold()
            self.url_tokens.append(url)
            return fold_text(split_url(url)[0], fold_diacritics=fold)
        return emoji_key(tok)

    @property
    def words(self) -> SpanMap:
        """Word key -> spans; built on first use (only phrases, NEAR and explain need positions)."""
        if self._words is None:
            words: SpanMap = {}
            for base, seq in self._runs:
                for pos, key in enumerate(seq, base):
                    if key:
                        _add(words, key, pos, pos + 1)
            for key, start, stop in self._extra:
                _add(words, key, start, stop)
            self._words = words
        return self._words

    def sorted_keys(self, attr: str) -> list[str]:
        """The keys of one token map (`words`, `tags`, ...) in sorted order, for prefix search."""
        keys = self._sorted.get(attr)
        if keys is None:
            source = self.word_set if attr == "words" else getattr(self, attr)
            keys = self._sorted[attr] = sorted(source)
        return keys

    def links(self) -> list[tuple[str, str, str]]:
        """(url, host, rest) for the document URL, URLs in the text and bare domains like ns.nl."""
        if self._links is None:
            urls = [self.doc.url.casefold()] if self.doc.url else []
            urls.extend(self.url_tokens)
            urls.extend(w for w in self.word_set if "." in w and _BARE_DOMAIN.fullmatch(w))
            self._links = [(u, *split_url(u)) for u in urls]
        return self._links

    def field_keys(self) -> list[str]:
        """Index keys (`name:value`) for the field values this document has."""
        keys = []
        if self.lang:
            keys.append("lang:" + self.lang)
            if self.lang_primary != self.lang:
                keys.append("lang:" + self.lang_primary)
        if self.source:
            keys.append("source:" + self.source)
        if self.author:
            keys.append("author:" + self.author)
        if self.author_name and self.author_name != self.author:
            keys.append("author:" + self.author_name)
        return keys


def _add(spans: SpanMap, key: str, start: int, stop: int) -> None:
    """Record one occurrence of a key."""
    lst = spans.get(key)
    if lst is None:
        spans[key] = [(start, stop)]
    else:
        lst.append((start, stop))


def prepare(doc: Document | PreparedDocument, *, fold_diacritics: bool = True) -> PreparedDocument:
    """Tokenise a document once (re-uses an already prepared one with the same folding mode)."""
    if isinstance(doc, PreparedDocument):
        if doc.fold == fold_diacritics:
            return doc
        doc = doc.doc
    return PreparedDocument(doc, fold_diacritics=fold_diacritics)


# ---------------------------------------------------------------------------------------- explain


@dataclass(frozen=True, slots=True)
class ExplainNode:
    """One clause of a query with its result and the word spans it matched.

    `kind` is AND, OR, NOT, NEAR, ONEAR, term, wildcard, phrase or field.
    """

    clause: str
    kind: str
    matched: bool
    spans: tuple[Span, ...] = ()
    children: tuple[ExplainNode, ...] = ()


# ------------------------------------------------------------------------------------- evaluators


class Evaluator:
    """A compiled query clause."""

    __slots__ = ("label",)
    kind_name = "clause"  # shown in ExplainNode.kind

    def __init__(self, label: str) -> None:
        self.label = label

    def test(self, p: PreparedDocument) -> bool:
        """Whether the clause matches."""
        raise NotImplementedError

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Word spans where a positional clause matches (empty for non-positional clauses)."""
        return []

    def explain(self, p: PreparedDocument) -> ExplainNode:
        """Evaluate without short-circuiting and report every clause."""
        spans = self.spans(p)
        return ExplainNode(self.label, self.kind_name, self.test(p), tuple(sorted(set(spans))))

    def matched_terms(self, p: PreparedDocument) -> list[str]:
        """Labels of the positive clauses that made this (matching) clause true."""
        return [self.label] if self.test(p) else []

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """Clauses (key lists) such that every matching document has a key from each clause.

        An empty list means nothing is known (e.g. under NOT). `score` ranks alternative clauses
        where only one can be kept (inside OR); lower is more selective.
        """
        return []


# Which PreparedDocument map a term kind is looked up in, and its index-key code.
_MAPS: Final = MappingProxyType(
    {
        TokenKind.HASHTAG: ("tags", "t"),
        TokenKind.HANDLE: ("handles", "h"),
        TokenKind.EMAIL: ("emails", "e"),
    }
)


class WordEval(Evaluator):
    """An exact token (word, emoji, hashtag, handle or email)."""

    __slots__ = ("attr", "code", "key", "kind", "test_attr", "wildcard")
    kind_name = "term"

    def __init__(self, label: str, key: str, kind: TokenKind, wildcard: bool = False) -> None:
        super().__init__(label)
        self.key = key
        self.kind = kind
        self.wildcard = wildcard
        self.attr, self.code = _MAPS.get(kind, ("words", "w"))
        self.test_attr = "word_set" if self.attr == "words" else self.attr

    def test(self, p: PreparedDocument) -> bool:
        """Token present."""
        return self.key in getattr(p, self.test_attr)

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Positions of the token."""
        m: SpanMap = getattr(p, self.attr)
        return m.get(self.key, [])

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """The token itself."""
        return [[(self.code, self.key)]]


class PrefixEval(WordEval):
    """A trailing-wildcard token: `klant*`, `#storing*`."""

    __slots__ = ()
    kind_name = "wildcard"

    def test(self, p: PreparedDocument) -> bool:
        """Some token starts with the prefix (binary search in the sorted tokens)."""
        keys = p.sorted_keys(self.attr)
        key = self.key
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i].startswith(key)

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Positions of all tokens with the prefix."""
        m: SpanMap = getattr(p, self.attr)
        keys = p.sorted_keys(self.attr)
        key = self.key
        out: list[Span] = []
        for i in range(bisect_left(keys, key), len(keys)):
            if not keys[i].startswith(key):
                break
            out.extend(m[keys[i]])
        return out

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """The prefix."""
        return [[(self.code + "p", self.key)]]


class PhraseEval(Evaluator):
    """Consecutive positional elements."""

    __slots__ = ("elements",)
    kind_name = "phrase"

    def __init__(self, label: str, elements: list[Evaluator]) -> None:
        super().__init__(label)
        self.elements = elements

    def test(self, p: PreparedDocument) -> bool:
        """Phrase occurs (positions are only looked at when every element occurs somewhere)."""
        return all(e.test(p) for e in self.elements) and bool(self.spans(p))

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Spans of complete phrase occurrences."""
        first, *rest = self.elements
        current = first.spans(p)
        for element in rest:
            if not current:
                return []
            by_start: dict[int, list[int]] = {}
            for s, e in element.spans(p):
                by_start.setdefault(s, []).append(e)
            current = [(s, e2) for s, e in current for e2 in by_start.get(e, ())]
        return current

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """Every element must occur."""
        return [c for e in self.elements for c in e.index_clauses(score)]


class CompoundEval(Evaluator):
    """A hyphenated term: matches the joined form or the parts as a phrase."""

    __slots__ = ("joined", "parts")
    kind_name = "term"

    def __init__(self, label: str, joined: WordEval, parts: PhraseEval) -> None:
        super().__init__(label)
        self.joined = joined
        self.parts = parts

    def test(self, p: PreparedDocument) -> bool:
        """Joined form or parts occur."""
        return self.joined.test(p) or self.parts.test(p)

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Spans of either form."""
        return self.joined.spans(p) + self.parts.spans(p)

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """Joined form or (the most selective of) the parts."""
        return any_of_clauses([self.joined.index_clauses(score), self.parts.index_clauses(score)], score)


class FieldEval(Evaluator):
    """A field filter (lang/source/author/site/url)."""

    __slots__ = ("host", "name", "path", "value")
    kind_name = "field"

    def __init__(self, label: str, name: str, value: str) -> None:
        super().__init__(label)
        self.name = name
        self.value = value
        self.host, self.path = split_url(value) if name == "site" else ("", "")

    def test(self, p: PreparedDocument) -> bool:
        """Whether the document's field satisfies the filter."""
        v = self.value
        if self.name == "lang":
            return v == p.lang or ("-" not in v and v == p.lang_primary)
        if self.name == "source":
            return v == p.source
        if self.name == "author":
            return v == p.author or v == p.author_name
        if self.name == "site":
            suffix = "." + self.host
            return any(
                (host == self.host or host.endswith(suffix)) and _path_within(rest, self.path)
                for _url, host, rest in p.links()
            )
        return any(v in url for url, _host, _rest in p.links())

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """The field value (url: substrings are checked against the post's links)."""
        if self.name == "url":
            return [[("u", self.value)]]
        if self.name == "site":
            return [[("s", self.host)]]
        return [[("f", f"{self.name}:{self.value}")]]


def _path_within(rest: str, path: str) -> bool:
    """Whether a URL's rest (path, query) lies under `path`, by whole segments: /nl has /nl/x, not /nlx."""
    if not path:
        return True
    if not rest.startswith(path):
        return False
    return len(rest) == len(path) or rest[len(path)] in "/?#" or "?" in path


class AndEval(Evaluator):
    """Every child matches."""

    __slots__ = ("children", "fast")

    def __init__(self, label: str, children: list[Evaluator]) -> None:
        super().__init__(label)
        self.children = children  # query order, for explain and matched terms
        self.fast = sorted(children, key=_cost)  # cheap checks first, NOT last

    def test(self, p: PreparedDocument) -> bool:
        """All children true."""
        return all(c.test(p) for c in self.fast)

    def explain(self, p: PreparedDocument) -> ExplainNode:
        """Report every child."""
        kids = tuple(c.explain(p) for c in self.children)
        return ExplainNode(self.label, "AND", all(k.matched for k in kids), (), kids)

    def matched_terms(self, p: PreparedDocument) -> list[str]:
        """Terms of all children."""
        return [t for c in self.children for t in c.matched_terms(p)] if self.test(p) else []

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """Every child's clauses hold."""
        return [c for child in self.children for c in child.index_clauses(score)]


class OrEval(Evaluator):
    """At least one child matches."""

    __slots__ = ("children", "fast")

    def __init__(self, label: str, children: list[Evaluator]) -> None:
        super().__init__(label)
        self.children = children
        self.fast = sorted(children, key=_cost)

    def test(self, p: PreparedDocument) -> bool:
        """Any child true."""
        return any(c.test(p) for c in self.fast)

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Union of the children's spans (for OR-groups inside NEAR)."""
        return [s for c in self.children for s in c.spans(p)]

    def explain(self, p: PreparedDocument) -> ExplainNode:
        """Report every child."""
        kids = tuple(c.explain(p) for c in self.children)
        spans = tuple(sorted({s for k in kids for s in k.spans}))
        return ExplainNode(self.label, "OR", any(k.matched for k in kids), spans, kids)

    def matched_terms(self, p: PreparedDocument) -> list[str]:
        """Terms of the children that matched."""
        return [t for c in self.children for t in c.matched_terms(p)]

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """One clause: the union of each child's most selective clause (if every child has one)."""
        return any_of_clauses([c.index_clauses(score) for c in self.children], score)


class NotEval(Evaluator):
    """The child does not match."""

    __slots__ = ("child",)

    def __init__(self, label: str, child: Evaluator) -> None:
        super().__init__(label)
        self.child = child

    def test(self, p: PreparedDocument) -> bool:
        """Child false."""
        return not self.child.test(p)

    def explain(self, p: PreparedDocument) -> ExplainNode:
        """Report the negated child."""
        kid = self.child.explain(p)
        return ExplainNode(self.label, "NOT", not kid.matched, (), (kid,))

    def matched_terms(self, p: PreparedDocument) -> list[str]:
        """A NOT contributes no matched terms."""
        return []


class NearEval(Evaluator):
    """Both sides within `distance` words (left before right when ordered)."""

    __slots__ = ("distance", "left", "ordered", "right")

    def __init__(self, label: str, left: Evaluator, right: Evaluator, distance: int, ordered: bool) -> None:
        super().__init__(label)
        self.left = left
        self.right = right
        self.distance = distance
        self.ordered = ordered

    def test(self, p: PreparedDocument) -> bool:
        """Some pair of occurrences is close enough."""
        if not (self.left.test(p) and self.right.test(p)):
            return False
        return next(self._pairs(p), None) is not None

    def spans(self, p: PreparedDocument) -> list[Span]:
        """Covering spans of every close-enough pair."""
        return list(self._pairs(p))

    def _pairs(self, p: PreparedDocument) -> Iterator[Span]:
        """Covering spans of the close-enough pairs, found by binary search (not all pairs).

        O(n log n) in the number of occurrences plus the pairs produced (never all pairs), so a
        long post that repeats both sides thousands of times costs milliseconds, not seconds.
        """
        left = self.left.spans(p)
        if not left:
            return
        right = self.right.spans(p)
        if not right:
            return
        n = self.distance
        by_start = sorted(right)
        starts = [b0 for b0, _b1 in by_start]
        by_end = sorted(right, key=lambda s: s[1])
        ends = [b1 for _b0, b1 in by_end]
        for a0, a1 in left:
            # right side after the left one: a1 <= b0 <= a1 + n
            for i in range(bisect_left(starts, a1), bisect_right(starts, a1 + n)):
                yield a0, max(a1, by_start[i][1])
            if not self.ordered:  # right side before the left one: a0 - n <= b1 <= a0
                for i in range(bisect_left(ends, a0 - n), bisect_right(ends, a0)):
                    yield min(a0, by_end[i][0]), a1

    def explain(self, p: PreparedDocument) -> ExplainNode:
        """Report both sides and the close-enough spans."""
        kids = (self.left.explain(p), self.right.explain(p))
        spans = tuple(sorted(set(self.spans(p))))
        return ExplainNode(self.label, "ONEAR" if self.ordered else "NEAR", bool(spans), spans, kids)

    def index_clauses(self, score: KeyScorer) -> list[Clause]:
        """Both sides must occur."""
        return self.left.index_clauses(score) + self.right.index_clauses(score)


def _cost(e: Evaluator) -> int:
    """Rough evaluation cost, to order AND/OR children."""
    if isinstance(e, WordEval):
        return 1 if not e.wildcard else 3
    if isinstance(e, FieldEval):
        return 2 if e.name not in ("site", "url") else 4
    if isinstance(e, NotEval):
        return 9
    return 5


def default_key_score(clause: Clause) -> float:
    """Selectivity without corpus statistics: few keys, exact over prefix, long over short."""
    total = 0.0
    for kind, key in clause:
        weight = 1.0 + 8.0 / (1 + len(key))
        if kind.endswith("p"):
            weight *= 3
        elif kind in ("f", "s", "u"):
            weight *= 20  # a field value (lang:nl) is shared by a large share of posts
        total += weight
    return total


def any_of_clauses(alternatives: list[list[Clause]], score: KeyScorer) -> list[Clause]:
    """Clauses for a disjunction: union of each alternative's best clause; [] if one has none."""
    merged: Clause = []
    for clauses in alternatives:
        if not clauses:
            return []
        best: Clause = min(clauses, key=score)
        merged.extend(best)
    return [merged]


# ------------------------------------------------------------------------------------------ compile


def compile_node(node: Node, *, fold_diacritics: bool) -> Evaluator:
    """Compile an AST node into an evaluator for one diacritic-folding mode."""
    label = str(node)
    if label.startswith("(") and label.endswith(")") and isinstance(node, And | Or | Near):
        label = label[1:-1]
    if isinstance(node, Term):
        return _compile_term(node, fold_diacritics)
    if isinstance(node, Phrase):
        return PhraseEval(label, [_compile_term(t, fold_diacritics) for t in node.terms])
    if isinstance(node, Field):
        return FieldEval(label, node.name, normalize_field_value(node.name, node.value))
    if isinstance(node, And):
        return AndEval(label, [compile_node(c, fold_diacritics=fold_diacritics) for c in node.children])
    if isinstance(node, Or):
        return OrEval(label, [compile_node(c, fold_diacritics=fold_diacritics) for c in node.children])
    if isinstance(node, Not):
        return NotEval(label, compile_node(node.child, fold_diacritics=fold_diacritics))
    return NearEval(
        label,
        compile_node(node.left, fold_diacritics=fold_diacritics),
        compile_node(node.right, fold_diacritics=fold_diacritics),
        node.distance,
        node.ordered,
    )


def _fold_term(text: str, kind: TokenKind, fold: bool) -> str:
    """Apply the document-side normalisation to a term key."""
    if kind in (TokenKind.WORD, TokenKind.HASHTAG, TokenKind.EMAIL):
        return fold_text(text, fold_diacritics=fold)
    return text


def _compile_term(term: Term, fold: bool) -> Evaluator:
    """Compile a term; hyphenated terms match joined or split forms."""
    label = str(term)
    if not term.parts:
        return _word(label, _fold_term(term.text, term.kind, fold), term.kind, term.wildcard)
    last = len(term.parts) - 1
    parts: list[Evaluator] = [
        _word(part, fold_text(part, fold_diacritics=fold), TokenKind.WORD, term.wildcard and i == last)
        for i, part in enumerate(term.parts)
    ]
    joined = _word(label, fold_text(term.text, fold_diacritics=fold), TokenKind.WORD, term.wildcard)
    return CompoundEval(label, joined, PhraseEval(label, parts))


def _word(label: str, key: str, kind: TokenKind, wildcard: bool) -> WordEval:
    """An exact or prefix token evaluator."""
    return (PrefixEval if wildcard else WordEval)(label, key, kind, wildcard)
