"""Watchlist query language and matcher: which posts are about which brand.

Public API (stable): `Document`, `parse`, `compile_query`, `CompiledQuery`, `BrandRule`,
`WatchlistMatcher`, `BrandMatch`, `explain`, `Explanation`, `is_tagged`, `tokenize`, `Token`,
`QuerySyntaxError`. Syntax and tokenisation rules: docs/query-language.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from config.query_eval import (
    TEXT_GAP,
    Clause,
    Document,
    Evaluator,
    ExplainNode,
    IndexKey,
    KeyScorer,
    PreparedDocument,
    any_of_clauses,
    compile_node,
    default_key_score,
    prepare,
)
from config.query_parser import (
    And,
    Field,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Term,
    parse,
    parse_keyword,
)
from config.tokenize import Token, TokenKind, normalize_handle, scan, tokenize

__all__ = [
    "And",
    "BrandMatch",
    "BrandRule",
    "CompiledQuery",
    "Document",
    "ExplainNode",
    "Explanation",
    "Field",
    "Hit",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "PreparedDocument",
    "QuerySyntaxError",
    "Term",
    "Token",
    "TokenKind",
    "WatchlistMatcher",
    "compile_keyword",
    "compile_query",
    "explain",
    "is_tagged",
    "matches_without_terms",
    "parse",
    "parse_keyword",
    "prepare",
    "tokenize",
    "uses_language",
]


class CompiledQuery:
    """A parsed and compiled query (or keyword) for one diacritic-folding mode."""

    __slots__ = ("evaluator", "fold_diacritics", "node", "source")

    def __init__(self, source: str, node: Node, *, fold_diacritics: bool = True) -> None:
        self.source = source
        self.node = node
        self.fold_diacritics = fold_diacritics
        self.evaluator: Evaluator = compile_node(node, fold_diacritics=fold_diacritics)

    def prepare(self, doc: Document | PreparedDocument) -> PreparedDocument:
        """Tokenise a document in this query's folding mode (no-op if already prepared so)."""
        return prepare(doc, fold_diacritics=self.fold_diacritics)

    def matches(self, doc: Document | PreparedDocument) -> bool:
        """Whether the document matches."""
        return self.evaluator.test(prepare(doc, fold_diacritics=self.fold_diacritics))

    def matched_terms(self, doc: Document | PreparedDocument) -> list[str]:
        """The positive clauses that made a matching document match (empty if it does not)."""
        return self.evaluator.matched_terms(prepare(doc, fold_diacritics=self.fold_diacritics))

    def index_clauses(self, score: KeyScorer = default_key_score) -> list[Clause]:
        """Key clauses every matching document satisfies (one key of each); [] when unknown."""
        return self.evaluator.index_clauses(score)

    def __repr__(self) -> str:
        """Show the query text."""
        return f"CompiledQuery({self.source!r}, fold_diacritics={self.fold_diacritics})"


def compile_query(query: str, *, fold_diacritics: bool = True) -> CompiledQuery:
    """Parse and compile a boolean query; raises QuerySyntaxError."""
    return CompiledQuery(query, parse(query), fold_diacritics=fold_diacritics)


def compile_keyword(keyword: str, *, fold_diacritics: bool = True) -> CompiledQuery:
    """Compile a plain keyword: an exact, word-bounded phrase (trailing `*` allowed)."""
    return CompiledQuery(keyword, parse_keyword(keyword), fold_diacritics=fold_diacritics)


#: Field filters that say nothing about what a post is about: `lang:nl` alone is every Dutch post.
_FILTER_FIELDS: Final = frozenset({"lang", "source"})


