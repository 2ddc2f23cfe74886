"""Watchlist query language: AST nodes, syntax errors with a caret, and the parser.

Grammar (tightest first): term / "phrase" / field:value / ( group ), then NEAR/n and ONEAR/n,
then NOT, then AND (explicit or implicit between adjacent terms), then OR. Operators are
recognised only in UPPERCASE; `and`, `or`, `not`, `near` are ordinary words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from config.tokenize import TokenKind, scan

FIELDS: Final = frozenset({"lang", "source", "author", "site", "url"})
MIN_WILDCARD_PREFIX: Final = 2
_OPEN_QUOTES: Final = '"“„”'
_CLOSE_QUOTES: Final = '"”“'
_FIELD_RE: Final = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_NEAR_RE: Final = re.compile(r"(O?NEAR)(?:/(\S*))?")
_WORD_CHAR: Final = re.compile(r"\w")


class QuerySyntaxError(ValueError):
    """A watchlist query could not be parsed; shows the query with a caret under the problem."""

    def __init__(self, query: str, offset: int, message: str, expected: str) -> None:
        self.query = query
        self.offset = offset
        line_start = query.rfind("\n", 0, offset) + 1
        self.line = query.count("\n", 0, offset) + 1
        self.column = offset - line_start + 1
        self.message = message
        self.expected = expected
        super().__init__(self._render())

    def __reduce__(self) -> tuple[type[QuerySyntaxError], tuple[str, int, str, str]]:
        """Pickle with the constructor arguments (the default would pass the rendered text)."""
        return (type(self), (self.query, self.offset, self.message, self.expected))

    def _render(self) -> str:
        """Render message, offending line and a caret under the exact column."""
        line_start = self.offset - self.column + 1
        line_end = self.query.find("\n", line_start)
        line = self.query[line_start : line_end if line_end >= 0 else len(self.query)]
        where = f"column {self.column}" if self.line == 1 else f"line {self.line}, column {self.column}"
        return (
            f"{self.message} at {where}: expected {self.expected}\n"
            f"  {line}\n"
            f"  {_caret_padding(line[: self.column - 1])}^"
        )


def _caret_padding(prefix: str) -> str:
    """Whitespace as wide on screen as `prefix` (tabs kept, wide chars doubled, marks dropped)."""
    out = []
    for ch in prefix:
        if ch == "\t":
            out.append("\t")
        elif unicodedata.combining(ch) or ch in "\u200d\ufe0f":
            continue
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            out.append("  ")
        else:
            out.append(" ")
    return "".join(out)


# --------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Term:
    """A word, hashtag, handle, email or emoji; `parts` is set for hyphenated words (`ns-storing`)."""

    text: str
    kind: TokenKind = TokenKind.WORD
    wildcard: bool = False
    parts: tuple[str, ...] = ()

    def __str__(self) -> str:
        """Render back to query syntax."""
        body = "-".join(self.parts) if self.parts else self.text
        return body + ("*" if self.wildcard else "")


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive terms: `"ns storing"`."""

    terms: tuple[Term, ...]

    def __str__(self) -> str:
        """Render back to query syntax."""
        return '"' + " ".join(str(t) for t in self.terms) + '"'


@dataclass(frozen=True, slots=True)
class Field:
    """A field filter such as `lang:nl` or `site:ns.nl` (value already normalised)."""

    name: str
    value: str

    def __str__(self) -> str:
        """Render back to query syntax."""
        value = f'"{self.value}"' if (" " in self.value or not self.value) else self.value
        return f"{self.name}:{value}"


@dataclass(frozen=True, slots=True)
class And:
    """All children must match."""

    children: tuple[Node, ...]

    def __str__(self) -> str:
        """Render back to query syntax."""
        return "(" + " AND ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child must match."""

    children: tuple[Node, ...]

    def __str__(self) -> str:
        """Render back to query syntax."""
        return "(" + " OR ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True, slots=True)
class Not:
    """The child must not match."""

    child: Node

    def __str__(self) -> str:
        """Render back to query syntax."""
        return f"NOT {self.child}"


