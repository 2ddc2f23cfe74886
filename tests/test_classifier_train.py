"""Training the heads: deterministic, round-trips through .npz, drives the embedded classifier."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from classifiers.base import ClassifierError, calibrated_praise_threshold
from classifiers.embedded import EmbeddedClassifier
from classifiers.features import FeatureExtractor, SparseRows
from classifiers.heads import HeadSet, fit_logistic
from classifiers.lexicon import LexiconAnalyzer
from classifiers.train import (
    TrainConfig,
    load_examples,
    pick_praise_threshold,
    pick_praise_thresholds_by_language,
    train_heads,
)
from monitor.cli import app


class HashEncoder:
    """A stand-in sentence encoder: bag of hashed words, L2-normalised. Deterministic and instant."""

    name = "hash-test"
    dim = 32

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


POS = [
    "thanks a lot, great help",
    "love this service",
    "bedankt, top geregeld",
    "super fijn, dank je",
    "great, thanks!",
]
NEG = [
    "worst service ever",
    "terrible, still broken",
    "slechte service, belachelijk",
    "waardeloos, kapot",
    "awful",
]
NEU = [
    "my order number is 123",
    "what time do you open",
    "hoe laat gaan jullie open",
    "ik heb een vraag",
    "hello",
]


@pytest.fixture(scope="module")
def analyzer() -> LexiconAnalyzer:
    return LexiconAnalyzer()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    sentiment = tmp_path / "sentiment.jsonl"
    rows = [
        {"text": t, "label": lab}
        for lab, ts in (("positive", POS), ("negative", NEG), ("neutral", NEU))
        for t in ts
    ]
    sentiment.write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    complaints = tmp_path / "complaints.jsonl"
    crows = []
    for dom in ("rail", "shop", "telecom"):
        crows += [
            {"text": f"@{dom} still waiting for my refund", "complaint": 1, "severity": 2, "domain": dom},
            {
                "text": f"@{dom} nog steeds geen reactie, belachelijk",
                "complaint": 1,
                "severity": 3,
                "domain": dom,
            },
            {"text": f"@{dom} thanks for the help", "complaint": 0, "severity": 0, "domain": dom},
            {"text": f"@{dom} what time do you open", "complaint": 0, "severity": 0, "domain": dom},
        ]
    complaints.write_text("".join(json.dumps(r) + "\n" for r in crows))
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(
        json.dumps({"text": "great, another delay", "label": "negative", "source": "feedback"}) + "\n"
    )
    return {"sentiment": sentiment, "complaints": complaints, "feedback": feedback}


def _train(files: dict[str, Path], out: Path, analyzer: LexiconAnalyzer, seed: int = 0) -> HeadSet:
    ext = FeatureExtractor(HashEncoder(), analyzer, buckets=1 << 12)
    return train_heads(
        [files["sentiment"]], [files["complaints"]], [files["feedback"]], seed=seed, out=out,
        config=TrainConfig(max_iter=60, threshold_folds=2), progress=False, extractor=ext,
    )  # fmt: skip


def test_training_is_deterministic_and_round_trips(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    a = _train(files, tmp_path / "a.npz", analyzer)
    b = _train(files, tmp_path / "b.npz", analyzer)
    assert a.digest == b.digest
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = HeadSet.load(tmp_path / "a.npz")
    assert loaded.digest == a.digest
    assert loaded.meta["encoder"] == "hash-test"
    assert loaded.meta["examples"] == {"sentiment": 31, "complaint": 12, "severity": 6}
    assert set(loaded.meta["thresholds"]) == {"praise", "complaint"}
    assert loaded.praise_thresholds_by_language() == {}  # no language has 100 positives here
    assert [f["kind"] for f in loaded.meta["training_files"]] == ["sentiment", "complaints", "feedback"]
    assert (tmp_path / "a.npz").stat().st_size < 5_000_000


def test_trained_heads_drive_the_embedded_classifier(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    _train(files, tmp_path / "h.npz", analyzer)
    clf = EmbeddedClassifier(tmp_path / "h.npz", encoder=HashEncoder(), analyzer=analyzer, batch_size=2)
    texts = [
        "love this service, thanks",
        "worst service ever, still broken",
        "",
        "what time do you open " * 5000,
    ]
    scores = clf.classify(texts, ["en", "en", None, None])
    assert [s.sentiment for s in scores[:2]] == ["positive", "negative"]
    assert scores[1].complaint > scores[0].complaint
    for s in scores:
        assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-6)
        assert s.model == clf.model_id and clf.model_id.startswith("embedded-hash-test@1-")
        assert s.severity is not None and 0 <= s.severity <= 4
    # order is preserved across batch boundaries
    one_by_one = [clf.classify([t], [None])[0].p_positive for t in texts[:3]]
    assert [s.p_positive for s in scores[:3]] == pytest.approx(one_by_one)
    assert clf.classify([], []) == []


def test_per_language_praise_thresholds_reach_the_classifier(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    ext = FeatureExtractor(HashEncoder(), analyzer, buckets=1 << 12)
    cfg = TrainConfig(max_iter=60, threshold_folds=2, praise_min_positives_per_language=2)
    heads = train_heads(
        [files["sentiment"]], [files["complaints"]], [], seed=0, out=tmp_path / "h.npz", config=cfg,
        progress=False, extractor=ext,
    )  # fmt: skip
    by_language = HeadSet.load(tmp_path / "h.npz").praise_thresholds_by_language()
    assert by_language and set(by_language) <= {"en", "nl"}
    assert by_language == {
        lang: v["threshold"] for lang, v in heads.meta["calibration"]["praise"]["by_language"].items()
    }
    clf = EmbeddedClassifier(tmp_path / "h.npz", encoder=HashEncoder(), analyzer=analyzer)
    for lang, threshold in by_language.items():
        assert clf.praise_threshold_for(lang) == threshold
        assert calibrated_praise_threshold(clf, lang) == threshold
    assert clf.praise_threshold_for(None) == clf.praise_threshold == heads.threshold("praise", -1)
    assert clf.praise_threshold_for("xx") == clf.praise_threshold


def test_training_without_complaint_labels_says_so(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    ext = FeatureExtractor(HashEncoder(), analyzer, buckets=1 << 12)
    with pytest.raises(ClassifierError, match="complaint-labelled"):
        train_heads(
            [files["sentiment"]], [], [], out=tmp_path / "h.npz", progress=False, extractor=ext,
            config=TrainConfig(max_iter=20, threshold_folds=2),
        )  # fmt: skip
    assert not (tmp_path / "h.npz").exists()


@pytest.mark.parametrize("bad", [{"en": 1.5}, {"en": True}, {"": 0.5}, {"en": "0.7"}, ["en"]])
def test_malformed_per_language_thresholds_are_refused(bad: object) -> None:
    heads = HeadSet({"praise_thresholds_by_language": bad}, np.zeros(1), np.ones(1))
    with pytest.raises(ClassifierError, match="praise threshold"):
        heads.praise_thresholds_by_language()


def test_head_file_for_another_encoder_is_refused(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    _train(files, tmp_path / "h.npz", analyzer)

    class Other(HashEncoder):
        name = "other"

    with pytest.raises(ClassifierError, match="trained on encoder"):
        EmbeddedClassifier(tmp_path / "h.npz", encoder=Other(), analyzer=analyzer)
    with pytest.raises(ClassifierError):
        EmbeddedClassifier(tmp_path / "missing.npz", encoder=HashEncoder(), analyzer=analyzer)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ClassifierError):
        EmbeddedClassifier(corrupt, encoder=HashEncoder(), analyzer=analyzer)


def test_bad_training_rows_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok", "label": "positive"}\n{"text": "x", "label": "great"}\n')
    with pytest.raises(ClassifierError, match=r"bad\.jsonl:2"):
        load_examples(f, kind="sentiment")


def test_logistic_regression_matches_a_known_solution() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x @ np.array([2.0, -1.0, 0.0]) + 0.5 > 0).astype(int)
    w, b = fit_logistic(x, y, 2, c=100.0)
    acc = np.mean(((x @ w[:, 0] + b[0]) > 0) == y)
    assert acc > 0.97 and w[0, 0] > 0 > w[1, 0]
    sparse = SparseRows.from_dicts([{0: 1.0}, {1: 1.0}, {}, {0: 2.0, 1: 1.0}], 2)
    last = np.log1p([2.0, 1.0]) / np.linalg.norm(np.log1p([2.0, 1.0]))  # log1p counts, L2-normalised
    dense = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], last])
    np.testing.assert_allclose(sparse.matmul(np.eye(2)), dense, rtol=1e-6)
    np.testing.assert_allclose(sparse.rmatmul(np.ones((4, 1))).ravel(), sparse.matmul(np.eye(2)).sum(axis=0))


def test_praise_threshold_is_the_lowest_with_the_precision() -> None:
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    assert pick_praise_threshold(p, y, 0.9) == (0.8, 0.75)
    assert pick_praise_threshold(p, y, 0.8) == (0.6, 1.0)
    assert pick_praise_threshold(p, ~y, 0.9) == (1.0, 0.0)


def test_praise_thresholds_per_language_need_enough_positives() -> None:
    # Dutch probabilities are less sharp: its positives sit lower than the English ones.
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4, 0.9, 0.3])
    y = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    langs = ["en"] * 5 + ["nl"] * 5 + ["de", None]
    got = pick_praise_thresholds_by_language(p, y, langs, 0.9, min_positives=3)
    assert got == {"en": (0.85, 0.75), "nl": (0.5, 1.0)}  # "de" has 1 positive, None none
    assert pick_praise_thresholds_by_language(p, y, langs, 0.9, min_positives=4) == {"en": (0.85, 0.75)}
    # a language where the precision is out of reach keeps the pooled threshold
    assert pick_praise_thresholds_by_language(p, ~y, langs, 0.9, min_positives=1) == {}


def test_sparse_logistic_solves_only_the_columns_that_occur() -> None:
    rng = np.random.default_rng(1)
    rows = [{int(c): 1.0 for c in rng.choice(6, size=3, replace=False) * 2} for _ in range(60)]
    y = np.array([int(0 in r or 4 in r) for r in rows])
    sparse = SparseRows.from_dicts(rows, 13)  # only even columns occur; column 12 never does
    dense = sparse.matmul(np.eye(13))
    ws, bs = fit_logistic(sparse, y, 2, c=5.0)
    wd, bd = fit_logistic(dense, y, 2, c=5.0)
    assert ws.shape == (13, 1) and np.all(ws[1::2] == 0.0)  # unused buckets stay exactly zero
    np.testing.assert_allclose(ws, wd, atol=1e-3)
    np.testing.assert_allclose(bs, bd, atol=1e-3)


def test_private_copy_rows_and_heads_keep_only_shared_weights(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    from classifiers.train import _with_private_copy

    sparse = SparseRows.from_dicts([{0: 1.0}, {1: 1.0, 2: 1.0}], 3)
    copied = _with_private_copy(sparse, np.array([False, True]))
    assert copied.n_cols == 7
    assert copied.indices.tolist() == [0, 1, 2, 4, 5, 6]
    np.testing.assert_allclose(copied.data[1:5], np.concatenate([sparse.data[1:], sparse.data[1:]]))
    heads = _train(files, tmp_path / "h.npz", analyzer)
    sentiment = heads.heads["sentiment"]
    n_dense = heads.dense_mean.shape[0]
    assert sentiment.dense_w.shape == (n_dense, 3) and sentiment.ngram_w.shape == (1 << 12, 3)
    assert sentiment.aux is None


def test_complaint_head_reads_sentiment_log_probabilities(
    files: dict[str, Path], tmp_path: Path, analyzer: LexiconAnalyzer
) -> None:
    heads = _train(files, tmp_path / "h.npz", analyzer)
    complaint = heads.heads["complaint"]
    assert complaint.aux is not None
    n_dense = heads.dense_mean.shape[0]
    assert complaint.aux.w.shape == (n_dense, 3)
    assert complaint.dense_w.shape == (n_dense + 3, 1)
    loaded = HeadSet.load(tmp_path / "h.npz")
    assert loaded.heads["complaint"].aux is not None
    np.testing.assert_array_equal(loaded.heads["complaint"].aux.w, complaint.aux.w)
    off = HeadSet.load(tmp_path / "h.npz")
    ext = FeatureExtractor(HashEncoder(), analyzer, buckets=1 << 12)
    from classifiers.langid import LanguageDetector
    from classifiers.train import compute_features

    ex = load_examples(files["complaints"], kind="complaints")
    feats = compute_features(ex, ext, LanguageDetector())
    p = off.predict("complaint", feats)
    assert p.shape == (len(ex),) and np.all((p > 0) & (p < 1))
    # complaints score above the polite questions on this toy set
    y = np.array([e.complaint for e in ex])
    assert p[y == 1].mean() > p[y == 0].mean()


def test_non_brand_domains_train_sentiment_but_not_complaints(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        {
            "text": "@acme still broken",
            "complaint": 1,
            "severity": 2,
            "sentiment": "negative",
            "domain": "rail",
        },
        {"text": "what a lovely day", "complaint": 0, "sentiment": "positive", "domain": "random_tweet"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    brand, random_tweet = load_examples(path, kind="complaints")
    assert (brand.complaint, brand.severity, brand.sentiment) == (1, 2, 0)
    assert (random_tweet.complaint, random_tweet.severity, random_tweet.sentiment) == (None, None, 2)
    keep_all = load_examples(path, kind="complaints", config=TrainConfig(complaint_exclude_domains=()))
    assert keep_all[1].complaint == 0


def test_pair_encoder_concatenates_and_names_its_weight() -> None:
    from classifiers.features import PairEncoder

    first, second = HashEncoder(), HashEncoder()
    plain = PairEncoder(first, second)
    weighted = PairEncoder(first, second, second_weight=1.5)
    texts = ["de trein is te laat", "great service"]
    a, b = plain.encode(texts), weighted.encode(texts)
    assert a.shape == (2, 2 * first.dim) and plain.name == "hash-test+hash-test"
    np.testing.assert_allclose(b[:, : first.dim], a[:, : first.dim])
    np.testing.assert_allclose(b[:, first.dim :], 1.5 * a[:, first.dim :], rtol=1e-6)
    # Heads trained at one weight must not load under another: the weight is in the name.
    assert weighted.name == "hash-test+1.5xhash-test"


def test_training_embeds_in_float32_whatever_the_cpu(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bf16 products would make the committed weights depend on the machine that trained them.
    import classifiers.train as train

    asked: list[str] = []

    def fake_default_encoder(threads: int | None = None, dtype: str = "auto") -> HashEncoder:
        asked.append(dtype)
        return HashEncoder()

    monkeypatch.setattr(train, "default_encoder", fake_default_encoder)
    train_heads(
        [files["sentiment"]], [files["complaints"]], [], out=tmp_path / "h.npz", progress=False,
        config=TrainConfig(max_iter=20, threshold_folds=0),
    )  # fmt: skip
    assert asked == ["float32"]


def test_praise_threshold_never_cuts_through_tied_scores() -> None:
    # at 0.8 the first post alone would be 100 % precise, but 'p ≥ 0.8' also takes its tied
    # negative twin: 2 of 3, below the target, so the threshold stays at 0.9
    p = np.array([0.9, 0.8, 0.8, 0.7])
    y = np.array([1, 1, 0, 1], dtype=bool)
    assert pick_praise_threshold(p, y, 0.9) == (0.9, 1 / 3)


def test_train_refuses_an_unwritable_packaged_file_before_training(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an installed package (the container image) cannot take retrained heads: say where they go
    import classifiers.embedded

    monkeypatch.setattr(classifiers.embedded, "DEFAULT_HEADS_PATH", tmp_path / "ro" / "heads.npz")
    result = CliRunner().invoke(
        app, ["train", "--sentiment", str(files["sentiment"]), "--complaints", str(files["complaints"])]
    )
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "not writable" in said and "--out FILE" in said and "classifier.heads: FILE" in said