def matches_without_terms(node: Node) -> bool:
    """Whether a query can match a post that contains none of its terms (only NOT, lang:, source:).

    Such a query matches every post that passes its filters (`NOT lang:de` is every post not in
    German): almost always a mistake, and the matcher checks it against every post. `site:`,
    `url:` and `author:` name something specific and count as terms.
    """
    if isinstance(node, Field):
        return node.name in _FILTER_FIELDS
    if isinstance(node, Not):
        return True
    if isinstance(node, And):
        return all(matches_without_terms(c) for c in node.children)
    if isinstance(node, Or):
        return any(matches_without_terms(c) for c in node.children)
    return False  # Term, Phrase, Near


def uses_language(node: Node) -> bool:
    """Whether a query looks at the post's language (has a `lang:` filter anywhere)."""
    if isinstance(node, Field):
        return node.name == "lang"
    if isinstance(node, Not):
        return uses_language(node.child)
    if isinstance(node, And | Or):
        return any(uses_language(c) for c in node.children)
    return False  # terms, phrases and NEAR (which takes no fields)


# ----------------------------------------------------------------------------------------- brands


@dataclass(frozen=True)
class BrandRule:
    """One brand's watchlist: matches when (a keyword OR the query) matches and no exclusion does."""

    name: str
    keywords: tuple[str, ...] = ()
    query: str | None = None
    exclude: tuple[str, ...] = ()
    fold_diacritics: bool = True


@dataclass(frozen=True)
class BrandMatch:
    """A brand a post is about, with the keywords/clauses that matched."""

    brand: str
    terms: tuple[str, ...]


class _CompiledBrand:
    """A BrandRule compiled once."""

    __slots__ = ("exclude", "fold", "keywords", "name", "query", "uses_language")

    def __init__(self, rule: BrandRule) -> None:
        self.name = rule.name
        self.fold = rule.fold_diacritics
        try:
            self.keywords = [compile_keyword(k, fold_diacritics=self.fold) for k in rule.keywords]
            self.query = compile_query(rule.query, fold_diacritics=self.fold) if rule.query else None
            self.exclude = [compile_query(q, fold_diacritics=self.fold) for q in rule.exclude]
        except QuerySyntaxError as exc:
            exc.add_note(f"in the watchlist of brand {rule.name!r}")
            raise
        self.uses_language = any(
            uses_language(q.node)
            for q in (*self.keywords, *([self.query] if self.query else []), *self.exclude)
        )

    def positive_clauses(self, score: KeyScorer) -> list[list[Clause]]:
        """Index clauses of each keyword and the query, always in diacritic-folded form.

        The index is looked up with folded tokens; whatever an unfolded term matches, its folded
        form matches too, so folded keys give a superset of candidates.
        """
        positives = [*self.keywords, *([self.query] if self.query else [])]
        return [(q if self.fold else CompiledQuery(q.source, q.node)).index_clauses(score) for q in positives]

    def evaluate(self, p: PreparedDocument, *, tagged: bool = False) -> BrandMatch | None:
        """Match one prepared document (in this brand's folding mode).

        ``tagged``: the post addresses one of the brand's handles, which counts as a positive
        match; exclusions still apply (spam that tags the brand is still spam).
        """
        query = self.query.evaluator if self.query is not None else None
        if (
            not tagged
            and not any(kw.evaluator.test(p) for kw in self.keywords)
            and (query is None or not query.test(p))
        ):
            return None
        if any(ex.evaluator.test(p) for ex in self.exclude):
            return None
        # a match: now (and only now) collect every keyword and clause that matched
        terms = [kw.source for kw in self.keywords if kw.evaluator.test(p)]
        if query is not None and query.test(p):
            terms.extend(t for t in (query.matched_terms(p) or [query.label]) if t not in terms)
        return BrandMatch(self.name, tuple(terms))


_EXACT_KINDS: Final = ("w", "t", "h", "e", "f", "s", "u")
_WORD_CACHE_SIZE: Final = 200_000
_PREFIX_KINDS: Final = ("wp", "tp", "hp")


LanguageOf = Callable[[Document], str | None]