@dataclass(frozen=True, slots=True)
class Near:
    """Both sides within `distance` words of each other (in order when `ordered`)."""

    left: Node
    right: Node
    distance: int
    ordered: bool = False

    def __str__(self) -> str:
        """Render back to query syntax."""
        op = "ONEAR" if self.ordered else "NEAR"
        return f"({self.left} {op}/{self.distance} {self.right})"


Node = Term | Phrase | Field | And | Or | Not | Near
POSITIONAL: Final = (Term, Phrase, Near)


# ------------------------------------------------------------------------------------------- lexer


@dataclass(frozen=True, slots=True)
class _Lex:
    """One lexeme of a query: type, text and offset in the query string."""

    type: str  # "(" ")" AND OR NOT NEAR PHRASE TERM EOF
    text: str
    offset: int
    distance: int = 0
    ordered: bool = False
    field: str | None = None  # for TERM/PHRASE values that belong to a `field:` prefix


def _lex(query: str) -> list[_Lex]:
    """Split a query into lexemes; operators are recognised case-sensitively."""
    out: list[_Lex] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Lex(ch, ch, i))
            i += 1
        elif ch in _OPEN_QUOTES:
            start = i
            text, i = _lex_phrase(query, i)
            out.append(_Lex("PHRASE", text, start))
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in "()" and query[i] not in _OPEN_QUOTES:
                i += 1
            word = query[start:i]
            field = _FIELD_RE.fullmatch(word)
            if (
                field
                and field.group(1).lower() in FIELDS
                and not field.group(2)
                and i < n
                and query[i] in _OPEN_QUOTES
            ):
                # `author:"Jan Jansen"`: the quoted phrase is the field value.
                text, i = _lex_phrase(query, i)
                out.append(_Lex("TERM", text, start, field=field.group(1).lower()))
                continue
            out.append(_operator_or_term(query, word, start))
    out.append(_Lex("EOF", "", n))
    return out


def _lex_phrase(query: str, start: int) -> tuple[str, int]:
    """Read a quoted phrase starting at `start`; return its content and the offset after it."""
    end = start + 1
    while end < len(query) and query[end] not in _CLOSE_QUOTES:
        end += 1
    if end >= len(query):
        raise QuerySyntaxError(query, start, "unclosed quote", "a closing '\"' to end this phrase")
    return query[start + 1 : end], end + 1


def _operator_or_term(query: str, word: str, start: int) -> _Lex:
    """Classify a bare word as AND/OR/NOT/NEAR/ONEAR or a term."""
    if word in ("AND", "OR", "NOT"):
        return _Lex(word, word, start)
    near = _NEAR_RE.fullmatch(word)
    if near is None:
        return _Lex("TERM", word, start)
    op, dist = near.group(1), near.group(2)
    if dist is None:
        raise QuerySyntaxError(
            query, start + len(op), f"{op} without a distance", f"'/' and a number of words, e.g. {op}/3"
        )
    if not dist.isdigit() or not dist.isascii():
        raise QuerySyntaxError(
            query, start + len(op) + 1, f"bad {op} distance", f"a whole number of words, e.g. {op}/3"
        )
    return _Lex("NEAR", word, start, distance=int(dist), ordered=op == "ONEAR")


# ------------------------------------------------------------------------------------------ parser


