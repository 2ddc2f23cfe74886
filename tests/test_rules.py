"""Per-mention rules: praise thresholds (fixed or the model's calibrated one), complaint conditions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from alerts.rules import UNCALIBRATED_PRAISE_MIN_POSITIVE, MentionFacts, complaint_rule, evaluate, praise_rule
from classifiers.base import calibrated_praise_threshold
from classifiers.testing import StubClassifier
from config.settings import Thresholds
from monitor import models
from tests.pipeline_util import config_text, load, make_runtime, post, write_jsonl

FACTS = MentionFacts(
    brand="Acme Rail",
    source="x",
    external_id="1",
    tagged=False,
    from_brand=False,
    competitor=False,
    is_copy=False,
    sentiment="positive",
    p_positive=0.72,
    p_negative=0.05,
    complaint=0.1,
)


def test_auto_praise_threshold_follows_the_scoring_model() -> None:
    auto = Thresholds()
    assert auto.praise_min_positive == "auto"
    # The model says 0.70: a 0.72 post is praise, and the reason names where the bar came from.
    draft = praise_rule(replace(FACTS, praise_threshold=0.70), auto)
    assert draft is not None and "0.72 ≥ 0.70" in draft.reason and "calibrated" in draft.reason
    assert praise_rule(replace(FACTS, praise_threshold=0.80), auto) is None
    # No calibrated threshold (lexicon, a plain transformers model): the fixed fallback applies.
    assert praise_rule(FACTS, auto) is None
    assert praise_rule(replace(FACTS, p_positive=UNCALIBRATED_PRAISE_MIN_POSITIVE), auto) is not None


def test_numeric_praise_threshold_overrides_the_model() -> None:
    fixed = Thresholds(praise_min_positive=0.9)
    assert praise_rule(replace(FACTS, p_positive=0.85, praise_threshold=0.5), fixed) is None
    low = Thresholds(praise_min_positive=0.6)
    draft = praise_rule(replace(FACTS, praise_threshold=0.95), low)
    assert draft is not None and "≥ 0.60 (threshold)" in draft.reason


@pytest.mark.parametrize("value", [1.5, -0.1, "automatic", "", None])
def test_invalid_praise_threshold_is_rejected(value: object) -> None:
    with pytest.raises(ValidationError):
        Thresholds(praise_min_positive=value)  # type: ignore[arg-type]


def test_praise_rule_skips_tagged_low_rated_and_negative_posts() -> None:
    t = Thresholds(praise_min_positive=0.5)
    assert praise_rule(FACTS, t) is not None
    assert praise_rule(replace(FACTS, tagged=True), t) is None
    assert praise_rule(replace(FACTS, sentiment="neutral"), t) is None
    assert praise_rule(replace(FACTS, rating=3, rating_max=5), t) is None
    assert praise_rule(replace(FACTS, competitor=True), t) is None


def test_complaint_rule_reach_floor_reviews_and_severity() -> None:
    t = Thresholds(complaint_min=0.6, complaint_min_reach=500, large_account_followers=10_000)
    negative = replace(FACTS, sentiment="negative", p_positive=0.05, p_negative=0.9, complaint=0.8)
    assert complaint_rule(replace(negative, followers=20), t) is None  # untagged, small account
    assert complaint_rule(replace(negative, followers=20, tagged=True), t) is not None  # tagged: counts
    big = complaint_rule(replace(negative, followers=50_000), t)
    assert big is not None and big.severity == "critical" and "large account" in big.reason
    # A low review is a complaint even when the text scores mild.
    review = complaint_rule(replace(FACTS, source="kiyoh", rating=2, rating_max=10, complaint=0.1), t)
    assert review is not None and "rated 2/10" in review.reason
    # Never both praise and complaint for one post.
    drafts = evaluate(replace(negative, sentiment="positive", p_positive=0.99, followers=50_000), t)
    assert [d.kind for d in drafts] == ["complaint"]


def test_a_top_rated_review_is_praise_and_no_text_complaint() -> None:
    """The stars are the author's own verdict: 5/5 or 9/10 is praise unless the text reads negative."""
    t = Thresholds()  # auto praise threshold: a neutral-scored text would not pass it
    plain = replace(FACTS, source="appstore", sentiment="neutral", p_positive=0.3, rating=5, rating_max=5)
    draft = praise_rule(plain, t)
    assert draft is not None and "rated 5/5" in draft.reason
    assert praise_rule(replace(plain, source="kiyoh", rating=9, rating_max=10), t) is not None
    assert praise_rule(replace(plain, rating=4), t) is None  # 4/5: the text has to say it
    assert praise_rule(replace(plain, sentiment="negative"), t) is None  # "5 stars but it crashes"
    # A 5-star review the model reads as a complaint: the stars win, no complaint alert.
    odd = replace(plain, complaint=0.9)
    assert [d.kind for d in evaluate(odd, t)] == ["praise"]
    assert complaint_rule(replace(odd, rating=3), t) is not None  # 3/5 with complaint text still alerts