class WatchlistMatcher:
    """Matches posts against many brands; an inverted index picks the candidate brands per post.

    ``language_of`` detects the language of a post that has none, only when a brand that could
    match it has a `lang:` filter (a source that gives no language would otherwise never match
    `lang:nl` and always match `NOT lang:nl`).
    """

    def __init__(self, rules: Sequence[BrandRule], *, language_of: LanguageOf | None = None) -> None:
        self._brands = [_CompiledBrand(r) for r in rules]
        self._by_name: dict[str, int] = {}
        for i, b in enumerate(self._brands):
            self._by_name.setdefault(b.name, i)
        self._language_of = language_of
        self._needs_language = frozenset(i for i, b in enumerate(self._brands) if b.uses_language)
        self._language_indexed = False  # some brand is found through a `lang:` index key
        self._exact: dict[str, dict[str, list[int]]] = {k: {} for k in _EXACT_KINDS}
        self._prefix: dict[str, dict[str, list[int]]] = {k: {} for k in _PREFIX_KINDS}
        self._always: list[int] = []
        score = self._global_scorer()
        for i, brand in enumerate(self._brands):
            positives = brand.positive_clauses(score)
            if not positives:
                continue  # no keywords and no query: never matches
            clauses = [c for c in any_of_clauses(positives, score) if c]
            if not clauses:
                self._always.append(i)
                continue
            for kind, key in set(clauses[0]):
                self._language_indexed |= kind == "f" and key.startswith("lang:")
                table = self._prefix[kind] if kind in self._prefix else self._exact[kind]
                table.setdefault(key, []).append(i)
        self._prefix_lengths = {kind: sorted({len(k) for k in table}) for kind, table in self._prefix.items()}
        self._any_unfolded = any(not b.fold for b in self._brands)
        self._word_cache: dict[str, tuple[int, ...]] = {}
        self._host_cache: dict[str, tuple[int, ...]] = {}

    def _global_scorer(self) -> KeyScorer:
        """A clause scorer that prefers keys few brands use (brand names over `storing`, `app`)."""
        uses: dict[IndexKey, int] = {}
        for brand in self._brands:
            keys = {k for per in brand.positive_clauses(default_key_score) for c in per for k in c}
            for key in keys:
                uses[key] = uses.get(key, 0) + 1

        def score(clause: Clause) -> float:
            """Sum of how widely each key is used, weighted like the default score."""
            return sum(uses.get(k, 1) * default_key_score([k]) for k in clause)

        return score

    @property
    def always_checked(self) -> list[str]:
        """Brands evaluated on every post because no index key could be derived (e.g. pure NOT)."""
        return [self._brands[i].name for i in self._always]

    def candidates(self, p: PreparedDocument) -> set[int]:
        """Indexes of the brands that can possibly match a (diacritic-folded) prepared post."""
        found: set[int] = set(self._always)
        cache = self._word_cache
        for word in p.word_set:
            hit = cache.get(word)
            if hit is None:
                hit = self._word_brands(word)
            if hit:
                found.update(hit)
        exact = self._exact
        for kind, prefix_kind, source in (("t", "tp", p.tags), ("h", "hp", p.handles), ("e", "", p.emails)):
            if source:
                self._lookup(exact[kind], source, found)
                if prefix_kind:
                    self._lookup_prefixes(prefix_kind, source, found)
        if exact["f"]:
            self._lookup(exact["f"], p.field_keys(), found)
        if (exact["s"] or exact["u"]) and (p.doc.url or p.url_tokens or any("." in w for w in p.word_set)):
            if exact["s"]:
                host_cache = self._host_cache
                for _url, host, _rest in p.links():
                    hit = host_cache.get(host)
                    if hit is None:
                        hit = self._host_brands(host)
                    if hit:
                        found.update(hit)
            if exact["u"]:
                blob = "\n".join(url for url, _host, _rest in p.links())
                for value, brands in exact["u"].items():
                    if value in blob:
                        found.update(brands)
        return found

    def _word_brands(self, word: str) -> tuple[int, ...]:
        """Brands indexed under a word or a prefix of it (memoised per matcher)."""
        brands: set[int] = set(self._exact["w"].get(word, ()))
        self._lookup_prefixes("wp", (word,), brands)
        hit = tuple(brands)
        if len(self._word_cache) >= _WORD_CACHE_SIZE:
            self._word_cache.clear()  # bounded memory on a long-running firehose
        self._word_cache[word] = hit
        return hit

    def _host_brands(self, host: str) -> tuple[int, ...]:
        """Brands with a site: filter for this host or a parent domain (memoised per matcher)."""
        brands: set[int] = set()
        labels = host.split(".")
        self._lookup(self._exact["s"], (".".join(labels[i:]) for i in range(len(labels))), brands)
        hit = tuple(brands)
        if len(self._host_cache) >= _WORD_CACHE_SIZE:
            self._host_cache.clear()
        self._host_cache[host] = hit
        return hit

    def _lookup_prefixes(self, kind: str, words: Iterable[str], found: set[int]) -> None:
        """Add the brands indexed under any prefix of any of `words`."""
        table = self._prefix[kind]
        if not table:
            return
        lengths = self._prefix_lengths[kind]
        for word in words:
            n = len(word)
            for length in lengths:
                if length > n:
                    break
                hit = table.get(word[:length])
                if hit is not None:
                    found.update(hit)

    @staticmethod
    def _lookup(table: dict[str, list[int]], keys: Iterable[str], found: set[int]) -> None:
        """Add the brands listed under any of `keys`."""
        get = table.get
        for key in keys:
            hit = get(key)
            if hit is not None:
                found.update(hit)

    @property
    def uses_language(self) -> bool:
        """Whether any brand has a `lang:` filter (in its keywords, query or exclusions)."""
        return bool(self._needs_language)

    def _detect_language(self, doc: Document) -> Document | None:
        """The document with its detected language, or None when there is nothing to add."""
        if self._language_of is None or (doc.lang or "").strip():
            return None
        lang = self._language_of(doc)
        return replace(doc, lang=lang) if lang else None

    def match(self, doc: Document, *, tagged: Collection[str] = ()) -> list[BrandMatch]:
        """All brands the post matches, in rule order.

        ``tagged`` names brands whose own handles the post addresses: they match without a
        keyword or query (their BrandMatch has no terms), unless an exclusion matches.
        """
        folded = PreparedDocument(doc, fold_diacritics=True)
        forced = {self._by_name[n] for n in tagged if n in self._by_name}
        found = self.candidates(folded) | forced
        if self._language_indexed or not found.isdisjoint(self._needs_language):
            with_language = self._detect_language(doc)
            if with_language is not None:  # tokenised again: cheap next to the language model
                doc = with_language
                folded = PreparedDocument(doc, fold_diacritics=True)
                found = self.candidates(folded) | forced
        unfolded: PreparedDocument | None = None
        out: list[BrandMatch] = []
        for i in sorted(found):
            brand = self._brands[i]
            if brand.fold:
                p = folded
            else:
                if unfolded is None:
                    unfolded = PreparedDocument(doc, fold_diacritics=False)
                p = unfolded
            m = brand.evaluate(p, tagged=i in forced)
            if m is not None:
                out.append(m)
        return out

    def match_all(self, doc: Document, *, tagged: Collection[str] = ()) -> list[BrandMatch]:
        """Like `match` but evaluates every brand (no index); for tests and debugging."""
        if self._needs_language:
            doc = self._detect_language(doc) or doc
        folded = PreparedDocument(doc, fold_diacritics=True)
        unfolded = PreparedDocument(doc, fold_diacritics=False) if self._any_unfolded else folded
        out = []
        for brand in self._brands:
            m = brand.evaluate(folded if brand.fold else unfolded, tagged=brand.name in tagged)
            if m is not None:
                out.append(m)
        return out


