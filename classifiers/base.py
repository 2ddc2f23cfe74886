"""The classifier interface and the scores it produces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["LABELS", "Classifier", "ClassifierError", "Scores", "SentimentLabel"]

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
