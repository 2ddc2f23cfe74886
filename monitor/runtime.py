"""The runtime: everything a daemon needs, built from validated configuration.

``run_once`` is burst mode (``repmon once``: one poll cycle, then every stage until its queue is
empty); :mod:`monitor.daemon` runs the same stages forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from alerts.model import Notifier
from classifiers.base import Classifier
from config.loader import LoadedConfig
from config.settings import Settings
from monitor.classify import ClassifyStage
from monitor.clock import Clock, SystemClock
from monitor.coordinator import PollLimiter, PollOutcome, SourceCoordinator
from monitor.db import Database, database_url
from monitor.metrics import Metrics
from monitor.outbox import DeliveryStage
from monitor.rules_stage import RulesStage
from monitor.spike_stage import SpikeStage
from monitor.watch import Watchlist
from sources.base import SourceContext
from sources.http import USER_AGENT
from sources.registry import build_source

__all__ = ["CycleSummary", "Runtime", "daemon_id"]

log = logging.getLogger("repmon.runtime")


def daemon_id() -> str:
    """A unique name for this daemon process (host, pid, random suffix) used for leases and claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class CycleSummary:
    """What one burst cycle did."""

    polls: list[PollOutcome] = field(default_factory=list)
    scored: int = 0
    evaluated: int = 0
    spike_events: int = 0
    delivered: int = 0

    @property
    def stored(self) -> int:
        """New mentions stored."""
        return sum(p.stats.inserted for p in self.polls if p.stats)

    @property
    def failed_sources(self) -> list[str]:
        """Sources whose poll failed."""
        return [p.source for p in self.polls if not p.ok]