# ---------------------------------------------------------------------------------------- explain


@dataclass(frozen=True)
class Hit:
    """A matched stretch of the post: which field, the original text, char offsets, word positions."""

    field: str
    text: str
    start: int
    end: int
    first_word: int
    last_word: int


@dataclass(frozen=True)
class Explanation:
    """Why a query did or did not match a document: the clause tree with results and hits."""

    query: str
    document: Document
    matched: bool
    root: ExplainNode
    tokens: tuple[Token, ...]
    positions: dict[int, tuple[str, int, int, int]]  # word position -> (field, start, end, word no.)

    def hits(self, node: ExplainNode) -> list[Hit]:
        """The text stretches a clause matched."""
        out = []
        for first, stop in node.spans:
            a, b = self.positions.get(first), self.positions.get(stop - 1)
            if a is None or b is None or a[0] != b[0]:
                continue
            field = a[0]
            source = (self.document.title or "") if field == "title" else self.document.text
            out.append(Hit(field, source[a[1] : b[2]], a[1], b[2], a[3], b[3]))
        return out

    def render(self) -> str:
        """Readable multi-line report for the CLI."""
        lines = [
            f"query:  {self.query}",
            *([f"title:  {self.document.title}"] if self.document.title else []),
            f"text:   {self.document.text}",
            f"result: {'MATCH' if self.matched else 'no match'}",
        ]
        self._render(self.root, 0, lines)
        return "\n".join(lines)

    def _render(self, node: ExplainNode, depth: int, lines: list[str]) -> None:
        """Append one clause and its children."""
        mark = "✓" if node.matched else "✗"
        head = f"{'  ' * depth}{mark} {node.clause}"
        hits = self.hits(node) if not node.children or node.kind in ("NEAR", "ONEAR") else []
        if hits:
            where = ", ".join(
                f"{h.text!r} ({'title ' if h.field == 'title' else ''}word {h.first_word + 1}"
                + (f"-{h.last_word + 1}" if h.last_word != h.first_word else "")
                + ")"
                for h in hits[:5]
            )
            more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
            head = f"{head:<40} <- {where}{more}"
        elif not node.children and not node.matched:
            head = f"{head:<40}    not found"
        lines.append(head)
        for child in node.children:
            self._render(child, depth + 1, lines)


