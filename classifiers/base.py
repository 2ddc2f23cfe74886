"""The classifier interface and the scores it produces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "LABELS",
    "Classifier",
    "ClassifierError",
    "Scores",
    "SentimentLabel",
    "calibrated_praise_threshold",
]

SentimentLabel = Literal["negative", "neutral", "positive"]
#: Canonical label order used for probability vectors everywhere in repmon.
LABELS: tuple[SentimentLabel, SentimentLabel, SentimentLabel] = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class Scores:
    """What a classifier says about one text."""

    sentiment: SentimentLabel
    p_negative: float
    p_neutral: float
    p_positive: float
    complaint: float
    language: str | None
    model: str
    severity: int | None = None

    @property
    def confidence(self) -> float:
        """Probability of the chosen sentiment label."""
        return {"negative": self.p_negative, "neutral": self.p_neutral, "positive": self.p_positive}[
            self.sentiment
        ]


class ClassifierError(Exception):
    """Scoring failed; the mentions involved stay unscored and are retried later (never 'neutral')."""


@runtime_checkable
class Classifier(Protocol):
    """Scores texts in batches. Synchronous and CPU/GPU bound: the daemon runs it off the event loop."""

    #: ``name@version``, stored with every score so results can be traced to the model.
    model_id: str

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Score ``texts`` (with optional language hints); one :class:`Scores` per text, same order."""
        ...


def calibrated_praise_threshold(classifier: object, language: str | None = None) -> float | None:
    """The P(positive) at which ``classifier``'s positives count as praise, when it was calibrated.

    A classifier may carry a ``praise_threshold`` attribute (the embedded default chooses one at
    training time for ≥ 90 % held-out precision), and a ``praise_threshold_for(language)`` method
    when it was calibrated per language. It is stored with each score, so the praise rule's
    ``praise_min_positive: auto`` follows the model that scored the post. None when absent or invalid.
    """
    per_language = getattr(classifier, "praise_threshold_for", None)
    if callable(per_language):
        value = per_language(language)
    else:
        value = getattr(classifier, "praise_threshold", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if 0.0 <= value <= 1.0 else None
