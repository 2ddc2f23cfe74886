"""Training the embedded model's heads from labelled JSONL (``repmon train``).

Input rows are JSON objects with ``text`` and any of: ``label`` (or ``sentiment``):
negative/neutral/positive; ``complaint``: 0/1; ``severity``: 0–4; optional ``lang`` (or
``language``) and ``domain``. Feedback files (from Slack "wrong sentiment" buttons) have the same
shape and count ``feedback_weight`` times as much as a dev-set row. Training is deterministic: every
head is a convex problem solved from zero by L-BFGS, examples are used in file order, and the seed
only fixes the folds used to pick the decision thresholds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import LABELS, ClassifierError
from classifiers.features import NGRAM_BUCKETS, FeatureExtractor, Features, UseEncoder
from classifiers.heads import HeadSet, LinearHead, fit_logistic
from classifiers.langid import LanguageDetector
from classifiers.lexicon import FEATURE_NAMES, LexiconAnalyzer, resolve_languages

__all__ = [
    "Example",
    "TrainConfig",
    "compute_features",
    "fit_heads",
    "load_examples",
    "oof_predictions",
    "pick_praise_threshold",
    "train_heads",
]

_LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; a label that is ``None`` means 'not labelled for that head'."""

    text: str
    language: str | None = None
    sentiment: int | None = None  # index into LABELS
    complaint: int | None = None
    severity: int | None = None  # 1–4 for complaints
    weight: float = 1.0
    domain: str | None = None
    source: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters, chosen by cross-validation on the dev sets (docs/classifiers.md)."""

    c_dense_sentiment: float = 1.0
    c_ngram_sentiment: float = 10.0
    ngram_mix_sentiment: float = 0.4
    c_dense_complaint: float = 1.0
    c_ngram_complaint: float = 10.0
    ngram_mix_complaint: float = 0.3
    c_dense_severity: float = 0.3
    c_ngram_severity: float = 3.0
    ngram_mix_severity: float = 0.3
    balance_sentiment: bool = True
    #: Rows of complaint files that carry a ``sentiment`` field also train the sentiment head.
    sentiment_from_complaint_files: bool = True
    feedback_weight: float = 3.0
    max_iter: int = 300
    #: Folds for the out-of-fold predictions that set the praise and complaint thresholds
    #: (complaints are split by ``domain`` when present); 0 = keep the defaults below.
    threshold_folds: int = 5
    praise_precision: float = 0.90
    default_praise_threshold: float = 0.8
    default_complaint_threshold: float = 0.5
    encoder_batch: int = 256


def _sentiment_of(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if value not in _LABEL_INDEX:
        raise ClassifierError(f"unknown sentiment label {value!r} (expected one of {', '.join(LABELS)})")
    return _LABEL_INDEX[value]


def load_examples(
    path: Path | str, *, kind: str, weight: float = 1.0, config: TrainConfig | None = None
) -> list[Example]:
    """Read labelled JSONL; ``kind`` is 'sentiment', 'complaints' or 'feedback' (which labels to use)."""
    cfg = config or TrainConfig()
    if kind not in {"sentiment", "complaints", "feedback"}:
        raise ValueError(f"unknown kind {kind!r}")
    p = Path(path)
    examples = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ClassifierError(f"cannot read {p}: {exc}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = row["text"]
            if not isinstance(text, str):
                raise TypeError("'text' is not a string")
            sentiment = complaint = severity = None
            if kind in {"sentiment", "feedback"}:
                sentiment = _sentiment_of(row, "label")
                if sentiment is None:
                    sentiment = _sentiment_of(row, "sentiment")
            if kind in {"complaints", "feedback"}:
                if row.get("complaint") is not None:
                    complaint = int(row["complaint"])
                    if complaint not in (0, 1):
                        raise ValueError(f"complaint must be 0 or 1, not {complaint}")
                if complaint == 1 and row.get("severity") is not None:
                    severity = int(row["severity"])
                    if not 1 <= severity <= 4:
                        raise ValueError(f"a complaint's severity must be 1–4, not {severity}")
                if kind == "complaints" and cfg.sentiment_from_complaint_files:
                    sentiment = _sentiment_of(row, "sentiment")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, ClassifierError) as exc:
            raise ClassifierError(f"{p}:{lineno}: {exc}") from exc
        examples.append(
            Example(
                text=text,
                language=row.get("lang") or row.get("language"),
                sentiment=sentiment,
                complaint=complaint,
                severity=severity,
                weight=float(row.get("weight", weight)),
                domain=row.get("domain"),
                source=p.name,
            )
        )
    return examples


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yield ``start(description, total) -> advance(completed)``; a rich progress bar on stderr."""
    if not enabled:
        yield lambda _d, _t: lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)
            return lambda n: progress.update(task, completed=min(n, total))

        yield start


