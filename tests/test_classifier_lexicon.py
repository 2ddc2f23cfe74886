"""The lexicon baseline: Dutch and English polarity, complaint cues, the classifier contract."""

from __future__ import annotations

import math

import pytest

from classifiers.base import Classifier, ClassifierError
from classifiers.lexicon import FEATURE_NAMES, LexiconAnalyzer, LexiconClassifier, complaint_cue_count


@pytest.fixture(scope="module")
def analyzer() -> LexiconAnalyzer:
    return LexiconAnalyzer()


@pytest.fixture(scope="module")
def clf(analyzer: LexiconAnalyzer) -> LexiconClassifier:
    return LexiconClassifier(analyzer=analyzer)


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("Wat een slechte service weer", -1),
        ("Top geregeld, bedankt!", 1),
        ("Super vriendelijke medewerker 😍", 1),
        ("niet goed", -1),  # negation
        ("De trein is weer te laat, belachelijk 😡", -1),
        ("een hele mooie, snelle levering", 1),  # inflected adjectives
    ],
)
def test_dutch_polarity(analyzer: LexiconAnalyzer, text: str, sign: int) -> None:
    score = analyzer.dutch.score(text)
    assert score.hits > 0
    assert math.copysign(1, score.compound) == sign


def test_dutch_booster_and_but(analyzer: LexiconAnalyzer) -> None:
    plain = analyzer.dutch.score("goed").compound
    assert analyzer.dutch.score("heel erg goed").compound > plain
    assert analyzer.dutch.score("het eten was lekker maar de bediening was waardeloos").compound < 0


def test_complaint_cues_in_both_languages() -> None:
    assert complaint_cue_count("@UPSHelp still waiting for my refund, 3 days now") >= 3
    assert complaint_cue_count("Mijn pakket is nog steeds niet bezorgd, waarom?") >= 2
    assert complaint_cue_count("Lovely weather today") == 0


def test_classifier_contract(clf: LexiconClassifier) -> None:
    assert isinstance(clf, Classifier)
    texts = [
        "Thanks for the quick help, great service!",
        "Dit is echt de slechtste klantenservice ooit, belachelijk",
        "",
        "x" * 200_000,
    ]
    scores = clf.classify(texts, ["en", None, None, None])
    assert len(scores) == 4
    for s in scores:
        assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0)
        assert 0.0 <= s.complaint <= 1.0
        assert s.model == "lexicon@1"
    assert scores[0].sentiment == "positive" and scores[0].language == "en"
    assert scores[1].sentiment == "negative" and scores[1].language == "nl"


def test_complaints_score_higher_than_praise(clf: LexiconClassifier) -> None:
    complaint, praise = clf.classify(
        [
            "@bol Mijn bestelling is nog steeds niet geleverd, geen reactie van de klantenservice",
            "Top, bedankt!",
        ],
        ["nl", "nl"],
    )
    assert complaint.complaint > 0.5 > praise.complaint


def test_bad_input_raises_classifier_error(clf: LexiconClassifier) -> None:
    with pytest.raises(ClassifierError):
        clf.classify(["a", "b"], [None])
    with pytest.raises(ClassifierError):
        clf.classify([None], [None])  # type: ignore[list-item]
    with pytest.raises(ClassifierError):
        clf.classify("not a list", ["en"] * 10)


def test_length_feature_is_capped_at_the_training_range(analyzer: LexiconAnalyzer) -> None:
    col = FEATURE_NAMES.index("log_chars")
    news = "The city council approved the new budget for public libraries on Tuesday. "
    at_cap = analyzer.signals("x" * 400, None).vector()[col]  # past the longest training text
    assert analyzer.signals(news * 30, "en").vector()[col] == pytest.approx(at_cap)
    assert analyzer.signals("x" * 20_000, None).vector()[col] == pytest.approx(at_cap)
    assert analyzer.signals(news, "en").vector()[col] == pytest.approx(math.log1p(len(news)) / 8.0)


def test_lone_surrogates_are_replaced_and_score(clf: LexiconClassifier) -> None:
    from classifiers.lexicon import replace_lone_surrogates

    bad = ["hello \ud800 world", b"caf\xff is broken".decode("utf-8", "surrogateescape"), "fine"]
    assert replace_lone_surrogates(bad) == ["hello \ufffd world", "caf\ufffd is broken", "fine"]
    assert replace_lone_surrogates(["plain"])[0] == "plain"
    assert len(clf.classify(bad, [None, "en", None])) == 3
