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
from classifiers.features import NGRAM_BUCKETS, FeatureExtractor, Features, SparseRows, default_encoder
from classifiers.heads import AuxInputs, HeadSet, LinearHead, fit_logistic
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
    "pick_praise_thresholds_by_language",
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
    kind: str = ""  # 'sentiment', 'complaints' or 'feedback': the kind of file it came from


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
    #: The complaint head also reads a dense sentiment model's log-probabilities (out-of-fold on
    #: its own training rows, ``aux_folds`` parts).
    complaint_sentiment_inputs: bool = True
    aux_folds: int = 5
    #: Rows of complaint files that carry a ``sentiment`` field also train the sentiment head.
    sentiment_from_complaint_files: bool = True
    #: Complaint rows of these ``domain`` values train neither the complaint head nor its
    #: threshold (their sentiment is still used): X-CI's tweets that address no brand at all.
    #: repmon scores brand mentions only, and those rows taught the head that negative tweets are
    #: seldom complaints, which is false of posts about a brand: left out, the ranking of unseen
    #: brand industries went from AUC 0.871 to 0.900 (leave-one-industry-out; docs/classifiers.md).
    complaint_exclude_domains: tuple[str, ...] = ("random_reply", "random_tweet")
    #: Sentiment rows from files of these kinds get private feature copies (see ``_fit_head``):
    #: the complaint set (X-CI) annotates sentiment by its own scheme; used as is it cost English
    #: tweets ~2 points of macro-F1, left out entirely Dutch lost ~1 point (docs/classifiers.md).
    sentiment_private_kinds: tuple[str, ...] = ("complaints",)
    feedback_weight: float = 3.0
    max_iter: int = 300
    #: Folds for the out-of-fold predictions that set the praise and complaint thresholds
    #: (complaints are split by ``domain`` when present); 0 = keep the defaults below.
    threshold_folds: int = 5
    praise_precision: float = 0.90
    #: A language with at least this many positive rows among the calibration rows gets its own
    #: praise threshold (the same precision target on its rows alone); the rest use the pooled one.
    praise_min_positives_per_language: int = 100
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
                if row.get("domain") in cfg.complaint_exclude_domains:
                    complaint = severity = None
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
                kind=kind,
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
    langs = example_languages(examples, detector)
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(extractor.extract(texts[start : start + batch], langs[start : start + batch]))
        if advance is not None:
            advance(min(start + batch, len(texts)))
    if not parts:
        raise ClassifierError("no training examples")
    return _concat(parts)


def example_languages(examples: Sequence[Example], detector: LanguageDetector) -> list[str | None]:
    """Each example's language: from its row when given, else detected (None when unsure)."""
    return resolve_languages([e.text for e in examples], [e.language for e in examples], detector)


def _concat(parts: Sequence[Features]) -> Features:
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
    private: np.ndarray | None = None,
) -> LinearHead:
    """Fit the dense and the n-gram expert of one head on ``rows``.

    ``private`` (bool per row) marks rows of a source that labels differently: they get a copy of
    their features (and an indicator) that only they use, "frustratingly easy domain adaptation"
    (Daumé III, 2007). The copy's weights absorb what is peculiar to that source and are dropped;
    the head keeps the shared weights.
    """
    x_dense: np.ndarray = dense[rows]
    x_ngrams = features.ngrams.take(rows)
    if private is not None and private.any():
        flag = private.astype(np.float64)[:, None]
        x_dense = np.concatenate([x_dense, x_dense * flag, flag], axis=1)
        x_ngrams = _with_private_copy(x_ngrams, private)
    d, buckets = dense.shape[1], features.ngrams.n_cols
    dw, db = fit_logistic(x_dense, y, n_classes, c_dense, weights, max_iter, on_iter=tick)
    sw, sb = fit_logistic(x_ngrams, y, n_classes, c_ngram, weights, max_iter, on_iter=tick)
    dw, sw = dw[:d], sw[:buckets]
    return LinearHead(
        dw.astype(np.float32), db.astype(np.float32), sw.astype(np.float16), sb.astype(np.float32), mix
    )