def compute_features(
    examples: Sequence[Example],
    extractor: FeatureExtractor,
    detector: LanguageDetector,
    batch: int = 256,
    advance: Callable[[int], None] | None = None,
) -> Features:
    """Features of all examples (languages from the rows, else detected), in batches."""
    texts = [e.text for e in examples]
    langs = resolve_languages(texts, [e.language for e in examples], detector)
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(extractor.extract(texts[start : start + batch], langs[start : start + batch]))
        if advance is not None:
            advance(min(start + batch, len(texts)))
    if not parts:
        raise ClassifierError("no training examples")
    return _concat(parts)


def _concat(parts: Sequence[Features]) -> Features:
    from classifiers.features import SparseRows

    offsets = np.cumsum([0] + [len(p.ngrams.data) for p in parts])
    indptr = np.concatenate(
        [parts[0].ngrams.indptr[:1]]
        + [p.ngrams.indptr[1:] + off for p, off in zip(parts, offsets, strict=False)]
    )
    return Features(
        np.concatenate([p.embeddings for p in parts]),
        np.concatenate([p.lexical for p in parts]),
        SparseRows(
            indptr.astype(np.int64),
            np.concatenate([p.ngrams.indices for p in parts]),
            np.concatenate([p.ngrams.data for p in parts]),
            parts[0].ngrams.n_cols,
        ),
    )


def _fit_head(
    features: Features,
    dense: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    weights: np.ndarray,
    c_dense: float,
    c_ngram: float,
    mix: float,
    max_iter: int,
    tick: Callable[[int], None],
) -> LinearHead:
    dw, db = fit_logistic(dense[rows], y, n_classes, c_dense, weights, max_iter, on_iter=tick)
    sw, sb = fit_logistic(features.ngrams.take(rows), y, n_classes, c_ngram, weights, max_iter, on_iter=tick)
    return LinearHead(
        dw.astype(np.float32), db.astype(np.float32), sw.astype(np.float16), sb.astype(np.float32), mix
    )


