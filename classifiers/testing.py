"""A deterministic keyword classifier for tests: fast, no model, predictable. Never a default."""

from __future__ import annotations

from collections.abc import Sequence

from classifiers.base import Classifier, ClassifierError, Scores

__all__ = ["FailingClassifier", "StubClassifier"]

_POSITIVE = (
    "great",
    "love",
    "thanks",
    "brilliant",
    "top",
    "geweldig",
    "bedankt",
    "compliment",
    "super",
    "fijn",
)
_NEGATIVE = (
    "broken",
    "terrible",
    "refund",
    "delay",
    "storing",
    "vertraging",
    "slecht",
    "belachelijk",
    "kapot",
    "waiting",
)


class StubClassifier:
    """Scores by keyword lists; complaint follows negativity. Counts calls for assertions."""

    model_id = "stub@1"

    def __init__(self) -> None:
        self.calls = 0
        self.texts_seen = 0

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Positive words → positive 0.9; negative words → negative 0.9 and complaint 0.85; else neutral."""
        self.calls += 1
        self.texts_seen += len(texts)
        out = []
        for text in texts:
            low = text.casefold()
            if any(w in low for w in _NEGATIVE):
                out.append(Scores("negative", 0.9, 0.07, 0.03, 0.85, None, self.model_id))
            elif any(w in low for w in _POSITIVE):
                out.append(Scores("positive", 0.03, 0.07, 0.9, 0.05, None, self.model_id))
            else:
                out.append(Scores("neutral", 0.1, 0.8, 0.1, 0.1, None, self.model_id))
        return out


class FailingClassifier:
    """Raises on every call (or the first ``failures`` calls), to test that failures are never 'neutral'."""

    model_id = "failing@1"

    def __init__(self, failures: int | None = None, then: Classifier | None = None) -> None:
        self.failures = failures
        self.then = then or StubClassifier()
        self.calls = 0

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Fail, then (optionally) behave like ``then``."""
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise ClassifierError("model exploded (test)")
        return self.then.classify(texts, languages)