class _Parser:
    """Recursive-descent parser over the lexemes of one query."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = _lex(query)
        self.i = 0

    def peek(self) -> _Lex:
        """The current lexeme."""
        return self.lexemes[self.i]

    def take(self) -> _Lex:
        """Consume and return the current lexeme."""
        lex = self.lexemes[self.i]
        self.i += 1
        return lex

    def error(self, lex: _Lex, message: str, expected: str) -> QuerySyntaxError:
        """Build a syntax error pointing at `lex`."""
        return QuerySyntaxError(self.query, lex.offset, message, expected)

    def parse(self) -> Node:
        """Parse the whole query."""
        node = self.parse_or(None)
        lex = self.peek()
        if lex.type == ")":
            raise self.error(
                lex,
                "unbalanced ')'",
                "an operator, a term or the end of the query (this ')' has no matching '(')",
            )
        if lex.type != "EOF":  # pragma: no cover - every other lexeme starts a unary
            raise self.error(lex, "unexpected input", "the end of the query")
        return node

    def parse_or(self, group: _Lex | None) -> Node:
        """or := and ("OR" and)*"""
        children = [self.parse_and(group, None)]
        while self.peek().type == "OR":
            op = self.take()
            children.append(self.parse_and(group, op))
        return children[0] if len(children) == 1 else Or(tuple(_flatten(Or, children)))

    def parse_and(self, group: _Lex | None, after: _Lex | None) -> Node:
        """and := unary (["AND"] unary)*  -- adjacency is an implicit AND."""
        children = [self.parse_unary(group, after)]
        while True:
            lex = self.peek()
            if lex.type == "AND":
                self.take()
                children.append(self.parse_unary(group, lex))
            elif lex.type in ("NOT", "TERM", "PHRASE", "("):
                children.append(self.parse_unary(group, None))
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(_flatten(And, children)))

    def parse_unary(self, group: _Lex | None, after: _Lex | None) -> Node:
        """unary := "NOT" unary | near"""
        if self.peek().type == "NOT":
            op = self.take()
            return Not(self.parse_unary(group, op))
        return self.parse_near(group, after)

    def parse_near(self, group: _Lex | None, after: _Lex | None) -> Node:
        """near := primary (("NEAR/n" | "ONEAR/n") primary)*"""
        start = self.peek()
        node = self.parse_primary(group, after)
        while self.peek().type == "NEAR":
            op = self.take()
            self._check_positional(node, start, op)
            right_start = self.peek()
            right = self.parse_primary(group, op)
            self._check_positional(right, right_start, op)
            node = Near(node, right, op.distance, op.ordered)
        return node

    def _check_positional(self, node: Node, lex: _Lex, op: _Lex) -> None:
        """NEAR operands must have word positions: terms, phrases, NEARs or OR-groups of those."""
        if not _is_positional(node):
            raise self.error(
                lex,
                f"{op.text} cannot take this operand",
                "a word, phrase, NEAR clause or an OR-group of those "
                "(no AND, NOT or field filters inside NEAR)",
            )

    def parse_primary(self, group: _Lex | None, after: _Lex | None) -> Node:
        """primary := "(" or ")" | TERM | PHRASE"""
        lex = self.peek()
        if lex.type == "(":
            self.take()
            if self.peek().type == ")":
                raise self.error(self.peek(), "empty parentheses", "a term inside '( )'")
            node = self.parse_or(lex)
            close = self.peek()
            if close.type != ")":
                raise self.error(
                    close, "unbalanced '('", f"')' to close the '(' at column {self._column(lex)}"
                )
            self.take()
            return node
        if lex.type == "TERM":
            self.take()
            return self._term(lex)
        if lex.type == "PHRASE":
            self.take()
            return self._phrase(lex)
        raise self._missing_operand(lex, group, after)

    def _missing_operand(self, lex: _Lex, group: _Lex | None, after: _Lex | None) -> QuerySyntaxError:
        """Explain why no operand was found where one was needed."""
        what = "a word, \"phrase\", field:value or '('"
        if lex.type == "NOT" and after is not None and after.type == "NEAR":
            return self.error(
                lex,
                f"NOT inside {after.text}",
                f"a word, phrase or OR-group after {after.text}; to exclude a word, put NOT outside: "
                f"(a {after.text} b) AND NOT c",
            )
        if lex.type == "EOF" and group is not None:
            # `KLM (`, `KLM AND (`: the query ends inside a group
            return self.error(
                group,
                "unclosed '('",
                "a term inside it and a ')' to close it (the query ends before that)",
            )
        if after is not None:
            return self.error(lex, f"dangling {after.text}", f"{what} after {after.text}")
        if lex.type in ("AND", "OR") or lex.type == "NEAR":
            return self.error(lex, f"{lex.text} without a left-hand term", f"{what} before {lex.text}")
        if lex.type == ")":
            if group is None:
                return self.error(lex, "unbalanced ')'", f"{what} (this ')' has no matching '(')")
            return self.error(lex, "missing term", what)
        if lex.type == "EOF":
            return self.error(lex, "empty query", what)
        return self.error(lex, "unexpected input", what)  # pragma: no cover

    def _column(self, lex: _Lex) -> int:
        """1-based column of a lexeme on its line."""
        return lex.offset - (self.query.rfind("\n", 0, lex.offset) + 1) + 1

    # --- terms -----------------------------------------------------------------------------------

    def _term(self, lex: _Lex) -> Node:
        """Turn a bare word (or field:value) into a node."""
        if lex.field is not None:
            return self._field(lex, lex.field, lex.text, lex.offset + len(lex.field) + 2)
        word = lex.text
        m = _FIELD_RE.fullmatch(word)
        if m:
            name, value = m.group(1), m.group(2)
            if name.lower() in FIELDS:
                return self._field(lex, name.lower(), value, lex.offset + len(name) + 1)
            if value.startswith("//"):
                raise self.error(
                    lex, "a link cannot be a search term", "site:HOST or url:TEXT to match links"
                )
            if value:
                raise self.error(
                    lex,
                    f"unknown field '{name}:'",
                    "one of "
                    + ", ".join(f"{f}:" for f in sorted(FIELDS))
                    + " (or quote it to search the text)",
                )
        self._check_minus(lex)
        terms = _parse_terms(self.query, word, lex.offset)
        if not terms:
            raise self.error(lex, "nothing searchable in this term", "a word, #hashtag, @handle or emoji")
        return terms[0] if len(terms) == 1 else Phrase(tuple(terms))

    def _check_minus(self, lex: _Lex) -> None:
        """`-term`, `-#tag`, `-@handle`, `-😡`, `-"phrase"`, `-(group)` read as NOT elsewhere: refuse.

        Without this the `-` is dropped as punctuation and the term turns *positive*.
        """
        word = lex.text
        if not word.startswith("-") or word.startswith("--"):
            return
        rest = word[1:]
        if rest:
            if not scan(rest, fold_diacritics=False):
                return  # `->` and the like: nothing searchable, reported as such below
            target = rest
        else:
            after = self.peek()  # `-"phrase"` and `-(group)` lex as '-' and then the next lexeme
            if after.offset != lex.offset + 1 or after.type not in ("PHRASE", "("):
                return
            target = f'"{after.text}"' if after.type == "PHRASE" else "(…)"
        raise self.error(lex, "'-' is not an operator", f"NOT {target} to exclude a term")

    def _phrase(self, lex: _Lex) -> Node:
        """Turn a quoted phrase into a node (a lone term stays a term)."""
        terms = _parse_terms(self.query, lex.text, lex.offset + 1)
        if not terms:
            raise self.error(lex, "empty phrase", "at least one word between the quotes")
        return terms[0] if len(terms) == 1 else Phrase(tuple(terms))

    def _field(self, lex: _Lex, name: str, value: str, value_offset: int) -> Field:
        """Validate and normalise a field filter."""
        value = value.strip()
        if not value:
            raise QuerySyntaxError(
                self.query,
                value_offset,
                f"empty {name}: filter",
                f"a value after {name}:, e.g. {_FIELD_EXAMPLES[name]}",
            )
        normalized = normalize_field_value(name, value)
        problem = field_value_problem(name, normalized)
        if problem is not None:
            raise QuerySyntaxError(self.query, value_offset, *problem)
        return Field(name, normalized)


_FIELD_EXAMPLES: Final = MappingProxyType(
    {
        "lang": "lang:nl",
        "source": "source:reddit",
        "author": "author:jansen",
        "site": "site:tweakers.net",
        "url": "url:/klantenservice",
    }
)


#: Other names of source types (`source:twitter` is `source:x`).
SOURCE_ALIASES: Final = MappingProxyType({"twitter": "x"})
_LANG_CODE: Final = re.compile(r"[a-z]{2,3}")
_LANG_WITH_REGION: Final = re.compile(r"([a-z]{2,3})-[a-z0-9]{2,8}")
#: Language names and ISO 639-2 codes operators write for the ISO 639-1 codes posts carry.
_LANG_NAMES: Final = MappingProxyType(
    {
        "dutch": "nl", "nederlands": "nl", "flemish": "nl", "vlaams": "nl", "nld": "nl", "dut": "nl",
        "english": "en", "engels": "en", "eng": "en",
        "german": "de", "duits": "de", "deutsch": "de", "deu": "de", "ger": "de",
        "french": "fr", "frans": "fr", "fra": "fr", "fre": "fr",
        "spanish": "es", "spa": "es", "frisian": "fy", "fries": "fy", "fry": "fy",
    }
)  # fmt: skip
_WILDCARD_HINTS: Final = MappingProxyType(
    {
        "lang": "a language code without '*', e.g. lang:nl (it also matches nl-BE and nl-NL)",
        "source": "a source type without '*', e.g. source:reddit",
        "author": "the full handle or name without '*' (author: compares the whole value)",
        "site": "the domain without '*': site:klm.com already matches www.klm.com and every other subdomain",
        "url": "the text without '*': url: already matches it anywhere in the link",
    }
)


def known_source_types() -> frozenset[str]:
    """The source types a post can come from (the `type:` names of sources/registry.py)."""
    from sources.registry import SOURCE_TYPES  # here, not at the top: the registry imports every source

    return frozenset(SOURCE_TYPES)


def field_value_problem(name: str, value: str) -> tuple[str, str] | None:
    """(message, expected) when a normalised field value could never match a post, else None."""
    if "*" in value:
        return f"wildcard in {name}:", _WILDCARD_HINTS[name]
    if name == "lang":
        return _lang_problem(value)
    if name == "source":
        known = known_source_types()
        if value not in known:
            types = ", ".join(sorted(known | SOURCE_ALIASES.keys()))
            return f"unknown source '{value}'", f"one of {types} (the `type:` of a source)"
    if name == "site" and not split_host(value)[0]:
        return "no host in site:", "a domain, e.g. site:ns.nl or site:ns.nl/storingen"
    return None


def _lang_problem(value: str) -> tuple[str, str] | None:
    """Why a `lang:` value can never match (a name instead of a code, a region), or None."""
    if _LANG_CODE.fullmatch(value) and value not in _LANG_NAMES:
        return None
    regional = _LANG_WITH_REGION.fullmatch(value)
    if regional:
        code = regional.group(1)
        return (
            f"region in lang:{value}",
            f"lang:{code}: posts carry the language without its region (sources and language "
            f"detection give '{code}'), and lang:{code} matches every region",
        )
    if value in _LANG_NAMES:
        code = _LANG_NAMES[value]
        if len(value) == 3:  # an ISO 639-2 code: posts carry the two-letter one
            return f"lang:{value} never matches", f"lang:{code} (posts carry two-letter ISO 639-1 codes)"
        return f"'{value}' is not a language code", f"lang:{code}"
    return (
        f"'{value}' is not a language code",
        "a two- or three-letter ISO 639 code, e.g. lang:nl, lang:en, lang:de",
    )


def split_host(value: str) -> tuple[str, str]:
    """A `site:` value's host and path (`ns.nl/storingen` -> `ns.nl`, `/storingen`)."""
    host, sep, path = value.partition("/")
    return host, sep + path