def fit_heads(
    examples: Sequence[Example],
    features: Features,
    config: TrainConfig,
    start_progress: Callable[[str, int], Callable[[int], None]] | None = None,
    only: str | None = None,
) -> HeadSet:
    """Fit the sentiment, complaint and severity heads on precomputed ``features`` of ``examples``.

    ``only`` fits just that head (for cross-validation); otherwise sentiment and complaint data are
    both required.
    """
    start = start_progress or (lambda _d, _t: lambda _n: None)
    dense_raw = features.dense.astype(np.float64)
    # Only the lexical signals are standardised. The embeddings are already L2-normalised and
    # share one scale; standardising their 512 tiny-variance dimensions would weaken the L2 penalty
    # on them ~500-fold and overfit (measured: −3 to −7 points).
    n_emb = features.embeddings.shape[1]
    mean = np.zeros(dense_raw.shape[1])
    scale = np.ones(dense_raw.shape[1])
    mean[n_emb:] = dense_raw[:, n_emb:].mean(axis=0)
    scale[n_emb:] = dense_raw[:, n_emb:].std(axis=0)
    scale[scale < 1e-6] = 1.0
    dense = (dense_raw - mean) / scale
    weight = np.array([e.weight for e in examples], dtype=np.float64)
    heads: dict[str, LinearHead] = {}
    counts: dict[str, int] = {}

    sent_rows = np.array([i for i, e in enumerate(examples) if e.sentiment is not None], dtype=np.int64)
    if len(sent_rows) and only in (None, "sentiment"):
        y = np.array([examples[i].sentiment for i in sent_rows], dtype=np.int64)
        w = weight[sent_rows].copy()
        if config.balance_sentiment:  # as scikit-learn's class_weight='balanced', on weighted counts
            totals = np.bincount(y, weights=w, minlength=3)
            present = totals > 0
            factors = np.where(present, w.sum() / (present.sum() * np.maximum(totals, 1e-12)), 0.0)
            w = w * factors[y]
        tick = _ticker(start, "sentiment head", config.max_iter)
        heads["sentiment"] = _fit_head(
            features, dense, sent_rows, y, 3, w, config.c_dense_sentiment, config.c_ngram_sentiment,
            config.ngram_mix_sentiment, config.max_iter, tick,
        )  # fmt: skip
        counts["sentiment"] = len(sent_rows)

    comp_rows = np.array([i for i, e in enumerate(examples) if e.complaint is not None], dtype=np.int64)
    if len(comp_rows) and only in (None, "complaint"):
        y = np.array([examples[i].complaint for i in comp_rows], dtype=np.int64)
        tick = _ticker(start, "complaint head", config.max_iter)
        heads["complaint"] = _fit_head(
            features, dense, comp_rows, y, 2, weight[comp_rows], config.c_dense_complaint,
            config.c_ngram_complaint, config.ngram_mix_complaint, config.max_iter, tick,
        )  # fmt: skip
        counts["complaint"] = len(comp_rows)

    sev_rows = np.array([i for i, e in enumerate(examples) if e.severity is not None], dtype=np.int64)
    if len(sev_rows) and len({examples[i].severity for i in sev_rows}) > 1 and only in (None, "severity"):
        y = np.array([examples[i].severity for i in sev_rows], dtype=np.int64) - 1  # 1–4 → 0–3
        tick = _ticker(start, "severity head", config.max_iter)
        heads["severity"] = _fit_head(
            features, dense, sev_rows, y, 4, weight[sev_rows], config.c_dense_severity,
            config.c_ngram_severity, config.ngram_mix_severity, config.max_iter, tick,
        )  # fmt: skip
        counts["severity"] = len(sev_rows)

    if only is None and ("sentiment" not in heads or "complaint" not in heads):
        raise ClassifierError("training needs sentiment-labelled and complaint-labelled examples")
    meta: dict[str, Any] = {
        "encoder": "",
        "feature_names": list(FEATURE_NAMES),
        "ngram_buckets": features.ngrams.n_cols,
        "examples": counts,
        "thresholds": {
            "complaint": config.default_complaint_threshold,
            "praise": config.default_praise_threshold,
        },
    }
    return HeadSet(meta, mean.astype(np.float32), scale.astype(np.float32), heads)


def _ticker(
    start: Callable[[str, int], Callable[[int], None]], description: str, max_iter: int
) -> Callable[[int], None]:
    # two problems (dense, n-grams) per head share one bar
    advance = start(description, 2 * max_iter)
    state = {"done": 0, "last": -1}

    def tick(it: int) -> None:
        if it <= state["last"]:  # the second problem starts again at 0
            state["done"] += state["last"] + 1
        state["last"] = it
        advance(state["done"] + it + 1)

    return tick


def _folds(
    examples: Sequence[Example], rows: np.ndarray, k: int, seed: int, by_domain: bool
) -> list[np.ndarray]:
    """Test folds over ``rows``: one per domain when ``by_domain`` and domains exist, else k seeded folds."""
    domains = [examples[i].domain for i in rows]
    if by_domain and all(d is not None for d in domains) and len(set(domains)) > 1:
        return [rows[np.array([d == dom for d in domains])] for dom in sorted(set(domains), key=str)]
    rng = np.random.default_rng(seed)
    order = rows[rng.permutation(len(rows))]
    return [order[i::k] for i in range(k)]