def _with_private_copy(rows: SparseRows, private: np.ndarray) -> SparseRows:
    """``rows`` with, for each ``private`` row, its values repeated at column ``+ n_cols`` and a 1 at
    column ``2 * n_cols`` (the source indicator); ``n_cols`` becomes ``2 * n_cols + 1``."""
    n = rows.n_cols
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for i in range(rows.n_rows):
        a, b = int(rows.indptr[i]), int(rows.indptr[i + 1])
        idx, val = rows.indices[a:b], rows.data[a:b]
        if private[i]:
            idx = np.concatenate([idx, idx + n, np.array([2 * n], dtype=idx.dtype)])
            val = np.concatenate([val, val, np.ones(1, dtype=val.dtype)])
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + len(idx))
    return SparseRows(
        np.asarray(indptr, dtype=np.int64),
        np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
        np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
        2 * n + 1,
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
        if config.balance_sentiment:
            w = _balanced(y, w)
        private = np.array([examples[i].kind in config.sentiment_private_kinds for i in sent_rows])
        tick = _ticker(start, "sentiment head", config.max_iter)
        heads["sentiment"] = _fit_head(
            features, dense, sent_rows, y, 3, w, config.c_dense_sentiment, config.c_ngram_sentiment,
            config.ngram_mix_sentiment, config.max_iter, tick, private,
        )  # fmt: skip
        counts["sentiment"] = len(sent_rows)

    comp_rows = np.array([i for i, e in enumerate(examples) if e.complaint is not None], dtype=np.int64)
    if len(comp_rows) and only in (None, "complaint"):
        y = np.array([examples[i].complaint for i in comp_rows], dtype=np.int64)
        tick = _ticker(start, "complaint head", config.max_iter)
        aux = None
        dense_c = dense
        if config.complaint_sentiment_inputs:
            aux, dense_c = _sentiment_inputs(examples, dense, weight, sent_rows, comp_rows, config)
        heads["complaint"] = _fit_head(
            features, dense_c, comp_rows, y, 2, weight[comp_rows], config.c_dense_complaint,
            config.c_ngram_complaint, config.ngram_mix_complaint, config.max_iter, tick,
        )  # fmt: skip
        heads["complaint"].aux = aux
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


def _balanced(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Class-balanced weights, as scikit-learn's ``class_weight='balanced'`` on weighted counts."""
    totals = np.bincount(y, weights=w, minlength=3)
    present = totals > 0
    factors = np.where(present, w.sum() / (present.sum() * np.maximum(totals, 1e-12)), 0.0)
    return np.asarray(w * factors[y])


def _sentiment_inputs(
    examples: Sequence[Example],
    dense: np.ndarray,
    weight: np.ndarray,
    sent_rows: np.ndarray,
    comp_rows: np.ndarray,
    config: TrainConfig,
) -> tuple[AuxInputs | None, np.ndarray]:
    """A dense sentiment model's log-probabilities as extra complaint inputs (negative tone helps).

    The model is fitted on the sentiment-labelled rows; complaint rows that are themselves among
    those get out-of-fold values (``config.aux_folds`` interleaved parts), so the complaint head
    trains on the same kind of input it will see. Returns ``(aux, dense with 3 more columns)``.
    """
    if len(sent_rows) == 0 or len({examples[i].sentiment for i in sent_rows}) < 2:
        return None, dense
    y_all = np.full(len(examples), -1, dtype=np.int64)
    y_all[sent_rows] = [examples[i].sentiment for i in sent_rows]

    def fit(rows: np.ndarray) -> AuxInputs:
        y = y_all[rows]
        w, b = fit_logistic(dense[rows], y, 3, config.c_dense_sentiment, _balanced(y, weight[rows]),
                            config.max_iter)  # fmt: skip
        return AuxInputs(w.astype(np.float32), b.astype(np.float32), np.zeros(3), np.ones(3))

    full = fit(sent_rows)
    logp = np.zeros((len(examples), 3))
    logp[comp_rows] = full.log_proba(dense[comp_rows])
    shared = comp_rows[y_all[comp_rows] >= 0]
    k = max(2, config.aux_folds)
    if len(shared) >= k:
        for part in (shared[j::k] for j in range(k)):
            logp[part] = fit(np.setdiff1d(sent_rows, part)).log_proba(dense[part])
    mean = logp[comp_rows].mean(axis=0)
    scale = logp[comp_rows].std(axis=0)
    scale[scale < 1e-6] = 1.0
    aux = AuxInputs(full.w, full.b, mean.astype(np.float32), scale.astype(np.float32))
    extended = np.concatenate([dense, (logp - mean) / scale], axis=1)
    return aux, extended


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
    ranked = p_positive[order]
    hits = np.cumsum(is_positive[order])
    prec = hits / np.arange(1, len(order) + 1)
    # 'p ≥ t' takes every post tied at t, so only the last of a run of equal scores is a cut
    cut = np.append(ranked[1:] != ranked[:-1], True)
    ok = np.nonzero((prec >= precision) & cut)[0]
    if not len(ok) or not is_positive.any():
        return 1.0, 0.0
    k = int(ok.max())
    return float(p_positive[order][k]), float(hits[k] / is_positive.sum())


def pick_praise_thresholds_by_language(
    p_positive: np.ndarray,
    is_positive: np.ndarray,
    languages: Sequence[str | None],
    precision: float,
    min_positives: int,
) -> dict[str, tuple[float, float]]:
    """Per-language :func:`pick_praise_threshold`: ``{language: (threshold, recall)}``.

    A model's P(positive) is not equally sharp in every language (Dutch has a fifth of the English
    training rows), so one threshold over all rows is too strict for one language and too lax for
    another. Only languages with ``min_positives`` positive rows get one, and only when the
    precision is reachable there; the others keep the pooled threshold.
    """
    langs = np.array([lang or "" for lang in languages], dtype=object)
    out: dict[str, tuple[float, float]] = {}
    for lang in sorted(set(langs.tolist()) - {""}):
        rows = langs == lang
        if int(is_positive[rows].sum()) < min_positives:
            continue
        threshold, recall = pick_praise_threshold(p_positive[rows], is_positive[rows], precision)
        if recall > 0.0:
            out[str(lang)] = (threshold, recall)
    return out


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

    ``out=None`` writes the packaged default (``classifiers/data/heads-use3-e5.npz``).
    """
    from classifiers.embedded import DEFAULT_HEADS_PATH

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
    # checked before the threshold folds, which would otherwise fail on an empty complaint set
    if not any(e.sentiment is not None for e in examples) or not any(
        e.complaint is not None for e in examples
    ):
        raise ClassifierError("training needs sentiment-labelled and complaint-labelled examples")
    # float32 products: the same weights from the same data on every machine (bf16 units or not)
    ext = extractor or FeatureExtractor(default_encoder(threads, "float32"), LexiconAnalyzer(), NGRAM_BUCKETS)
    detector = LanguageDetector()
    with _progress(progress) as start:
        feats = compute_features(
            examples, ext, detector, cfg.encoder_batch, start("encoding texts", len(examples))
        )
        thresholds = {"complaint": cfg.default_complaint_threshold, "praise": cfg.default_praise_threshold}
        praise_by_language: dict[str, float] = {}
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
            languages = example_languages([examples[i] for i in sent_rows], detector)
            by_language = pick_praise_thresholds_by_language(
                p[sent_rows, 2],
                is_pos,
                languages,
                cfg.praise_precision,
                cfg.praise_min_positives_per_language,
            )
            praise_by_language = {lang: round(t, 4) for lang, (t, _) in by_language.items()}
            calibration["praise"]["by_language"] = {
                lang: {"threshold": round(t, 4), "oof_recall": round(r, 4)}
                for lang, (t, r) in by_language.items()
            }
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
        praise_thresholds_by_language=praise_by_language,
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
