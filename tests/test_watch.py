"""Watchlist matching of mentions: tags, exclusions, author names and languages the source lacks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from classifiers.langid import LanguageDetector
from classifiers.lexicon import resolve_languages
from config.settings import BrandSettings
from monitor.classify import classify_text
from monitor.watch import Watchlist
from sources.base import Author, Mention


def mention(text: str, **kw: Any) -> Mention:
    """A mention from X (unless ``source`` says otherwise) by ``author`` / ``name``."""
    author = Author(handle=kw.pop("author", None), name=kw.pop("name", None))
    return Mention(
        source=kw.pop("source", "x"),
        external_id="1",
        text=text,
        created_at=datetime(2026, 3, 2, tzinfo=UTC),
        author=author,
        **kw,
    )


class RecordingDetector(LanguageDetector):
    """Answers from a table instead of the model, and records what it was asked."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers
        self.asked: list[str] = []

    def detect(self, text: str) -> str | None:
        """The tabled language of ``text``."""
        self.asked.append(text)
        return self.answers.get(text)


KLM = BrandSettings(name="KLM", handles=("@KLM",), keywords=("KLM",), exclude=("author:spambot", "crypto"))


def test_exclusions_apply_to_posts_that_tag_the_brand() -> None:
    watch = Watchlist([KLM])
    assert watch.match(mention("@KLM free followers", author="spambot")) == []
    assert watch.match(mention("@KLM crypto giveaway", author="jan")) == []
    assert watch.match(mention("crypto?", author="jan", in_reply_to="KLM")) == []
    (hit,) = watch.match(mention("@KLM waar is mijn koffer", author="jan"))
    assert hit.tagged and hit.terms == ("KLM",)
    (reply,) = watch.match(mention("waar is mijn koffer", author="jan", in_reply_to="KLM"))
    assert reply.tagged and reply.terms == ("@handle",)  # tagged only: no keyword in the text


def test_author_filters_see_display_names() -> None:
    # reviews, feeds and app stores give only a display name
    watch = Watchlist([BrandSettings(name="Bol", keywords=("bol.com",), exclude=('author:"Jan Jansen"',))])
    assert watch.match(mention("bol.com levert te laat", source="kiyoh", name="Jan Jansen")) == []
    assert watch.match(mention("bol.com levert te laat", source="x", author="jj", name="Jan Jansen")) == []
    assert [h.brand for h in watch.match(mention("bol.com is top", source="kiyoh", name="Piet"))] == ["Bol"]


def test_a_post_without_language_is_detected_only_when_a_brand_needs_it() -> None:
    text, title = "Mijn vlucht is weer vertraagd", "KLM"
    detector = RecordingDetector({classify_text(title, text): "nl"})
    watch = Watchlist(
        [
            BrandSettings(name="KLM", query="klm AND lang:nl"),
            BrandSettings(name="Bol", keywords=("bol.com",)),
        ],
        detector=detector,
    )
    post = mention(text, title=title, source="reddit")  # Reddit gives no language
    assert [h.brand for h in watch.match(post)] == ["KLM"]
    assert post.language is None  # stored as the source gave it; the classifier detects the same
    assert detector.asked == [classify_text(title, text)]  # the text the classifier reads
    assert watch.match(mention("bol.com is top", source="reddit"))  # no lang: filter: not asked
    assert watch.match(mention("KLM vlucht", language="en")) == []  # the source's language stands
    assert watch.match(mention("KLM vlucht", language="und")) == []  # 'undetermined': detected, unknown
    assert len(detector.asked) == 2


def test_detected_language_agrees_with_the_classifier() -> None:
    detector = LanguageDetector()
    watch = Watchlist([BrandSettings(name="KLM", query="klm AND lang:nl")], detector=detector)
    texts = ["KLM heeft mijn koffer kwijtgemaakt en niemand neemt de telefoon op", "KLM lost my bag again"]
    classified = resolve_languages([classify_text(None, t) for t in texts], [None, None], detector)
    assert classified == ["nl", "en"]
    assert [bool(watch.match(mention(t, source="googleplay"))) for t in texts] == [True, False]
    assert watch.match(mention(texts[0], language="nl-BE"))  # lang:nl matches every region