def explain(query: str, doc: Document, *, fold_diacritics: bool = True) -> Explanation:
    """Evaluate a query clause by clause against one document and say why it (does not) match."""
    compiled = compile_query(query, fold_diacritics=fold_diacritics)
    p = compiled.prepare(doc)
    root = compiled.evaluator.explain(p)
    tokens: list[Token] = []
    positions: dict[int, tuple[str, int, int, int]] = {}
    base = 0
    for field, text in (("title", doc.title), ("text", doc.text)):
        if not text:
            continue
        items = scan(text, fold_diacritics=fold_diacritics, base_position=base)
        for kind, key, pos, span, start, end in items:
            tokens.append(Token(key, text[start:end], kind, start, end, pos - base, span))
            if span == 1:
                positions[pos] = (field, start, end, pos - base)
        if items:
            base = items[-1][2] + TEXT_GAP
    return Explanation(query, doc, root.matched, root, tuple(tokens), positions)


# ---------------------------------------------------------------------------------------- tagging


def is_tagged(
    doc: Document,
    handles: Sequence[str],
    *,
    in_reply_to: str | None = None,
    mentioned: Sequence[str] = (),
) -> bool:
    """Whether a post tags the brand: replies to or @-mentions one of its own handles."""
    own = {normalize_handle(h) for h in handles if h.strip().removeprefix("@")}
    if not own:
        return False
    if in_reply_to and normalize_handle(in_reply_to) in own:
        return True
    if any(normalize_handle(m) in own for m in mentioned):
        return True
    for text in (doc.title, doc.text):
        if text and "@" in text:
            for kind, key, *_ in scan(text, fold_diacritics=False):
                if kind is TokenKind.HANDLE and key[1:] in own:
                    return True
    return False