def oof_predictions(
    examples: Sequence[Example],
    features: Features,
    config: TrainConfig,
    head: str,
    folds: Sequence[np.ndarray],
    on_fold: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities of ``head`` for the rows in ``folds`` (NaN elsewhere).

    Each fold's model is trained on every other example (all heads' data), like a final model
    that has never seen that fold.
    """
    n = len(examples)
    out = np.full((n, 3) if head == "sentiment" else (n, 4) if head == "severity" else n, np.nan)
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n), test)
        heads = fit_heads([examples[i] for i in train], features.take(train), config, only=head)
        out[test] = heads.predict(head, features.take(test))
        if on_fold is not None:
            on_fold(k + 1)
    return out


def pick_praise_threshold(
    p_positive: np.ndarray, is_positive: np.ndarray, precision: float
) -> tuple[float, float]:
    """Lowest threshold whose precision on 'positive' is ≥ ``precision``; returns (threshold, recall).

    (1.0, 0.0) when no threshold reaches the precision.
    """
    order = np.argsort(-p_positive, kind="stable")
    hits = np.cumsum(is_positive[order])
    prec = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(prec >= precision)[0]
    if not len(ok) or not is_positive.any():
        return 1.0, 0.0
    k = int(ok.max())
    return float(p_positive[order][k]), float(hits[k] / is_positive.sum())


def _best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    best, best_t = -1.0, 0.5
    for t in np.arange(0.20, 0.81, 0.025):
        pred = p >= t
        tp = float(np.sum(pred & (y == 1)))
        f1 = 2 * tp / max(1.0, float(pred.sum() + (y == 1).sum()))
        if f1 > best + 1e-9:
            best, best_t = f1, float(t)
    return round(best_t, 3)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def train_heads(
    sentiment: Iterable[Path | str] = (),
    complaints: Iterable[Path | str] = (),
    feedback: Iterable[Path | str] = (),
    *,
    seed: int = 0,
    out: Path | str | None = None,
    config: TrainConfig | None = None,
    threads: int | None = None,
    progress: bool = True,
    extractor: FeatureExtractor | None = None,
) -> HeadSet:
    """Train all heads from JSONL files, choose thresholds on out-of-fold predictions, save to ``out``.

    ``out=None`` writes the packaged default (``classifiers/data/heads-use3.npz``).
    """
    from classifiers.embedded import DEFAULT_HEADS_PATH, default_threads

    cfg = config or TrainConfig()
    files = {
        "sentiment": [Path(p) for p in sentiment],
        "complaints": [Path(p) for p in complaints],
        "feedback": [Path(p) for p in feedback],
    }
    examples: list[Example] = []
    for kind, paths in files.items():
        for path in paths:
            w = cfg.feedback_weight if kind == "feedback" else 1.0
            examples.extend(load_examples(path, kind=kind, weight=w, config=cfg))
    if not examples:
        raise ClassifierError("no training files given")
    ext = extractor or FeatureExtractor(
        UseEncoder(threads or default_threads()), LexiconAnalyzer(), NGRAM_BUCKETS
    )
    detector = LanguageDetector()
    with _progress(progress) as start:
        feats = compute_features(
            examples, ext, detector, cfg.encoder_batch, start("encoding texts", len(examples))
        )
        thresholds = {"complaint": cfg.default_complaint_threshold, "praise": cfg.default_praise_threshold}
        calibration: dict[str, Any] = {}
        if cfg.threshold_folds > 1:
            sent_rows = np.array([i for i, e in enumerate(examples) if e.sentiment is not None])
            folds = _folds(examples, sent_rows, cfg.threshold_folds, seed, by_domain=False)
            p = oof_predictions(
                examples, feats, cfg, "sentiment", folds, start("threshold folds (sentiment)", len(folds))
            )
            is_pos = np.array([examples[i].sentiment == 2 for i in sent_rows])
            t, rec = pick_praise_threshold(p[sent_rows, 2], is_pos, cfg.praise_precision)
            thresholds["praise"] = round(t, 4)
            calibration["praise"] = {"precision_target": cfg.praise_precision, "oof_recall": round(rec, 4)}
            comp_rows = np.array([i for i, e in enumerate(examples) if e.complaint is not None])
            folds = _folds(examples, comp_rows, cfg.threshold_folds, seed, by_domain=True)
            pc = oof_predictions(
                examples, feats, cfg, "complaint", folds, start("threshold folds (complaint)", len(folds))
            )
            y = np.array([examples[i].complaint for i in comp_rows])
            thresholds["complaint"] = _best_f1_threshold(pc[comp_rows], y)
            calibration["complaint"] = {"folds": len(folds), "by_domain": True}
        heads = fit_heads(examples, feats, cfg, start)
    heads.meta.update(
        encoder=ext.encoder.name,
        thresholds=thresholds,
        calibration=calibration,
        seed=seed,
        config=asdict(cfg),
        training_files=[
            {"kind": kind, "name": p.name, "sha256_16": _file_digest(p)}
            for kind, paths in files.items()
            for p in paths
        ],
    )
    target = Path(out) if out is not None else DEFAULT_HEADS_PATH
    heads.save(target)
    return heads


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    """``python -m classifiers.train`` — the same as ``repmon train``."""
    from classifiers.cli import train_main

    return train_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
