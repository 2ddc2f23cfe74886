"""Language identification on short posts (py3langid, restricted, with abstention)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifiers import langid
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


def _dev_texts(shared_dir: Path) -> list[str]:
    texts: list[str] = []
    for name in ("sentiment_en_dev.jsonl", "sentiment_nl_dev.jsonl", "complaints_dev.jsonl"):
        path = shared_dir / "eval" / name
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    return texts


ODD = [
    "",
    "👍👍",
    "GOEDEMORGEN ALLEMAAL, DE TREIN IS WEER TE LAAT",  # all caps: lower-cased like py3langid does
    "\x00\ud800 broken surrogate and some English words after it",
    "Café crème, s'il vous plaît, et l'addition",  # NFC vs NFD input
    "Cafe\u0301 cre\u0300me, s'il vous plai\u0302t, et l'addition",
    "Поезд опять опоздал на два часа",
    "电车又晚点了两个小时",
    "De klantenservice reageert niet. " * 2_000,
]


def test_batch_detection_matches_one_at_a_time(detector: LanguageDetector, shared_dir: Path) -> None:
    # The vectorised batch path must be the same model: same answers as detect(), text by text,
    # across chunk boundaries (> _BATCH_TEXTS texts) and for odd input.
    texts = _dev_texts(shared_dir) + ODD
    assert len(texts) > 2 * langid._BATCH_TEXTS
    batch = detector.detect_many(texts)
    single = [detector.detect(t) for t in texts]
    assert batch == single
    assert {"en", "nl"} <= set(batch) and None in batch


def test_batch_probabilities_match_py3langid(detector: LanguageDetector) -> None:
    model = detector._model()
    texts = [langid.clean_for_langid(t) for t in ODD if langid.clean_for_langid(t)]
    for text, (lang, prob, runner_up) in zip(texts, detector._batch_scorer().top2(texts), strict=True):
        ranked = model.rank(text)
        assert lang == ranked[0][0]
        assert prob == pytest.approx(ranked[0][1], abs=1e-4)
        assert runner_up == pytest.approx(ranked[1][1], abs=1e-4)
