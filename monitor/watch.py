"""Watchlist matching for the pipeline: which brands a mention is about, and whether it tags them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from config.query import BrandRule, Document, WatchlistMatcher, is_tagged
from config.settings import BrandSettings
from sources.base import Mention

__all__ = ["BrandHit", "Watchlist", "document_for"]

_AT_WORD = re.compile(r"@([\w.\-]+)")


@dataclass(frozen=True, slots=True)
class BrandHit:
    """A mention's match with one brand."""

    brand: str
    tagged: bool
    from_brand: bool
    competitor: bool
    terms: tuple[str, ...]


def document_for(mention: Mention) -> Document:
    """The matcher's view of a mention."""
    return Document(
        text=mention.text,
        title=mention.title,
        lang=mention.language,
        source=mention.source,
        author=mention.author.handle,
        url=mention.url,
    )


class Watchlist:
    """All brands' rules compiled once; matches mentions and decides tagging."""

    def __init__(self, brands: Sequence[BrandSettings]) -> None:
        self.brands = {b.name: b for b in brands}
        rules = [
            BrandRule(
                name=b.name,
                keywords=b.keywords,
                query=b.query,
                exclude=b.exclude,
                fold_diacritics=b.fold_diacritics,
            )
            for b in brands
        ]
        self._matcher = WatchlistMatcher(rules)
        self._handles: dict[str, list[str]] = {}
        for b in brands:
            for handle in b.handles:
                self._handles.setdefault(handle, []).append(b.name)

    def _tag_candidates(self, mention: Mention) -> set[str]:
        """Brands whose handles appear anywhere in the mention (checked precisely by is_tagged)."""
        if not self._handles:
            return set()
        addressed = {
            h.lstrip("@").lower() for h in (*mention.mentioned_handles, mention.in_reply_to or "") if h
        }
        addressed.update(h.casefold().rstrip(".") for h in _AT_WORD.findall(mention.text))
        found: set[str] = set()
        for handle in addressed:
            found.update(self._handles.get(handle, ()))
        return found

    def match(self, mention: Mention) -> list[BrandHit]:
        """Brands this mention is about (including posts that only tag a brand's handle)."""
        doc = document_for(mention)
        hits: dict[str, tuple[str, ...]] = {m.brand: m.terms for m in self._matcher.match(doc)}
        candidates = self._tag_candidates(mention)
        out: list[BrandHit] = []
        for name in sorted(hits.keys() | candidates):
            brand = self.brands[name]
            tagged = name in candidates and is_tagged(
                doc, brand.handles, in_reply_to=mention.in_reply_to, mentioned=mention.mentioned_handles
            )
            if name not in hits and not tagged:
                continue
            author = (mention.author.handle or "").lstrip("@").lower()
            out.append(
                BrandHit(
                    brand=name,
                    tagged=tagged,
                    from_brand=bool(author) and author in brand.handles,
                    competitor=brand.competitor,
                    terms=hits.get(name, ("@handle",)),
                )
            )
        return out
