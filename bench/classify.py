"""Classifier benchmarks: throughput and peak memory, and cross-validated accuracy on the dev sets.

    python bench/classify.py speed [--classifier default] [--n 1024]
    python bench/classify.py langid [--n 20000] [--batch-sizes 32 256 4096]
    python bench/classify.py accuracy [--seed 0] [--out out/classify-accuracy.json]

``speed`` runs each measurement in a fresh process so that peak RSS is that of the classifier alone.
``accuracy`` never scores a text with heads that saw it: sentiment is 5-fold cross-validated per
dev file (each fold's model is trained on the other folds plus all other files), complaints are
leave-one-domain-out (the held-out industry is unseen). Features are computed once; every fold
trains real heads, writes a real head file and is scored through ``EmbeddedClassifier`` and the
``evaluate_*`` functions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifiers.evaluate import binary_metrics, evaluate_complaints, evaluate_sentiment  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "eval"
FILES = {
    "en": DATA / "sentiment_en_dev.jsonl",
    "nl": DATA / "sentiment_nl_dev.jsonl",
    "complaints": DATA / "complaints_dev.jsonl",
}
NON_BRAND = {"random_reply", "random_tweet"}


def _texts(n: int) -> tuple[list[str], list[str | None]]:
    rows: list[dict[str, Any]] = []
    for path in FILES.values():
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = np.random.default_rng(0)
    picked = [rows[i] for i in rng.permutation(len(rows))[:n]]
    return [r["text"] for r in picked], [None] * len(picked)  # no hints: language id is part of the cost


def _speed_child(spec: str, n: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    from classifiers.registry import load_classifier

    t0 = time.perf_counter()
    clf = load_classifier(spec)
    load_s = time.perf_counter() - t0
    texts, langs = _texts(n)
    clf.classify(texts[:8], langs[:8])  # warm caches
    out: dict[str, Any] = {"classifier": clf.model_id, "load_s": round(load_s, 2), "n": n, "per_s": {}}
    for bs in batch_sizes:
        m = min(n, 128) if bs == 1 else n
        t = time.perf_counter()
        for start in range(0, m, bs):
            clf.classify(texts[start : start + bs], langs[start : start + bs])
        out["per_s"][str(bs)] = round(m / (time.perf_counter() - t), 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Mentions/s at each batch size and peak RSS, each classifier in its own process."""
    results = []
    for spec in args.classifier:
        cmd = [
            sys.executable,
            __file__,
            "_speed",
            spec,
            "--n",
            str(args.n),
            "--batch-sizes",
            *map(str, args.batch_sizes),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    return {"speed": results}


class CachedEncoder:
    """Wraps an encoder; remembers embeddings by text so folds do not re-encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def _macro_f1(confusion: np.ndarray) -> float:
    f1s = []
    for i in range(confusion.shape[0]):
        tp, pred, sup = confusion[i, i], confusion[:, i].sum(), confusion[i, :].sum()
        p = tp / pred if pred else 0.0
        r = tp / sup if sup else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1s))


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Cross-validated sentiment, praise, complaint and severity numbers for the embedded default."""
    from classifiers.embedded import DEFAULT_HEADS_PATH, EmbeddedClassifier
    from classifiers.features import FeatureExtractor, default_encoder
    from classifiers.heads import HeadSet
    from classifiers.langid import LanguageDetector
    from classifiers.lexicon import LexiconAnalyzer, LexiconClassifier
    from classifiers.train import (
        TrainConfig,
        _best_f1_threshold,
        _folds,
        compute_features,
        fit_heads,
        load_examples,
        pick_praise_threshold,
    )

    cfg = TrainConfig()
    committed = HeadSet.load(DEFAULT_HEADS_PATH)
    thresholds = committed.meta["thresholds"]
    analyzer, detector = LexiconAnalyzer(), LanguageDetector()
    encoder = CachedEncoder(default_encoder())
    extractor = FeatureExtractor(encoder, analyzer)
    examples = (
        load_examples(FILES["en"], kind="sentiment")
        + load_examples(FILES["nl"], kind="sentiment")
        + load_examples(FILES["complaints"], kind="complaints")
    )
    t = time.perf_counter()
    feats = compute_features(examples, extractor, detector)
    print(f"features for {len(examples)} examples in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    source = np.array([e.source for e in examples])
    report: dict[str, Any] = {"thresholds": thresholds, "folds": {}}
    tmp = Path(tempfile.mkdtemp(prefix="repmon-cv-"))

    def fold_classifier(test: np.ndarray, tag: str) -> EmbeddedClassifier:
        train = np.setdiff1d(np.arange(len(examples)), test)
        heads = fit_heads([examples[i] for i in train], feats.take(train), cfg)
        heads.meta.update(encoder=encoder.name, thresholds=thresholds)
        path = tmp / f"{tag}.npz"
        heads.save(path)
        return EmbeddedClassifier(path, encoder=encoder, analyzer=analyzer, detector=detector)

    def write_rows(rows: np.ndarray, tag: str, path: Path) -> Path:
        lines = json.loads("[" + ",".join(
            line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ) + "]")  # fmt: skip
        offset = int(np.nonzero(source == path.name)[0][0])
        out = tmp / f"{tag}.jsonl"
        out.write_text("".join(json.dumps(lines[i - offset]) + "\n" for i in rows), encoding="utf-8")
        return out

    for key in ("en", "nl"):
        rows = np.nonzero(source == FILES[key].name)[0]
        confusion = np.zeros((3, 3), dtype=np.int64)
        p_pos: list[float] = []
        is_pos: list[bool] = []
        fold_of: list[int] = []
        for k, test in enumerate(_folds(examples, rows, 5, args.seed, by_domain=False)):
            clf = fold_classifier(test, f"{key}{k}")
            f = write_rows(test, f"{key}{k}", FILES[key])
            r = evaluate_sentiment(clf, f, progress=False)
            confusion += np.array(r["confusion"])
            texts = [examples[i].text for i in test]
            scores = clf.classify(texts, [examples[i].language for i in test])
            p_pos += [s.p_positive for s in scores]
            is_pos += [examples[i].sentiment == 2 for i in test]
            fold_of += [k] * len(test)
            report["folds"][f"{key}{k}"] = {"macro_f1": r["macro_f1"], "n": r["n"]}
            print(f"{key} fold {k}: macro-F1 {r['macro_f1']:.3f}", file=sys.stderr)
        pp, yy, ff = np.array(p_pos), np.array(is_pos), np.array(fold_of)
        _, rec90 = pick_praise_threshold(pp, yy, 0.90)
        # the committed model's threshold for this language (chosen on out-of-fold scores of these
        # same rows: optimistic) and a nested one: each fold judged at the threshold that gives 90 %
        # precision on the other four folds' held-out scores
        own = float(committed.praise_thresholds_by_language().get(key, thresholds["praise"]))
        at = binary_metrics(yy.astype(int).tolist(), pp.tolist(), own)
        pooled = binary_metrics(yy.astype(int).tolist(), pp.tolist(), float(thresholds["praise"]))
        nested = np.zeros(len(pp), dtype=bool)
        for k in np.unique(ff):
            t_k, _ = pick_praise_threshold(pp[ff != k], yy[ff != k], 0.90)
            nested[ff == k] = pp[ff == k] >= t_k
        hits = int(np.sum(nested & yy))
        report[f"sentiment_{key}"] = {
            "n": int(confusion.sum()),
            "accuracy": float(np.trace(confusion) / confusion.sum()),
            "macro_f1": _macro_f1(confusion),
            "confusion": confusion.tolist(),
            "praise_recall_at_precision_0.90": rec90,
            "praise_at_threshold": {k: at[k] for k in ("threshold", "precision", "recall")},
            "praise_at_pooled_threshold": {k: pooled[k] for k in ("threshold", "precision", "recall")},
            "praise_nested_precision_0.90": {
                "precision": hits / max(1, int(nested.sum())),
                "recall": hits / max(1, int(yy.sum())),
            },
        }

    rows = np.nonzero(source == FILES["complaints"].name)[0]
    # True labels of every complaint row: training leaves the non-brand domains' complaint labels
    # out (TrainConfig.complaint_exclude_domains), the evaluation still scores those rows.
    labelled = load_examples(
        FILES["complaints"], kind="complaints", config=replace(cfg, complaint_exclude_domains=())
    )
    truth = dict(zip(rows.tolist(), labelled, strict=True))
    y_all: list[int] = []
    p_all: list[float] = []
    brand: list[bool] = []
    domains: list[str] = []
    sev_true: list[int] = []
    sev_pred: list[int] = []
    for test in _folds(examples, rows, 5, args.seed, by_domain=True):
        domain = str(examples[int(test[0])].domain)
        clf = fold_classifier(test, f"c-{domain}")
        f = write_rows(test, f"c-{domain}", FILES["complaints"])
        r = evaluate_complaints(clf, f, progress=False)
        report["folds"][f"complaints-{domain}"] = {
            k: r[k] for k in ("n", "positives", "precision", "recall", "f1")
        }
        scores = clf.classify([examples[i].text for i in test], [examples[i].language for i in test])
        for i, s in zip(test, scores, strict=True):
            label = truth[int(i)]
            y_all.append(int(label.complaint or 0))
            p_all.append(s.complaint)
            brand.append(domain not in NON_BRAND)
            domains.append(domain)
            if label.complaint == 1 and label.severity is not None and s.severity is not None:
                sev_true.append(int(label.severity))
                sev_pred.append(int(s.severity))
        print(f"complaints held out {domain}: F1 {r['f1']:.3f} (n={r['n']})", file=sys.stderr)
    y, p, b = np.array(y_all), np.array(p_all), np.array(brand)
    d = np.array(domains)
    t_c = float(thresholds["complaint"])
    # Nested: each brand industry judged at the threshold that is best on the *other* brand
    # industries' held-out scores, so no number here has seen its own industry's labels.
    nested = np.zeros(len(y), dtype=bool)
    for dom in sorted(set(d[b])):
        others = b & (d != dom)
        nested[d == dom] = p[d == dom] >= _best_f1_threshold(p[others], y[others])
    tp = int(np.sum(nested[b] & (y[b] == 1)))
    report["complaints_lodo"] = {
        "all_domains": binary_metrics(y.tolist(), p.tolist(), t_c),
        "brand_domains_nested_threshold_f1": 2 * tp / max(1, int(nested[b].sum() + y[b].sum())),
        "brand_domains": binary_metrics(y[b].tolist(), p[b].tolist(), t_c),
        "brand_domains_at_0.5": binary_metrics(y[b].tolist(), p[b].tolist(), 0.5),
        "always_complaint_brand_f1": float(2 * y[b].mean() / (1 + y[b].mean())),
    }
    if sev_true:
        st, sp = np.array(sev_true), np.array(sev_pred)
        report["severity_lodo"] = {
            "n": len(st),
            "accuracy": float(np.mean(st == sp)),
            "mae": float(np.mean(np.abs(st - sp))),
            "majority_accuracy": float(np.max(np.bincount(st)) / len(st)),
        }

    lex = LexiconClassifier(detector=detector, analyzer=analyzer)
    report["lexicon_baseline_no_cv"] = {
        "sentiment_en_macro_f1": evaluate_sentiment(lex, FILES["en"], progress=False)["macro_f1"],
        "sentiment_nl_macro_f1": evaluate_sentiment(lex, FILES["nl"], progress=False)["macro_f1"],
        "complaints": {
            k: v
            for k, v in evaluate_complaints(lex, FILES["complaints"], progress=False).items()
            if k != "model"
        },
    }
    return report


def langid_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Language identification alone: one text at a time vs the batch path, same answers required."""
    from classifiers.langid import LanguageDetector

    texts, _ = _texts(10**9)
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    detector = LanguageDetector()
    detector.detect_many(texts[:64])  # load the model and build the batch scorer
    t = time.perf_counter()
    single = [detector.detect(x) for x in texts]
    result: dict[str, Any] = {
        "n": len(texts),
        "per_s": {"one at a time": round(len(texts) / (time.perf_counter() - t))},
    }
    for bs in args.batch_sizes:
        t = time.perf_counter()
        batch: list[str | None] = []
        for start in range(0, len(texts), bs):
            batch += detector.detect_many(texts[start : start + bs])
        result["per_s"][f"detect_many, batch {bs}"] = round(len(texts) / (time.perf_counter() - t))
        if batch != single:
            raise SystemExit(
                f"batch {bs}: {sum(a != b for a, b in zip(batch, single, strict=True))} answers differ"
            )
    return {"langid": result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--classifier", nargs="+", default=["default", "lexicon"])
    sp.add_argument("--n", type=int, default=1024)
    sp.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    child = sub.add_parser("_speed")
    child.add_argument("spec")
    child.add_argument("--n", type=int, default=1024)
    child.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    lid = sub.add_parser("langid")
    lid.add_argument("--n", type=int, default=20_000)
    lid.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256, 4096])
    acc = sub.add_parser("accuracy")
    acc.add_argument("--seed", type=int, default=0)
    for p in (sp, lid, acc):
        p.add_argument("--out", type=Path, default=None, help="Also write the JSON result here.")
    args = parser.parse_args()
    if args.cmd == "_speed":
        print(json.dumps(_speed_child(args.spec, args.n, args.batch_sizes)))
        return
    commands = {"speed": speed, "langid": langid_speed, "accuracy": accuracy}
    result = commands[args.cmd](args)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
