"""Tests for the streaming spike detector and its NAB benchmark runner."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.spike_bench import run_benchmark
from alerts.spikes import SpikeDetector, SpikeEvent, SpikeSettings

START = datetime(2024, 1, 1)  # a Monday, midnight
STEP = timedelta(minutes=5)
DAY = 288
REPO = Path(__file__).resolve().parents[1]
SHARED_SPIKES = REPO.parent / "shared" / "data" / "eval" / "spikes"
SHARED_SCORER = REPO.parent / "shared" / "tools" / "spike_score.py"


def poisson(rng: random.Random, lam: float) -> int:
    """Draw a Poisson count (normal approximation for large means)."""
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def series(days: int, rate: Callable[[int], float], seed: int = 7) -> list[float]:
    """Poisson counts for ``days`` days of 5-minute buckets with mean ``rate(bucket_index)``."""
    rng = random.Random(seed)
    return [float(poisson(rng, rate(i))) for i in range(days * DAY)]


def feed(counts: list[float], settings: SpikeSettings | None = None) -> list[tuple[int, SpikeEvent]]:
    """Run one fresh detector over ``counts``; return (bucket index, event) pairs."""
    detector = SpikeDetector(settings)
    events = []
    for i, count in enumerate(counts):
        event = detector.update(START + i * STEP, count)
        if event is not None:
            events.append((i, event))
    return events


def test_quiet_brand_with_sparse_counts_never_alerts() -> None:
    pattern = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0]
    assert feed(pattern * (10 * DAY // len(pattern))) == []
    assert feed(series(10, lambda i: 0.4)) == []


def test_quiet_brand_jump_raises_fast_then_escalates_then_resolves() -> None:
    jump = 4 * DAY + 100
    counts = series(5, lambda i: 2.0)
    counts[jump : jump + 6] = [30.0] * 6
    counts[jump + 6 : jump + 12] = [200.0] * 6
    events = feed(counts)

    kinds = [e.kind for _, e in events]
    assert kinds == ["raise", "escalate", "resolve"]
    (i_raise, raised), (i_esc, escalated), (i_res, resolved) = events
    assert jump <= i_raise <= jump + 2  # within 15 minutes of the jump
    assert raised.level == 1 and raised.expected < 5
    assert i_esc == jump + 6 and escalated.level == 2 and escalated.count == 200.0
    assert escalated.started_at == raised.ts == resolved.started_at
    assert resolved.peak == 200.0 and jump + 12 <= i_res <= jump + 12 + 4 * 12


def test_peak_reached_between_events_is_reported_with_its_time() -> None:
    # the spike grows from 30 to 45 without a new level (an escalation needs 2x the excess), so
    # the first event after the raise that can say where the peak was is the resolve
    jump = 4 * DAY + 100
    counts = series(5, lambda i: 2.0)
    counts[jump : jump + 8] = [30.0, 30.0, 38.0, 45.0, 40.0, 32.0, 30.0, 30.0]
    events = feed(counts)
    assert [e.kind for _, e in events] == ["raise", "resolve"]
    (i_raise, raised), (_, resolved) = events
    assert raised.peak_at == raised.ts == START + i_raise * STEP
    assert resolved.peak == 45.0 and resolved.peak_at == START + (jump + 3) * STEP


def test_is_open_and_score_follow_the_incident() -> None:
    counts = series(5, lambda i: 2.0)
    jump = 4 * DAY + 100
    counts[jump : jump + 6] = [60.0] * 6
    detector = SpikeDetector()
    scores = []
    opened = []
    for i, count in enumerate(counts):
        detector.update(START + i * STEP, count)
        scores.append(detector.score)
        opened.append(detector.is_open)
        assert 0.0 <= detector.score <= 1.0
    assert not any(opened[:jump]) and opened[jump + 3] and not opened[-1]
    assert max(scores[jump : jump + 6]) > 0.5 > max(scores[DAY * 2 : jump])


def test_outputs_are_causal() -> None:
    base = series(6, lambda i: 10.0 + 5.0 * math.sin(2 * math.pi * i / DAY))
    cut = 5 * DAY
    changed = base[:cut] + [500.0 if i % 7 == 0 else 0.0 for i in range(len(base) - cut)]

    def trace(counts: list[float]) -> list[tuple[float, float, bool, str | None]]:
        detector = SpikeDetector()
        out: list[tuple[float, float, bool, str | None]] = []
        for i, count in enumerate(counts):
            event = detector.update(START + i * STEP, count)
            out.append((detector.score, detector.expected, detector.is_open, event.kind if event else None))
        return out

    original, altered = trace(base), trace(changed)
    assert original[:cut] == altered[:cut]
    assert original[cut:] != altered[cut:]


def test_daily_repeating_peak_is_learned_but_an_unusual_one_alerts() -> None:
    def rate(i: int) -> float:
        noon = 144 <= i % DAY < 156  # one hour at midday, every day
        return 80.0 if noon else 10.0

    counts = series(10, rate)
    assert [(i, e.kind) for i, e in feed(counts) if i >= SpikeSettings().warmup_buckets] == []

    night = 9 * DAY + 36  # the same hour-long burst at 03:00, never seen at that time
    counts[night : night + 12] = series(1, lambda i: 80.0, seed=3)[:12]
    raised = [i for i, e in feed(counts) if e.kind == "raise"]
    assert len(raised) == 1 and night <= raised[0] < night + 12


def test_weekday_weekend_swing_does_not_alert() -> None:
    def rate(i: int, swing: float) -> float:
        weekend = (i // DAY) % 7 >= 5
        return 200.0 * (1.0 + 0.5 * math.sin(2 * math.pi * i / DAY)) / (swing if weekend else 1.0)

    assert feed(series(28, lambda i: rate(i, 2.0))) == []
    # A loud brand whose weekends are 3x quieter: the first Monday surprises the detector, but once it
    # has seen a whole week the day-of-week term expects Monday mornings; without it, every one alerts.
    counts = series(28, lambda i: rate(i, 3.0))
    assert [i for i, _ in feed(counts) if i >= 8 * DAY] == []
    assert [i for i, _ in feed(counts, SpikeSettings(weekly=False)) if i >= 8 * DAY] != []


def test_cooldown_separates_incidents() -> None:
    settings = SpikeSettings()
    counts = series(8, lambda i: 5.0)
    first = 3 * DAY
    second = first + 60  # inside the cooldown after the first incident resolves
    third = first + 2 * DAY  # long after it
    for start in (first, second, third):
        counts[start : start + 3] = [150.0] * 3
    raised = [i for i, e in feed(counts, settings) if e.kind == "raise"]
    assert raised[0] in range(first, first + 3)
    assert not any(second <= i < second + 3 for i in raised)
    assert any(third <= i < third + 3 for i in raised)

    no_cooldown = feed(counts, replace(settings, cooldown_seconds=0))
    assert any(second <= i < second + 3 for i, e in no_cooldown if e.kind == "raise")


def test_warmup_keeps_a_new_detector_silent() -> None:
    counts = series(5, lambda i: 2.0)
    counts[100:106] = [200.0] * 6  # during the warm-up
    late = 4 * DAY + 200
    counts[late : late + 6] = [300.0] * 6
    events = feed(counts)
    assert all(i >= SpikeSettings().warmup_buckets for i, _ in events)
    assert [i for i, e in events if e.kind == "raise"] in ([late], [late + 1], [late + 2])


def test_missing_buckets_count_as_zero_and_time_must_advance() -> None:
    counts = series(4, lambda i: 6.0)
    dense = SpikeDetector()
    sparse = SpikeDetector()
    for i, count in enumerate(counts):
        dense.update(START + i * STEP, count)
        if count:  # the caller may skip empty buckets entirely
            sparse.update(START + i * STEP, count)
    assert sparse.expected == dense.expected and sparse.score == dense.score
    with pytest.raises(ValueError):
        dense.update(START, 1.0)


def test_replaying_recent_history_rebuilds_the_detector() -> None:
    settings = SpikeSettings()
    days = settings.replay_buckets // DAY + 8
    counts = series(days, lambda i: 20.0 * (1.0 + 0.6 * math.sin(2 * math.pi * i / DAY)))
    for start in range((days - 5) * DAY, days * DAY, DAY + 37):
        counts[start : start + 4] = [400.0] * 4
    restart = (days - 5) * DAY - 10

    full = SpikeDetector(settings)
    for i in range(restart):
        full.update(START + i * STEP, counts[i])
    rebuilt = SpikeDetector(settings)
    for i in range(restart - settings.replay_buckets, restart):
        rebuilt.update(START + i * STEP, counts[i])

    after_full = [full.update(START + i * STEP, counts[i]) for i in range(restart, len(counts))]
    after_rebuilt = [rebuilt.update(START + i * STEP, counts[i]) for i in range(restart, len(counts))]
    assert [e.kind for e in after_full if e] == [e.kind for e in after_rebuilt if e]
    assert any(e is not None and e.kind == "raise" for e in after_full)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        SpikeSettings(bucket_seconds=7)
    with pytest.raises(ValueError):
        SpikeSettings(warmup_seconds=3600)
    with pytest.raises(ValueError):
        SpikeSettings(escalate_factor=1.0)
    one_minute = SpikeSettings(bucket_seconds=60)  # windows are durations: they scale with the bucket
    assert one_minute.warmup_buckets == 5 * SpikeSettings().warmup_buckets
    assert one_minute.replay_buckets == 5 * SpikeSettings().replay_buckets


def write_series(path: Path, counts: list[float]) -> list[str]:
    stamps = [(START + i * STEP).strftime("%Y-%m-%d %H:%M:%S") for i in range(len(counts))]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip(stamps, (int(c) for c in counts), strict=True))
    return stamps


def test_run_benchmark_writes_one_scored_row_per_input_row(tmp_path: Path) -> None:
    counts = series(4, lambda i: 3.0)
    jump = 3 * DAY + 50
    counts[jump : jump + 6] = [30.0, 40.0, 300.0, 300.0, 200.0, 100.0]
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    stamps = write_series(src / "brand_a.csv", counts)
    write_series(src / "brand_b.csv", [1.0] * 400)
    (src / "notes.txt").write_text("not a series")

    written = run_benchmark(src, out)

    assert [p.name for p in written] == ["brand_a.csv", "brand_b.csv"]
    with (out / "brand_a.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert [r["timestamp"] for r in rows] == stamps
    assert [float(r["value"]) for r in rows] == counts
    flagged = [i for i, r in enumerate(rows) if r["anomaly_score"] == "1"]
    assert {r["anomaly_score"] for r in rows} == {"0", "1"}
    assert flagged[0] in range(jump, jump + 3) and len(flagged) <= 3  # raise (+ escalations) only
    with (out / "brand_b.csv").open(newline="") as f:
        assert [r["anomaly_score"] for r in csv.DictReader(f)] == ["0"] * 400


@pytest.mark.skipif(not (SHARED_SPIKES / "windows.json").exists(), reason="shared NAB series not present")
def test_nab_twitter_series_score(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("spike_score", SHARED_SCORER)
    if spec is None or spec.loader is None or not SHARED_SCORER.exists():
        pytest.skip("shared scorer not present")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)

    run_benchmark(SHARED_SPIKES, tmp_path)
    windows = json.loads((SHARED_SPIKES / "windows.json").read_text())
    raw = null = perfect = 0.0
    for name, spans in windows.items():
        with (tmp_path / name).open(newline="") as f:
            rows = list(csv.DictReader(f))
        stamps = [r["timestamp"] for r in rows]
        scores = [float(r["anomaly_score"]) for r in rows]
        file_raw, n_windows, _, _ = scorer.score_file(
            stamps, scores, [(s[:19], e[:19]) for s, e in spans], 0.5, *scorer.PROFILES["standard"]
        )
        raw, null, perfect = raw + file_raw, null - n_windows, perfect + n_windows
    assert 100 * (raw - null) / (perfect - null) >= 80.0


def test_single_bucket_jump_raises_on_a_quiet_brand() -> None:
    counts = series(5, lambda i: 1.0)
    jump = 4 * DAY + 100
    counts[jump] = 40.0  # one 5-minute bucket, then back to normal
    events = feed(counts)
    assert [(i, e.kind) for i, e in events if e.kind != "resolve"] == [(jump, "raise")]
    # A jump of a few mentions is a large log-ratio on a quiet brand, but not worth an alert.
    counts[jump] = 8.0
    assert feed(counts) == []


def bot_brand(days: int, seed: int) -> list[float]:
    """A quiet brand (3 per bucket) whose bots post a 4-7 bucket burst of ~150-210 every day."""
    rng = random.Random(seed)
    counts = series(days, lambda i: 3.0, seed=seed)
    for day in range(1, days):
        start = day * DAY + rng.randrange(DAY - 10)
        for k in range(rng.randrange(4, 8)):
            counts[start + k] = float(rng.randrange(150, 210))
    return counts


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_daily_bot_bursts_are_learned_but_a_much_larger_burst_alerts(seed: int) -> None:
    counts = bot_brand(28, seed)
    assert feed(counts) == []
    crisis = 25 * DAY + 100
    counts[crisis : crisis + 6] = [5000.0] * 6  # ~25x a bot burst (the CUSUM share is capped near 1)
    raised = [i for i, e in feed(counts) if e.kind == "raise"]
    assert raised == [crisis]
