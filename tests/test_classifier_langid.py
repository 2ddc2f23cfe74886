"""Language identification on short posts (py3langid, restricted, with abstention)."""

from __future__ import annotations

import pytest

from classifiers.langid import LanguageDetector, clean_for_langid


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("@NS_online Wat een slechte service weer, de trein is alweer te laat", "nl"),
        ("Mijn pakketje is nog steeds niet bezorgd, wanneer komt het? https://t.co/abc", "nl"),
        ("@UPSHelp Why has my package been out for delivery for 4 days?", "en"),
        ("Thanks so much for the quick help, you guys are great!", "en"),
        ("Der Zug hatte heute wieder zwei Stunden Verspätung, echt ärgerlich.", "de"),
        ("Le service client ne répond jamais, c'est inadmissible.", "fr"),
        ("El paquete nunca llegó y nadie me contesta.", "es"),
    ],
)
def test_detects_common_languages_in_tweets(detector: LanguageDetector, text: str, lang: str) -> None:
    assert detector.detect(text) == lang


@pytest.mark.parametrize("text", ["", "   ", "@someone", "https://t.co/xyz", "👍👍", "ok"])
def test_abstains_when_there_is_no_language(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) is None


def test_huge_and_odd_input_does_not_crash(detector: LanguageDetector) -> None:
    assert detector.detect("De klantenservice reageert niet. " * 50_000) == "nl"
    assert detector.detect("\x00\ud800 broken surrogate") in {None, "en"}


def test_cleaning_keeps_hashtag_words_only_when_nothing_else_is_left() -> None:
    assert clean_for_langid("RT @a: Slechte service #fail https://x.y") == "Slechte service"
    assert clean_for_langid("#blijfthuis #helpdezorg") == "blijfthuis helpdezorg"


def test_detect_many_preserves_order(detector: LanguageDetector) -> None:
    texts = ["Goedemorgen allemaal, wat een mooie dag", "Good morning everyone, what a lovely day"]
    assert detector.detect_many(texts) == ["nl", "en"]
