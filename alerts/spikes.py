"""Causal, streaming spike detection on per-brand mention volume (counts per time bucket).

One :class:`SpikeDetector` watches one count series (e.g. negative mentions of one brand per
5 minutes). Every bucket it compares the count with a baseline built from *earlier* buckets only:

* counts are log-transformed (``y = log(1 + count)``) so loud and quiet brands share one scale and
  multiplicative Twitter-style noise becomes additive;
* daily reference: the median, over the previous ``season_days`` days, of each day's short median
  around the same time of day (hour-of-day seasonality; robust to one-off spikes on earlier days);
* weekly term: the median deviation from the daily reference around this time one week ago
  (day-of-week seasonality, e.g. quiet weekends; zero until a week has been seen);
* level: the median remaining deviation over the last ``level_seconds`` (slow trends);
* noise scale: a clipped exponentially weighted mean absolute residual, floored by the Poisson noise
  of the expected count, so a near-zero brand is judged against counting noise, not against zero.

Two statistics can raise an incident:

* a CUSUM of the mentions above the normal band (``expected * exp(band_z * scale)``), expressed as a
  share of the last day's volume ("extra mentions worth X% of a day"); it must reach ``min_share``
  *and* ``typical_factor`` times what this brand's daily maximum of that share typically is (the
  ``typical_quantile`` of the last ``typical_days`` daily maxima), so brands that are bursty by
  nature (bots, scheduled campaigns) need a correspondingly larger burst;
* a single bucket whose log-ratio to the expected count beats the brand's typical daily maximum
  log-ratio by ``point_margin``.

Either way the bucket itself must be above the band and clear ``min_count`` and ``min_excess``;
nothing is raised during the first ``warmup_seconds``. An open incident escalates each time the
bucket's excess over the expected count reaches ``escalate_factor`` times the excess last reported,
and resolves after ``resolve_seconds`` of consecutive buckets back near normal; after that no new
incident is raised for ``cooldown_seconds``. Windows are set in seconds so that they keep their
meaning for another ``bucket_seconds``; the per-bucket rates and counts were tuned on 5-minute buckets.

Feeding: call :meth:`SpikeDetector.update` once per bucket in time order. Buckets without mentions
must be fed as zeros, or may be skipped: a gap between two timestamps is filled with zero buckets.
Days (for the daily maxima) follow ``ts.date()``, so pass timestamps in the brand's local time.

State is compact and derived only from the counts: ring buffers of short medians for
``season_days`` days, of a week of deviations and of one day of counts, the level and weekly
windows, ``typical_days`` daily maxima and a few scalars (about 5,000 numbers per series
at the defaults). The daemon stores counts, not the detector: after a restart, rebuild it by
feeding the last :attr:`SpikeSettings.replay_buckets` stored buckets and discarding the returned
events. Only the exponentially forgotten noise scale and CUSUM, and an incident open at the start
of the replay, can differ from a detector that never stopped; their influence fades within hours.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median
from typing import Literal

EventKind = Literal["raise", "escalate", "resolve"]
_HOUR = 3600
_DAY = 24 * _HOUR


@dataclass(frozen=True)
class SpikeSettings:
    """All tunables of the spike detector, with their defaults in one place."""

    bucket_seconds: int = 300
    warmup_seconds: int = 2 * _DAY  # no alerts before the baseline has seen more than a day
    season_days: int = 7
    season_halfwidth: int = 1  # buckets either side of the same time of day on earlier days
    level_seconds: int = _DAY
    weekly: bool = True  # add last week's deviation at this time of week (day-of-week seasonality)
    weekly_halfwidth_seconds: int = 3 * _HOUR
    scale_alpha: float = 0.01
    scale_clip: float = 3.0
    scale_floor: float = 0.05
    band_z: float = 1.5  # counts above expected * exp(band_z * scale) are "extra"
    cusum_decay: float = 0.99
    min_share: float = 0.1  # extra mentions worth at least 10% of a day's volume
    typical_days: int = 14
    typical_quantile: float = 0.5
    typical_factor: float = 4.0
    point_margin: float = 1.5  # log-ratio above the typical daily maximum for a one-bucket spike
    min_count: float = 5.0
    min_excess: float = 10.0
    escalate_factor: float = 3.0
    resolve_z: float = 1.5
    resolve_seconds: int = _HOUR // 2
    cooldown_seconds: int = _DAY

    def __post_init__(self) -> None:
        """Fail fast on settings that cannot work together."""
        if self.bucket_seconds <= 0 or _DAY % self.bucket_seconds:
            raise ValueError("bucket_seconds must be a positive divisor of 86400")
        for name in ("season_days", "typical_days", "level_buckets", "resolve_buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_buckets', '_seconds')} must cover at least one bucket")
        if self.season_halfwidth < 0 or 2 * self.season_halfwidth >= self.buckets_per_day:
            raise ValueError("season_halfwidth must be >= 0 and well below half a day")
        if self.warmup_buckets < self.buckets_per_day + self.season_halfwidth + 1:
            raise ValueError("warmup_seconds must cover more than one day of history")
        if self.weekly_halfwidth_seconds < 0 or 2 * self.weekly_halfwidth_seconds >= _DAY:
            raise ValueError("weekly_halfwidth_seconds must be >= 0 and well below half a day")
        if self.cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must be >= 0")
        if not 0.0 < self.scale_alpha < 1.0 or not 0.0 < self.cusum_decay <= 1.0:
            raise ValueError("scale_alpha must be in (0, 1) and cusum_decay in (0, 1]")
        if not 0.0 <= self.typical_quantile <= 1.0:
            raise ValueError("typical_quantile must be in [0, 1]")
        if self.min_share <= 0.0 or self.scale_floor <= 0.0:
            raise ValueError("min_share and scale_floor must be > 0")
        if self.escalate_factor <= 1.0:
            raise ValueError("escalate_factor must be > 1")

    @property
    def buckets_per_day(self) -> int:
        """Number of buckets in one day."""
        return _DAY // self.bucket_seconds

    def _buckets(self, seconds: int) -> int:
        return round(seconds / self.bucket_seconds)

    @property
    def warmup_buckets(self) -> int:
        """The warm-up, in buckets."""
        return self._buckets(self.warmup_seconds)

    @property
    def level_buckets(self) -> int:
        """The level window, in buckets."""
        return self._buckets(self.level_seconds)

    @property
    def weekly_halfwidth(self) -> int:
        """Half the window around this time last week, in buckets."""
        return self._buckets(self.weekly_halfwidth_seconds)

    @property
    def resolve_buckets(self) -> int:
        """Consecutive calm buckets that resolve an incident."""
        return self._buckets(self.resolve_seconds)

    @property
    def cooldown_buckets(self) -> int:
        """The cooldown after a resolve, in buckets."""
        return self._buckets(self.cooldown_seconds)

    @property
    def replay_buckets(self) -> int:
        """How many trailing buckets to replay to rebuild a detector after a restart."""
        return (max(self.season_days, self.typical_days, 7) + 2) * self.buckets_per_day


@dataclass(frozen=True)
class SpikeEvent:
    """A change in the state of a spike incident: raised, escalated or resolved."""

    kind: EventKind
    ts: datetime
    count: float
    expected: float
    level: int
    started_at: datetime
    peak: float
    #: the bucket where ``peak`` was counted (None: not known)
    peak_at: datetime | None = None


class SpikeDetector:
    """Streaming spike detector for one count series; feed every bucket once, in time order."""

    def __init__(self, settings: SpikeSettings | None = None) -> None:
        """Create an empty detector; it stays silent until ``warmup_seconds`` of buckets were fed."""
        self.settings = settings or SpikeSettings()
        self._reset()

    def _reset(self) -> None:
        s = self.settings
        self._period = s.buckets_per_day
        # Transformed counts of the last few buckets, and each bucket's short median (the newest one
        # centred season_halfwidth buckets back) for season_days days: the daily reference.
        self._recent: deque[float] = deque(maxlen=2 * s.season_halfwidth + 1)
        self._short: deque[float] = deque(maxlen=s.season_days * self._period)
        self._level = _RollingMedian(s.level_buckets)
        # Deviations from the daily reference for a week, and the window around this time last week.
        self._week: deque[float] = deque(maxlen=7 * self._period - s.weekly_halfwidth)
        self._last_week = _RollingMedian(2 * s.weekly_halfwidth + 1)
        self._day_counts: deque[float] = deque(maxlen=self._period)
        self._day_volume = 0.0
        self._daily_share: deque[float] = deque(maxlen=s.typical_days)
        self._daily_ratio: deque[float] = deque(maxlen=s.typical_days)
        self._today: date | None = None
        self._today_share = 0.0
        self._today_ratio = 0.0
        self._n = 0
        self._last_ts: datetime | None = None
        self._scale = 0.0
        self._cusum = 0.0
        self._score = 0.0
        self._expected = 0.0
        self._open = False
        self._calm = 0
        self._cooldown_left = 0
        self._started_at: datetime | None = None
        self._peak = 0.0
        self._peak_at: datetime | None = None
        self._severity = 0
        self._reported_excess = 1.0

    @property
    def is_open(self) -> bool:
        """Whether a spike incident is currently open."""
        return self._open

    @property
    def score(self) -> float:
        """Anomaly score in [0, 1] of the last bucket; 0.5 where its volume statistic meets the bar."""
        return self._score

    @property
    def expected(self) -> float:
        """Expected count of the last bucket fed, from earlier buckets only."""
        return self._expected

    def update(self, ts: datetime, count: float) -> SpikeEvent | None:
        """Feed the count of the bucket at ``ts``; return an event when the incident changes.

        Buckets missing between the previous ``ts`` and this one are fed as zero counts (a gap
        longer than ``replay_buckets`` starts the detector afresh, warm-up included).
        """
        step = timedelta(seconds=self.settings.bucket_seconds)
        if self._last_ts is not None:
            gap = round((ts - self._last_ts) / step)
            if gap < 1:
                raise ValueError(f"bucket {ts.isoformat()} is not after {self._last_ts.isoformat()}")
            if gap > self.settings.replay_buckets:
                self._reset()
            else:
                for k in range(1, gap):
                    self._step(self._last_ts + k * step, 0.0, emit=False)
        self._last_ts = ts
        return self._step(ts, max(float(count), 0.0), emit=True)

    # -- internals -------------------------------------------------------------------------------

    def _seasonal(self) -> float | None:
        """Median over earlier days of each day's short median at this time of day, or None."""
        values: list[float] = []
        for d in range(1, self.settings.season_days + 1):
            back = d * self._period - self.settings.season_halfwidth  # _short[-back] is d days ago
            if back > len(self._short):
                break
            values.append(self._short[-back])
        return median(values) if values else None

    def _roll_day(self, ts: datetime) -> None:
        """Close the previous calendar day's maxima when ``ts`` starts a new day."""
        today = ts.date()
        if self._today is not None and today != self._today:
            self._daily_share.append(self._today_share)
            self._daily_ratio.append(self._today_ratio)
            self._today_share = self._today_ratio = 0.0
        self._today = today

    def _step(self, ts: datetime, count: float, emit: bool) -> SpikeEvent | None:
        s = self.settings
        self._roll_day(ts)
        y = math.log1p(count)
        seasonal = self._seasonal()
        ref = seasonal if seasonal is not None else 0.0
        weekly = self._last_week.median() if s.weekly and self._last_week.full else 0.0
        ref += weekly
        if len(self._level):
            expected_y = max(ref + self._level.median(), 0.0)
        else:
            expected_y = self._recent[-1] if self._recent else y
        expected = math.expm1(expected_y)
        residual = y - expected_y
        # Poisson floor: the sd of log(1 + X) for X ~ Poisson(lam) is about sqrt(lam) / (1 + lam).
        scale = max(self._scale, math.sqrt(max(expected, 0.5)) / (1.0 + expected), s.scale_floor)
        z = residual / scale

        band = math.expm1(expected_y + s.band_z * scale)
        self._cusum = max(0.0, self._cusum * s.cusum_decay + count - band)
        volume = max(self._day_volume * self._period / max(len(self._day_counts), 1), 1.0)
        share = self._cusum / volume
        share_bar = s.min_share
        ratio_bar = math.inf
        if self._daily_share:
            share_bar = max(share_bar, s.typical_factor * _quantile(self._daily_share, s.typical_quantile))
            ratio_bar = _quantile(self._daily_ratio, s.typical_quantile) + s.point_margin
        strength = max(share / share_bar, max(residual, 0.0) / ratio_bar)
        self._score = strength / (1.0 + strength)
        self._expected = expected
        self._today_share = max(self._today_share, share)
        self._today_ratio = max(self._today_ratio, residual)

        alarming = (share >= share_bar or residual >= ratio_bar) and z >= s.band_z
        event = self._decide(ts, count, expected, z, alarming) if emit else None
        if not emit:
            self._advance_quietly(z)

        # Learn from this bucket only after deciding on it (causal), clipping outliers.
        if self._n > 0:
            clipped = min(abs(residual), s.scale_clip * scale)
            self._scale = (
                clipped if self._scale == 0.0 else self._scale + s.scale_alpha * (clipped - self._scale)
            )
        if len(self._day_counts) == self._day_counts.maxlen:
            self._day_volume -= self._day_counts[0]
        self._day_counts.append(count)
        self._day_volume += count
        self._recent.append(y)
        if len(self._recent) == self._recent.maxlen:
            self._short.append(median(self._recent))
        self._level.push(y - ref)
        self._week.append(y - ref + weekly if seasonal is not None else 0.0)
        if len(self._week) == self._week.maxlen:
            self._last_week.push(self._week[0])  # next bucket's time, one week ago, plus the halfwidth
        if seasonal is None and self._n + 1 == self._period + s.season_halfwidth:
            # The seasonal reference exists from the next bucket on: restate the level on that footing.
            self._level.clear()
        self._n += 1
        return event

    def _advance_quietly(self, z: float) -> None:
        """Advance the resolve and cooldown counters for a gap-filled zero bucket."""
        if self._open:
            self._calm = self._calm + 1 if z < self.settings.resolve_z else 0
        elif self._cooldown_left > 0:
            self._cooldown_left -= 1

    def _event(self, kind: EventKind, ts: datetime, count: float, expected: float) -> SpikeEvent:
        """An event of the open incident, with its level, start and peak so far."""
        assert self._started_at is not None
        return SpikeEvent(
            kind, ts, count, expected, self._severity, self._started_at, self._peak, self._peak_at
        )

    def _decide(
        self, ts: datetime, count: float, expected: float, z: float, alarming: bool
    ) -> SpikeEvent | None:
        s = self.settings
        excess = count - expected
        if self._open:
            assert self._started_at is not None
            if count > self._peak:
                self._peak, self._peak_at = count, ts
            if z < s.resolve_z:
                self._calm += 1
                if self._calm < s.resolve_buckets:
                    return None
                self._open = False
                self._cooldown_left = s.cooldown_buckets
                self._cusum = 0.0
                return self._event("resolve", ts, count, expected)
            self._calm = 0
            if excess >= s.escalate_factor * self._reported_excess:
                self._severity += 1
                self._reported_excess = excess
                return self._event("escalate", ts, count, expected)
            return None
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            return None
        if self._n < s.warmup_buckets or not alarming:
            return None
        if count < s.min_count or excess < s.min_excess:
            return None
        self._open = True
        self._calm = 0
        self._started_at = ts
        self._peak, self._peak_at = count, ts
        self._severity = 1
        self._reported_excess = excess
        return SpikeEvent("raise", ts, count, expected, 1, ts, count, ts)


class _RollingMedian:
    """Median of the last ``size`` values pushed, kept in a sorted list (O(size) memmove per push)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """Whether the window holds ``size`` values."""
        return len(self._items) == self._size

    def push(self, value: float) -> None:
        """Add a value, dropping the oldest when the window is full."""
        if len(self._items) == self._size:
            del self._sorted[bisect_left(self._sorted, self._items.popleft())]
        self._items.append(value)
        insort(self._sorted, value)

    def clear(self) -> None:
        """Forget every value."""
        self._items.clear()
        self._sorted.clear()

    def median(self) -> float:
        """Median of the window (mean of the middle two for an even count); window must not be empty."""
        values, mid = self._sorted, len(self._sorted) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def _quantile(values: Sequence[float] | deque[float], q: float) -> float:
    """Linearly interpolated q-quantile of a small non-empty collection."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