def test_calibrated_praise_threshold_reads_only_valid_numbers() -> None:
    class Calibrated(StubClassifier):
        praise_threshold = 0.7

    assert calibrated_praise_threshold(Calibrated()) == 0.7
    assert calibrated_praise_threshold(StubClassifier()) is None
    for bad in (True, 1.5, "0.7", float("nan")):
        Calibrated.praise_threshold = bad  # type: ignore[assignment]
        assert calibrated_praise_threshold(Calibrated()) is None


class _Calibrated(StubClassifier):
    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.praise_threshold = threshold


@pytest.mark.parametrize(("threshold", "alerted"), [(0.95, False), (0.85, True)])
async def test_pipeline_stores_the_model_threshold_and_the_rule_uses_it(
    sqlite_url: str, tmp_path: Path, threshold: float, alerted: bool
) -> None:
    # The stub scores praise at P(positive) 0.9; the config leaves praise_min_positive at auto.
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail staff were brilliant, thanks!")])
    text = config_text(sqlite_url, replay)
    assert "praise_min_positive" not in text
    runtime, _ = make_runtime(load(text), tmp_path, classifier=_Calibrated(threshold))
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            stored = session.execute(select(models.Score.praise_threshold)).scalar_one()
            kinds = list(session.execute(select(models.Alert.kind)).scalars())
        assert stored == threshold
        assert ("praise" in kinds) is alerted
    finally:
        await runtime.aclose()


class _PerLanguage(StubClassifier):
    """Calibrated per language: Dutch posts count as praise from 0.85, everything else from 0.95."""

    praise_threshold = 0.95

    def praise_threshold_for(self, language: str | None) -> float:
        return 0.85 if language == "nl" else self.praise_threshold

    def classify(self, texts: list[str], languages: list[str | None]) -> list:  # type: ignore[override]
        return [replace(s, language="nl") for s in super().classify(texts, languages)]


async def test_pipeline_stores_the_threshold_of_the_post_language(sqlite_url: str, tmp_path: Path) -> None:
    assert calibrated_praise_threshold(_PerLanguage(), "nl") == 0.85
    assert (
        calibrated_praise_threshold(_PerLanguage(), "en")
        == calibrated_praise_threshold(_PerLanguage())
        == 0.95
    )
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail staff were brilliant, thanks!")])
    runtime, _ = make_runtime(load(config_text(sqlite_url, replay)), tmp_path, classifier=_PerLanguage())
    try:
        await runtime.run_once()
        with runtime.db.session() as session:
            stored = session.execute(select(models.Score.praise_threshold)).scalar_one()
            kinds = list(session.execute(select(models.Alert.kind)).scalars())
        assert stored == 0.85 and "praise" in kinds  # the pooled 0.95 would not have alerted at 0.9
    finally:
        await runtime.aclose()