def normalize_field_value(name: str, value: str) -> str:
    """Normalise a field filter value the same way document fields are normalised."""
    value = value.casefold()
    if name == "lang":
        return value.replace("_", "-")
    if name == "source":
        return SOURCE_ALIASES.get(value, value)
    if name == "author":
        return value.removeprefix("@")
    if name == "site":
        for scheme in ("https://", "http://"):
            value = value.removeprefix(scheme)
        value = value.removeprefix("www.").rstrip("/")
    return value


_LINK_HINT: Final = "site:HOST or url:TEXT to match links"


def _keyword_link_hint(link: str) -> str:
    """What to write instead of a link as a keyword: its domain as a word, or site: in the query."""
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", link.casefold()).split("/", 1)[0].removeprefix("www.")
    return (
        f"the domain as a word ({host} matches the word and links to any page on it), or "
        f"site:{host} / url:TEXT in the brand's query (keywords take no fields)"
    )


def _parse_terms(query: str, content: str, offset: int, *, keyword: bool = False) -> list[Term]:
    """Tokenise the text of a term or phrase into query terms (wildcards validated)."""
    terms: list[Term] = []
    items = scan(content, fold_diacritics=False)
    consumed_stars: set[int] = set()
    i = 0
    while i < len(items):
        kind, key, _pos, span, start, end = items[i]
        parts: tuple[str, ...] = ()
        if span > 1:  # a hyphenated word: its joined form comes first, then its parts
            parts = tuple(item[1] for item in items[i + 1 : i + 1 + span])
            i += span
        if kind == TokenKind.URL:
            raise QuerySyntaxError(
                query,
                offset + start,
                "a link cannot be a search term",
                _keyword_link_hint(key) if keyword else _LINK_HINT,
            )
        wildcard = end < len(content) and content[end] == "*"
        if wildcard:
            consumed_stars.add(end)
            _check_wildcard(query, content, offset, kind, parts[-1] if parts else key, start, end)
        terms.append(Term(key, kind, wildcard, parts))
        i += 1
    for j, ch in enumerate(content):
        if ch == "*" and j not in consumed_stars:
            raise QuerySyntaxError(
                query,
                offset + j,
                "misplaced wildcard",
                f"'*' directly after at least {MIN_WILDCARD_PREFIX} letters, e.g. klant*",
            )
    return terms