class Runtime:
    """Database, watchlist, classifier, stages and source coordinators for one daemon."""

    def __init__(
        self,
        config: LoadedConfig,
        *,
        notifier: Notifier,
        classifier: Classifier | None = None,
        classifier_factory: Callable[[Settings], Classifier] | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        owner: str | None = None,
        db: Database | None = None,
    ) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.clock = clock or SystemClock()
        self.owner = owner or daemon_id()
        self.metrics = Metrics()
        self.notifier = notifier
        self.transport = transport
        settings = config.settings
        self.db = db or Database(
            database_url(settings.storage, self.env), pool_size=settings.storage.pool_size
        )
        self._classifier = classifier
        self._classifier_factory = classifier_factory
        # the head file as it was when the classifier loaded: a retrained file at the same path
        # is picked up by a reload too
        self._heads_stamp = _file_stamp(settings.classifier.heads)
        self.coordinators: dict[str, SourceCoordinator] = {}
        #: Shared by every coordinator: how many sources poll at once (daemon.max_concurrent_polls).
        self.poll_limiter = PollLimiter(settings.daemon.max_concurrent_polls)
        self._build(config)

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self.config.settings

    @property
    def classifier(self) -> Classifier:
        """The classifier, loaded on first use (model loading is slow)."""
        if self._classifier is None:
            if self._classifier_factory is None:
                from classifiers.registry import load_classifier

                c = self.settings.classifier
                self._heads_stamp = _file_stamp(c.heads)
                self._classifier = load_classifier(c.model, **c.load_options())
            else:
                self._classifier = self._classifier_factory(self.settings)
            log.info("classifier %s loaded", self._classifier.model_id)
        return self._classifier

    def _http_client(self, **kwargs: object) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}  # type: ignore[call-overload]
        if self.transport is not None:
            kwargs.setdefault("transport", self.transport)
        return httpx.AsyncClient(headers=headers, **kwargs)  # type: ignore[arg-type]

    def _build(self, config: LoadedConfig) -> None:
        settings = config.settings
        self.watchlist = Watchlist(settings.brands)
        ctx = SourceContext(env=self.env, http_client=self._http_client, clock=self.clock.now)
        if self.poll_limiter.limit != settings.daemon.max_concurrent_polls:
            # polls in flight finish under the old bound; every later poll takes the new one
            self.poll_limiter = PollLimiter(settings.daemon.max_concurrent_polls)
        old = self.coordinators
        self.coordinators = {}
        for source_settings in settings.sources:
            if not source_settings.enabled:
                log.info("source %s is disabled in the configuration", source_settings.name)
                continue
            previous = old.get(source_settings.name)
            if (
                previous is not None
                and previous.config == source_settings
                and config.source_options.get(source_settings.name)
                == self.config.source_options.get(source_settings.name)
            ):
                previous.watchlist = self.watchlist
                previous.settings = settings
                previous.limiter = self.poll_limiter
                self.coordinators[source_settings.name] = previous
                continue
            source = build_source(
                source_settings.type, source_settings.name, config.source_options[source_settings.name], ctx
            )
            self.coordinators[source_settings.name] = SourceCoordinator(
                source,
                source_settings,
                db=self.db,
                settings=settings,
                watchlist=self.watchlist,
                clock=self.clock,
                metrics=self.metrics,
                owner=self.owner,
                lease_ttl=settings.daemon.lease_ttl,
                max_backoff=settings.daemon.max_backoff,
                limiter=self.poll_limiter,
            )
        self.config = config
        self.rules = RulesStage(self.db, settings, self.clock, self.metrics)
        self.spikes = SpikeStage(self.db, settings, self.clock, self.metrics)
        self.delivery = DeliveryStage(
            self.db,
            settings,
            self.notifier,
            self.clock,
            self.metrics,
            owner=self.owner,
            owner_ttl=settings.daemon.lease_ttl,
        )
        self._classify: ClassifyStage | None = None

    def reload(self, config: LoadedConfig) -> list[str]:
        """Apply new, already validated configuration; returns the names of sources that went away."""
        removed = [
            name for name in self.coordinators if name not in {s.name for s in config.settings.sources}
        ]
        new = config.settings.classifier
        if new != self.settings.classifier or _file_stamp(new.heads) != self._heads_stamp:
            self._classifier = None
        self._build(config)
        log.info(
            "configuration reloaded: %d brands, %d sources",
            len(config.settings.brands),
            len(self.coordinators),
        )
        return removed

    @property
    def classify(self) -> ClassifyStage:
        """The classify stage (created on first use, so the model loads only when needed)."""
        if self._classify is None:
            c = self.settings.classifier
            self._classify = ClassifyStage(
                self.db,
                self.classifier,
                self.clock,
                self.metrics,
                batch_size=c.batch_size,
                max_attempts=c.max_attempts,
            )
        return self._classify

    async def poll_all(self, *, max_pages: int = 50) -> list[PollOutcome]:
        """Poll every enabled source once, concurrently (``daemon.max_concurrent_polls`` at a time).

        'more' pages are followed up to ``max_pages``.
        """

        async def drain(coordinator: SourceCoordinator) -> list[PollOutcome]:
            outcomes = []
            for _ in range(max_pages):
                outcome = await coordinator.poll_once()
                outcomes.append(outcome)
                if not (outcome.ok and outcome.more) or coordinator.disabled:
                    break
            return outcomes

        results = await asyncio.gather(*(drain(c) for c in self.coordinators.values()))
        return [o for group in results for o in group]

    async def process(self) -> CycleSummary:
        """Run classify → rules → spikes → delivery until no stage has work left."""
        summary = CycleSummary()
        await self.delivery.reconcile()
        while True:
            scored = await self.classify.drain()
            evaluated = await asyncio.to_thread(self.rules.drain)
            events = await asyncio.to_thread(self.spikes.run)
            delivered = await self.delivery.drain()
            summary.scored += scored
            summary.evaluated += evaluated
            summary.spike_events += events
            summary.delivered += delivered
            if not (scored or evaluated or events or delivered):
                return summary

    async def run_once(self) -> CycleSummary:
        """Burst mode: one poll of every source, then process until every queue is empty."""
        polls = await self.poll_all()
        summary = await self.process()
        summary.polls = polls
        return summary

    async def heartbeat(self, roles: str = "all") -> None:
        """Tell other daemons this one is alive (its leases and claims stay its own)."""
        from monitor.outbox import heartbeat

        await asyncio.to_thread(heartbeat, self.db, self.owner, roles, self.clock.now())

    async def aclose(self) -> None:
        """Close sources, the notifier and the database."""
        for coordinator in self.coordinators.values():
            coordinator.release_lease()
            await coordinator.source.aclose()
        await self.notifier.aclose()
        self.db.dispose()


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    """(modification time, size) of ``path``; None without a path or a readable file."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
