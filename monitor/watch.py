"""Watchlist matching for the pipeline: which brands a mention is about, and whether it tags them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from classifiers.langid import LanguageDetector, language_hint, shared_detector
from config.query import BrandRule, Document, WatchlistMatcher, is_tagged
from config.settings import BrandSettings, SourceSettings
from monitor.classify import classify_text
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
    """The matcher's view of a mention.

    The language is the classifiers' reading of the source's code (ISO 639-1, region dropped,
    "undetermined" codes as none), so matching and the stored scores agree.
    """
    return Document(
        text=mention.text,
        title=mention.title,
        lang=language_hint(mention.language),
        source=mention.source,
        author=mention.author.handle,
        author_name=mention.author.name,
        url=mention.url,
    )


class Watchlist:
    """All brands' rules compiled once; matches mentions and decides tagging.

    A post without a language is given one by ``detector`` (the classifiers' language
    identifier, on the text the classifier reads) when a brand that could match it has a
    `lang:` filter; the mention itself is left as the source gave it, the classifier detects the
    same language later.
    """

    def __init__(
        self,
        brands: Sequence[BrandSettings],
        *,
        detector: LanguageDetector | None = None,
        sources: Sequence[SourceSettings] = (),
    ) -> None:
        self.brands = {b.name: b for b in brands}
        #: Sources that belong to one brand (``brand:``): their mentions are that brand's.
        self._owned_by = {s.name: s.brand for s in sources if s.brand is not None and s.brand in self.brands}
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
        self._detector = detector
        self._matcher = WatchlistMatcher(rules, language_of=self.language_of)
        self._handles: dict[str, list[str]] = {}
        for b in brands:
            for handle in b.handles:
                self._handles.setdefault(handle, []).append(b.name)

    def language_of(self, doc: Document) -> str | None:
        """The language the classifier will detect for this post (model loaded on first use)."""
        if self._detector is None:
            self._detector = shared_detector()  # one model per process, not one per reload
        return self._detector.detect(classify_text(doc.title, doc.text))

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
        """Brands this mention is about: keywords or query, a tag of the brand's own handle, or a
        source that belongs to the brand (its app's reviews rarely name it).

        Exclusions drop all three: a post that tags the brand but matches an exclusion (a spam
        account, a crypto giveaway) is not about the brand.
        """
        doc = document_for(mention)
        tagged = {
            name
            for name in self._tag_candidates(mention)
            if is_tagged(
                doc,
                self.brands[name].handles,
                in_reply_to=mention.in_reply_to,
                mentioned=mention.mentioned_handles,
            )
        }
        author = (mention.author.handle or "").lstrip("@").lower()
        out: list[BrandHit] = []
        owner = self._owned_by.get(mention.source_name or "")
        forced = tagged | {owner} if owner else tagged
        for m in sorted(self._matcher.match(doc, tagged=forced), key=lambda m: m.brand):
            brand = self.brands[m.brand]
            out.append(
                BrandHit(
                    brand=m.brand,
                    tagged=m.brand in tagged,
                    from_brand=bool(author) and author in brand.handles,
                    competitor=brand.competitor,
                    terms=m.terms or (("@handle",) if m.brand in tagged else ("source",)),
                )
            )
        return out