def _check_wildcard(
    query: str, content: str, offset: int, kind: TokenKind, key: str, start: int, end: int
) -> None:
    """Wildcards: trailing only, on words/hashtags/handles, after enough characters."""
    star = end
    if star + 1 < len(content) and _WORD_CHAR.match(content[star + 1]):
        raise QuerySyntaxError(
            query,
            offset + star,
            "wildcard inside a word",
            "'*' only at the end of a word (trailing wildcard), e.g. klant*",
        )
    if kind not in (TokenKind.WORD, TokenKind.HASHTAG, TokenKind.HANDLE):
        raise QuerySyntaxError(
            query, offset + star, f"wildcard after {kind.value}", "'*' only after a word, #hashtag or @handle"
        )
    body = key.lstrip("#@")
    if len(body) < MIN_WILDCARD_PREFIX:
        raise QuerySyntaxError(
            query,
            offset + star,
            "wildcard prefix too short",
            f"at least {MIN_WILDCARD_PREFIX} letters before '*', e.g. klant*",
        )


def _flatten(cls: type[And] | type[Or], children: list[Node]) -> list[Node]:
    """Merge nested And/Or of the same type into one n-ary node."""
    out: list[Node] = []
    for child in children:
        if isinstance(child, cls):
            out.extend(child.children)
        else:
            out.append(child)
    return out


