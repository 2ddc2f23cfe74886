"""Evaluate any :class:`~classifiers.base.Classifier` on labelled JSONL (``repmon eval``).

Sentiment files have ``text`` and ``label`` (or ``sentiment``); complaint files ``text`` and
``complaint`` (0/1, optionally ``severity`` 0–4). A ``lang`` field, when present, is passed as the
language hint, as a source would. Progress goes to stderr so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import LABELS, Classifier, ClassifierError, Scores, calibrated_praise_threshold

__all__ = [
    "binary_metrics",
    "evaluate_complaints",
    "evaluate_sentiment",
    "read_jsonl",
    "roc_auc",
    "sentiment_metrics",
]


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSONL file; :class:`ClassifierError` with file and line on bad input."""
    p = Path(path)
    rows = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ClassifierError(f"cannot read {p}: {exc}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ClassifierError(f"{p}:{lineno}: not JSON: {exc}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ClassifierError(f"{p}:{lineno}: expected an object with a string 'text'")
        rows.append(row)
    return rows


def _classify_all(
    clf: Classifier, rows: Sequence[dict[str, Any]], batch_size: int, progress: bool, what: str
) -> list[Scores]:
    texts = [r["text"] for r in rows]
    langs = [r.get("lang") or r.get("language") for r in rows]
    out: list[Scores] = []
    advance: Callable[[int], None] = lambda _n: None  # noqa: E731
    ctx: Any = None
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        ctx = Progress(
            TextColumn(f"scoring {what}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        ctx.start()
        task = ctx.add_task(what, total=len(texts))
        advance = lambda n: ctx.update(task, completed=n)  # noqa: E731
    try:
        for start in range(0, len(texts), batch_size):
            batch = clf.classify(texts[start : start + batch_size], langs[start : start + batch_size])
            if len(batch) != len(texts[start : start + batch_size]):
                raise ClassifierError("classifier returned a different number of scores than texts")
            out.extend(batch)
            advance(len(out))
    finally:
        if ctx is not None:
            ctx.stop()
    return out


def sentiment_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = true)."""
    k = len(LABELS)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        confusion[t, p] += 1
    n = int(confusion.sum())
    per_class: dict[str, dict[str, float | int]] = {}
    f1s = []
    for i, label in enumerate(LABELS):
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        support = int(confusion[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support:  # as scikit-learn with labels present: absent classes do not dilute macro-F1
            f1s.append(f1)
    return {
        "n": n,
        "accuracy": float(np.trace(confusion) / n) if n else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "per_class": per_class,
        "labels": list(LABELS),
        "confusion": confusion.tolist(),
    }


def roc_auc(y: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann–Whitney, ties count half); ``None`` with only one class."""
    yy = np.asarray(y, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(yy.sum()), int((~yy).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[yy].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(
    y: Sequence[int], scores: Sequence[float], threshold: float | Sequence[float]
) -> dict[str, Any]:
    """Precision, recall, F1 at ``threshold`` (score ≥ threshold → positive) and AUC.

    ``threshold`` may also give one threshold per row (e.g. per language).
    """
    yy = np.asarray(y, dtype=bool)
    pred = np.asarray(scores, dtype=np.float64) >= np.asarray(threshold, dtype=np.float64)
    tp = int(np.sum(pred & yy))
    fp = int(np.sum(pred & ~yy))
    fn = int(np.sum(~pred & yy))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(yy),
        "positives": int(yy.sum()),
        "threshold": float(threshold) if np.ndim(threshold) == 0 else None,  # type: ignore[arg-type]
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(yy.astype(int).tolist(), list(scores)),
    }


def evaluate_sentiment(
    clf: Classifier, path: Path | str, *, batch_size: int = 256, progress: bool = True
) -> dict[str, Any]:
    """Sentiment metrics of ``clf`` on a labelled JSONL file (see :func:`sentiment_metrics`).

    When the classifier has a ``praise_threshold``, also reports precision and recall of
    'p_positive ≥ threshold' for the positive class (the praise alert's operating point).
    """
    rows = read_jsonl(path)
    index = {label: i for i, label in enumerate(LABELS)}
    y_true = []
    for lineno, row in enumerate(rows, 1):
        label = row.get("label", row.get("sentiment"))
        if label not in index:
            raise ClassifierError(f"{path}: row {lineno}: missing or unknown sentiment label {label!r}")
        y_true.append(index[label])
    scores = _classify_all(clf, rows, batch_size, progress, "sentiment")
    result = sentiment_metrics(y_true, [index[s.sentiment] for s in scores])
    result["model"] = clf.model_id
    thresholds = [calibrated_praise_threshold(clf, s.language) for s in scores]
    if scores and all(t is not None for t in thresholds):
        is_pos = [int(t == index["positive"]) for t in y_true]
        praise = binary_metrics(is_pos, [s.p_positive for s in scores], [float(t or 0) for t in thresholds])
        result["praise"] = {k: praise[k] for k in ("precision", "recall", "f1", "auc")}
        used = {s.language or "": t for s, t in zip(scores, thresholds, strict=True)}
        if len(set(used.values())) == 1:
            result["praise"]["threshold"] = thresholds[0]
        else:  # calibrated per language, and several were used: say which threshold each got
            result["praise"]["threshold"] = calibrated_praise_threshold(clf)
            result["praise"]["thresholds_by_language"] = dict(sorted(used.items()))
    return result


def evaluate_complaints(
    clf: Classifier,
    path: Path | str,
    *,
    threshold: float | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Complaint precision/recall/F1 at the classifier's default threshold (or ``threshold``) and AUC.

    With ``severity`` in the file and in the scores, also severity accuracy and mean absolute error
    over the true complaints.
    """
    rows = read_jsonl(path)
    y = []
    for lineno, row in enumerate(rows, 1):
        value = row.get("complaint")
        if value not in (0, 1, True, False):
            raise ClassifierError(f"{path}: row {lineno}: 'complaint' must be 0 or 1, not {value!r}")
        y.append(int(value))
    t = float(threshold if threshold is not None else getattr(clf, "complaint_threshold", 0.5))
    scores = _classify_all(clf, rows, batch_size, progress, "complaints")
    result = binary_metrics(y, [s.complaint for s in scores], t)
    result["model"] = clf.model_id
    sev_pairs = [
        (int(r["severity"]), s.severity)
        for r, s, yy in zip(rows, scores, y, strict=True)
        if yy == 1 and r.get("severity") is not None and s.severity is not None
    ]
    if sev_pairs:
        true = np.array([a for a, _ in sev_pairs])
        pred = np.array([b for _, b in sev_pairs])
        result["severity"] = {
            "n": len(sev_pairs),
            "accuracy": float(np.mean(true == pred)),
            "mae": float(np.mean(np.abs(true - pred))),
        }
    return result
