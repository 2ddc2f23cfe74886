"""evaluate_* against numbers computed by hand on tiny files, and the eval CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classifiers.base import ClassifierError, Scores
from classifiers.evaluate import evaluate_complaints, evaluate_sentiment, roc_auc

_PROBS = {"negative": (0.7, 0.2, 0.1), "neutral": (0.2, 0.6, 0.2), "positive": (0.1, 0.2, 0.7)}


class TableClassifier:
    """Answers from a table text → (label, complaint, severity)."""

    model_id = "table@1"
    praise_threshold = 0.65
    complaint_threshold = 0.5

    def __init__(self, table: dict[str, tuple[str, float, int | None]]) -> None:
        self.table = table
        self.batches: list[int] = []

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        self.batches.append(len(texts))
        out = []
        for t in texts:
            label, complaint, severity = self.table[t]
            out.append(Scores(label, *_PROBS[label], complaint, None, self.model_id, severity))  # type: ignore[arg-type]
        return out


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_sentiment_metrics_by_hand(tmp_path: Path) -> None:
    truth = ["negative", "negative", "neutral", "neutral", "positive", "positive"]
    pred = ["negative", "neutral", "neutral", "neutral", "positive", "negative"]
    f = _write(tmp_path / "s.jsonl", [{"text": f"t{i}", "label": t} for i, t in enumerate(truth)])
    clf = TableClassifier({f"t{i}": (p, 0.0, None) for i, p in enumerate(pred)})
    r = evaluate_sentiment(clf, f, batch_size=4, progress=False)
    assert clf.batches == [4, 2]
    assert r["n"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["per_class"]["negative"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert r["per_class"]["neutral"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert r["per_class"]["positive"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert r["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # praise at p_positive ≥ 0.65: predicted positive only for t4 (a true positive)
    assert r["praise"]["precision"] == 1.0 and r["praise"]["recall"] == 0.5


class PerLanguageClassifier(TableClassifier):
    """Scores every text p_positive 0.7 or 0.1; Dutch counts as praise from 0.6, the rest from 0.75."""

    praise_threshold = 0.75

    def praise_threshold_for(self, language: str | None) -> float:
        return 0.6 if language == "nl" else self.praise_threshold

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        return [
            Scores(label, *_PROBS[label], 0.0, lang, self.model_id)  # type: ignore[arg-type]
            for label, lang in ((self.table[t][0], lang) for t, lang in zip(texts, languages, strict=True))
        ]


def test_praise_uses_the_threshold_of_each_language(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "label": "positive", "lang": "nl"},
        {"text": "b", "label": "positive", "lang": "en"},
        {"text": "c", "label": "neutral", "lang": "nl"},
    ]
    clf = PerLanguageClassifier(
        {"a": ("positive", 0, None), "b": ("positive", 0, None), "c": ("neutral", 0, None)}
    )
    r = evaluate_sentiment(clf, _write(tmp_path / "mixed.jsonl", rows), progress=False)
    # 0.7 passes Dutch 0.6 but not English 0.75: one of two positives caught, no false alarm
    assert r["praise"]["precision"] == 1.0 and r["praise"]["recall"] == 0.5
    assert r["praise"]["threshold"] == 0.75
    assert r["praise"]["thresholds_by_language"] == {"en": 0.75, "nl": 0.6}
    dutch = evaluate_sentiment(clf, _write(tmp_path / "nl.jsonl", rows[::2]), progress=False)
    assert dutch["praise"]["threshold"] == 0.6 and "thresholds_by_language" not in dutch["praise"]
    assert dutch["praise"]["recall"] == 1.0


def test_complaint_metrics_by_hand(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "complaint": 1, "severity": 3},
        {"text": "b", "complaint": 1, "severity": 1},
        {"text": "c", "complaint": 0, "severity": 0},
        {"text": "d", "complaint": 0, "severity": 0},
    ]
    f = _write(tmp_path / "c.jsonl", rows)
    table = {
        "a": ("negative", 0.9, 3),
        "b": ("negative", 0.4, 0),
        "c": ("neutral", 0.6, 2),
        "d": ("neutral", 0.1, 0),
    }
    r = evaluate_complaints(TableClassifier(table), f, progress=False)
    assert (r["n"], r["threshold"]) == (4, 0.5)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    assert r["auc"] == pytest.approx(0.75)
    assert r["severity"] == {"n": 2, "accuracy": 0.5, "mae": 0.5}
    assert evaluate_complaints(TableClassifier(table), f, threshold=0.3, progress=False)["recall"] == 1.0


def test_auc_ties_and_degenerate() -> None:
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([1, 1], [0.1, 0.2]) is None


def test_bad_files_raise(tmp_path: Path) -> None:
    clf = TableClassifier({})
    with pytest.raises(ClassifierError, match="unknown sentiment label"):
        evaluate_sentiment(clf, _write(tmp_path / "x.jsonl", [{"text": "a", "label": "meh"}]), progress=False)
    bad = tmp_path / "y.jsonl"
    bad.write_text('{"text": "a", "complaint": 1}\nnot json\n')
    with pytest.raises(ClassifierError, match=":2:"):
        evaluate_complaints(clf, bad, progress=False)


def test_eval_cli_json_is_clean_on_stdout(tmp_path: Path) -> None:
    from classifiers.cli import eval_app

    f = _write(
        tmp_path / "s.jsonl",
        [
            {"text": "Thanks, great help!", "label": "positive"},
            {"text": "Worst service ever", "label": "negative"},
        ],
    )
    result = CliRunner().invoke(eval_app, ["sentiment", str(f), "--json", "--classifier", "lexicon"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 2 and data["model"] == "lexicon@1" and data["accuracy"] == 1.0
    table = CliRunner().invoke(eval_app, ["sentiment", str(f), "--classifier", "lexicon"])
    assert table.exit_code == 0 and "macro-F1" in table.stdout and "confusion" in table.stdout


def test_eval_cli_unknown_classifier_fails_cleanly(tmp_path: Path) -> None:
    from classifiers.cli import eval_app

    f = _write(tmp_path / "c.jsonl", [{"text": "x", "complaint": 0}])
    result = CliRunner().invoke(eval_app, ["complaints", str(f), "--classifier", "nonsense"])
    assert result.exit_code == 1