def _is_positional(node: Node) -> bool:
    """Whether a node has word positions (usable inside NEAR)."""
    if isinstance(node, POSITIONAL):
        return True
    if isinstance(node, Or):
        return all(_is_positional(c) for c in node.children)
    return False


def parse_keyword(keyword: str) -> Node:
    """Parse a plain keyword or phrase (no operators); surrounding quotes are optional."""
    content = keyword.strip()
    offset = keyword.find(content[:1]) if content else 0
    if len(content) >= 2 and content[0] in _OPEN_QUOTES and content[-1] in _CLOSE_QUOTES:
        content, offset = content[1:-1], offset + 1
    for j, ch in enumerate(content):
        if ch in _OPEN_QUOTES:
            raise QuerySyntaxError(
                keyword,
                offset + j,
                "quote inside a keyword",
                "a keyword without quotes (a keyword is always matched as a phrase)",
            )
    if content.startswith("-") and not content.startswith("--") and scan(content[1:], fold_diacritics=False):
        raise QuerySyntaxError(
            keyword,
            offset,
            "'-' is not an operator",
            f"the keyword without '-' ({content[1:]}); keywords have no operators — to drop posts "
            f"with it, put {content[1:]} under exclude:",
        )
    field = _FIELD_RE.fullmatch(content)
    if field and field.group(1).lower() in FIELDS and field.group(2)[:1].strip():  # not "Source: X"
        raise QuerySyntaxError(
            keyword,
            offset,
            "a keyword cannot be a field filter",
            f"{content} in the brand's query (keywords take no fields; this would search the "
            "words as a phrase)",
        )
    terms = _parse_terms(keyword, content, offset, keyword=True)
    if not terms:
        raise QuerySyntaxError(keyword, offset, "empty keyword", "a word, #hashtag, @handle or emoji")
    return terms[0] if len(terms) == 1 else Phrase(tuple(terms))


def parse(query: str) -> Node:
    """Parse a watchlist query into an AST; raises QuerySyntaxError with a caret on bad input."""
    return _Parser(query).parse()
