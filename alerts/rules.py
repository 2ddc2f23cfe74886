"""Per-mention alert rules: untagged praise to answer, complaints that need care.

Rules are pure functions of a mention's facts, its scores and the brand's thresholds; they return
an :class:`AlertDraft` saying what to send and *why*, or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.model import AlertKind, Severity
from config.settings import Thresholds

__all__ = [
    "UNCALIBRATED_PRAISE_MIN_POSITIVE",
    "AlertDraft",
    "MentionFacts",
    "complaint_rule",
    "evaluate",
    "praise_minimum",
    "praise_rule",
]

#: Sources whose items are reviews: a low rating is a complaint signal in itself.
REVIEW_SOURCES = frozenset({"appstore", "googleplay", "kiyoh", "trustpilot"})
#: ``praise_min_positive: auto`` for a score whose model has no calibrated praise threshold.
UNCALIBRATED_PRAISE_MIN_POSITIVE = 0.75


@dataclass(frozen=True, slots=True)
class MentionFacts:
    """What the rules look at for one mention and one brand."""

    brand: str
    source: str
    external_id: str
    tagged: bool
    from_brand: bool
    competitor: bool
    is_copy: bool
    sentiment: str
    p_positive: float
    p_negative: float
    complaint: float
    severity: int | None = None
    followers: int | None = None
    rating: float | None = None
    rating_max: float | None = None
    #: The scoring model's calibrated praise threshold (for the post's language), when it has one.
    praise_threshold: float | None = None
    #: The story already alerted for this brand through a copy stored before this original.
    story_alerted: bool = False

    @property
    def rating_share(self) -> float | None:
        """Rating as a share of its scale (0 worst, 1 best), when the mention is rated."""
        if self.rating is None or not self.rating_max:
            return None
        return max(0.0, min(1.0, self.rating / self.rating_max))

    @property
    def is_review(self) -> bool:
        """Whether the mention is a review (a rated item or from a review site)."""
        return self.rating is not None or self.source in REVIEW_SOURCES


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """A rule's decision to alert: the dedup key, the labels for routing, and the reason."""

    key: str
    kind: AlertKind
    severity: Severity
    title: str
    reason: str
    labels: dict[str, str] = field(default_factory=dict)


def _skip_common(facts: MentionFacts) -> bool:
    # Competitors are tracked for digests only; the brand's own posts and copies never alert, and a
    # story alerts once: not again for its original when a copy stored before it already did.
    return facts.competitor or facts.from_brand or facts.is_copy or facts.story_alerted


def praise_minimum(facts: MentionFacts, t: Thresholds) -> tuple[float, str]:
    """The P(positive) a praise alert needs for this mention, and where that number comes from."""
    if t.praise_min_positive != "auto":
        return float(t.praise_min_positive), "threshold"
    if facts.praise_threshold is not None:
        return facts.praise_threshold, "the model's calibrated praise threshold"
    return UNCALIBRATED_PRAISE_MIN_POSITIVE, "default threshold, the model has no calibrated one"


def praise_rule(facts: MentionFacts, t: Thresholds) -> AlertDraft | None:
    """Positive, confident, and not tagging the brand: someone to thank who did not ask."""
    if _skip_common(facts) or facts.tagged:
        return None
    minimum, origin = praise_minimum(facts, t)
    share = facts.rating_share
    reach = f", reach {facts.followers:,}" if facts.followers else ""
    if share is not None and share >= t.review_praise_min_rating and facts.sentiment != "negative":
        # The author said it with the stars: a top review is praise even in plain words.
        why = f"review rated {facts.rating:g}/{facts.rating_max:g}, text not negative{reach}"
    elif facts.sentiment != "positive" or facts.p_positive < minimum or (share is not None and share < 0.8):
        return None
    else:
        why = (
            f"positive {facts.p_positive:.2f} ≥ {minimum:.2f} ({origin}) and the post does not tag "
            f"{facts.brand}'s handles{reach}"
        )
    return AlertDraft(
        key=f"praise:{facts.brand}:{facts.source}:{facts.external_id}",
        kind="praise",
        severity="info",
        title=f"Untagged praise for {facts.brand}",
        reason=why,
        labels=_labels(facts, "praise", "info"),
    )


def complaint_rule(facts: MentionFacts, t: Thresholds) -> AlertDraft | None:
    """A complaint worth personal follow-up: confident, or a low review, weighted by reach."""
    if _skip_common(facts):
        return None
    reasons: list[str] = []
    share = facts.rating_share
    low_review = share is not None and share <= t.review_complaint_max_rating
    top_review = share is not None and share >= t.review_praise_min_rating
    if facts.complaint >= t.complaint_min and not top_review:
        reasons.append(f"complaint {facts.complaint:.2f} ≥ {t.complaint_min:.2f}")
    if low_review:
        reasons.append(f"review rated {facts.rating:g}/{facts.rating_max:g}")
    if not reasons:
        return None
    followers = facts.followers or 0
    # Untagged complaints from small accounts are many and mostly unanswerable: a reach floor applies
    # to them only; tagged posts and reviews always count (the author is waiting for an answer).
    if not facts.tagged and not facts.is_review and followers < t.complaint_min_reach:
        return None
    large = followers >= t.large_account_followers > 0
    severe = (facts.severity or 0) >= 3
    severity: Severity = "critical" if large or severe else "warning"
    if large:
        reasons.append(f"large account ({followers:,} followers)")
    if severe:
        reasons.append(f"severity {facts.severity}/4")
    reasons.append("tags the brand" if facts.tagged else "does not tag the brand")
    return AlertDraft(
        key=f"complaint:{facts.brand}:{facts.source}:{facts.external_id}",
        kind="complaint",
        severity=severity,
        title=f"{'Review complaint' if facts.is_review else 'Complaint'} about {facts.brand}",
        reason="; ".join(reasons),
        labels=_labels(facts, "complaint", severity),
    )


def evaluate(
    facts: MentionFacts, t: Thresholds, *, praise: bool = True, complaints: bool = True
) -> list[AlertDraft]:
    """All alerts the enabled rules raise for one mention and brand."""
    drafts: list[AlertDraft] = []
    if complaints and (draft := complaint_rule(facts, t)) is not None:
        drafts.append(draft)
    # A post is either a complaint or praise: never both for the same brand.
    if praise and not drafts and (draft := praise_rule(facts, t)) is not None:
        drafts.append(draft)
    return drafts


def _labels(facts: MentionFacts, kind: str, severity: str) -> dict[str, str]:
    return {
        "brand": facts.brand,
        "kind": kind,
        "source": facts.source,
        "severity": severity,
        "tagged": "yes" if facts.tagged else "no",
    }
