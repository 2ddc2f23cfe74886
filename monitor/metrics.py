"""Prometheus metrics of one daemon (its own registry: no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Counters, gauges and histograms the daemon updates and ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "repmon_source_polls", "Source polls by outcome.", ["source", "outcome"], registry=r
        )
        self.source_errors = Counter(
            "repmon_source_errors", "Source poll failures by reason.", ["source", "reason"], registry=r
        )
        self.mentions_fetched = Counter(
            "repmon_mentions_fetched", "Mentions returned by sources.", ["source"], registry=r
        )
        self.mentions_stored = Counter(
            "repmon_mentions_stored", "New mentions stored.", ["source"], registry=r
        )
        self.mentions_skipped = Counter(
            "repmon_mentions_skipped",
            "Items dropped by sources, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.source_lag = Gauge(
            "repmon_source_lag_seconds", "Seconds since the last successful poll.", ["source"], registry=r
        )
        self.source_up = Gauge("repmon_source_up", "1 when the last poll succeeded.", ["source"], registry=r)
        self.classified = Counter("repmon_mentions_classified", "Mentions scored.", ["model"], registry=r)
        self.classify_errors = Counter("repmon_classify_errors", "Scoring failures.", ["reason"], registry=r)
        self.classify_seconds = Histogram(
            "repmon_classify_batch_seconds",
            "Time to score one batch.",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.alerts_created = Counter(
            "repmon_alerts_created", "Alerts put in the outbox.", ["kind"], registry=r
        )
        self.alerts_sent = Counter(
            "repmon_alerts_sent", "Alerts delivered.", ["kind", "receiver"], registry=r
        )
        self.alerts_failed = Counter(
            "repmon_alerts_failed", "Delivery failures.", ["receiver", "retryable"], registry=r
        )
        self.alerts_suppressed = Counter(
            "repmon_alerts_suppressed", "Alerts not sent, by reason.", ["reason"], registry=r
        )
        self.queue_depth = Gauge("repmon_queue_depth", "Work waiting per stage.", ["stage"], registry=r)
        self.spike_events = Counter("repmon_spike_events", "Spike detector events.", ["event"], registry=r)
