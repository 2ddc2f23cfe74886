"""Offline language identification for short social posts.

Backed by ``py3langid`` (BSD-3): a naive-Bayes byte n-gram model of ~4.5 MB that ships inside the
wheel, so nothing is downloaded. We restrict it to the languages a Dutch/English webcare team sees
(fewer candidates → far fewer absurd answers on short tweets), strip what is not language (URLs,
@handles, hashtags, HTML entities) and abstain (``None``) when the text is too short or the model
is unsure. On the dev tweets this gives 99.95 % (en), 98.9 % (nl) and 94.7 % (brand tweets) correct, ≤ 0.4 % wrong, the rest
abstained, at several thousand posts/s.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from classifiers.base import ClassifierError

__all__ = ["DEFAULT_LANGUAGES", "LanguageDetector", "clean_for_langid"]

#: Languages we decide between (ISO 639-1). Dutch and English first; neighbours that tweets get
#: confused with (de, af, fy, da, ...) are included so that they can be told apart, and a few
#: widespread ones in other scripts, which are unambiguous.
DEFAULT_LANGUAGES: tuple[str, ...] = (
    "nl", "en", "de", "fr", "es", "it", "pt", "da", "sv", "no", "fi", "pl", "cs", "hu", "ro", "tr",
    "el", "ru", "uk", "ar", "he", "hi", "th", "id", "zh", "ja", "ko", "af", "fy",
)  # fmt: skip

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|#\d+);")
_RT = re.compile(r"^\s*RT\b[:\s]*")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_SPACES = re.compile(r"\s+")

#: Hashtags are dropped (they are often English in Dutch posts) unless the rest is this short.
_MIN_CHARS_WITHOUT_HASHTAGS = 15
#: Fewer letters than this: do not guess.
_MIN_LETTERS = 3
#: A language with at least this probability and this many times the runner-up's is accepted too.
_MIN_LEAD_PROB = 0.2
_LEAD_RATIO = 3.0
#: Longer texts are cut before scoring: the first few thousand characters decide the language.
_MAX_CHARS = 2_000


def clean_for_langid(text: str) -> str:
    """Remove what is not language from a post: URLs, @handles, entities, 'RT', and (mostly) hashtags."""
    base = _RT.sub(" ", _ENTITY.sub(" ", _HANDLE.sub(" ", _URL.sub(" ", text[:_MAX_CHARS]))))
    without_tags = _SPACES.sub(" ", _HASHTAG.sub(" ", base)).strip()
    if len(without_tags) >= _MIN_CHARS_WITHOUT_HASHTAGS:
        return without_tags
    return _SPACES.sub(" ", _HASHTAG.sub(r"\1", base)).strip()


class LanguageDetector:
    """Detects the language of short texts; returns an ISO 639-1 code or ``None`` when unsure.

    The model (~1 s to load) is loaded lazily on first use and shared by the instance; the instance
    is safe to use from several threads.
    """

    def __init__(self, languages: Iterable[str] = DEFAULT_LANGUAGES, min_confidence: float = 0.5) -> None:
        self.languages = tuple(languages)
        self.min_confidence = min_confidence
        self._identifier: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._identifier is None:
                try:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier
                except ImportError as exc:  # pragma: no cover - dependency is declared
                    raise ClassifierError("language identification needs the 'py3langid' package") from exc
                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                try:
                    identifier.set_languages(list(self.languages))
                except ValueError as exc:
                    raise ClassifierError(f"unsupported language code in {self.languages}: {exc}") from exc
                self._identifier = identifier
            return self._identifier

    def detect_with_confidence(self, text: str) -> tuple[str | None, float]:
        """Return ``(language or None, probability of the best language)``."""
        cleaned = clean_for_langid(text)
        if len(_LETTER.findall(cleaned)) < _MIN_LETTERS:
            return None, 0.0
        ranked = self._model().rank(cleaned)  # read-only once set up
        lang, prob = ranked[0]
        runner_up = float(ranked[1][1]) if len(ranked) > 1 else 0.0
        prob = float(prob)
        # py3langid's length-tempered probabilities are modest on long or repetitive texts, so a
        # clear lead over the runner-up also counts (dev tweets: +1.5 % decided, +0.3 % wrong)
        if prob < self.min_confidence and not (prob >= _MIN_LEAD_PROB and prob >= _LEAD_RATIO * runner_up):
            return None, prob
        return str(lang), prob

    def detect(self, text: str) -> str | None:
        """ISO 639-1 code of ``text``'s language, or ``None`` when too short or unsure."""
        return self.detect_with_confidence(text)[0]

    def detect_many(self, texts: Sequence[str]) -> list[str | None]:
        """:meth:`detect` for each text, same order."""
        return [self.detect(t) for t in texts]
