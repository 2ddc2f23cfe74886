"""The runtime: everything a daemon needs, built from validated configuration.

``run_once`` is burst mode (``repmon once``: one poll cycle, then every stage until its queue is
empty); :mod:`monitor.daemon` runs the same stages forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, update

from alerts.model import Notifier
from classifiers.base import Classifier, ClassifierError
from config.loader import LoadedConfig
from config.settings import Settings
from monitor import models
from monitor.classify import ClassifyStage
from monitor.clock import Clock, SystemClock
from monitor.coordinator import PollLimiter, PollOutcome, SourceCoordinator
from monitor.db import Database, database_url
from monitor.health import DaemonHealth, HealthProbe, WatchedNotifier
from monitor.logs import describe
from monitor.metrics import Metrics
from monitor.outbox import DeliveryStage, keep_alive
from monitor.rules_stage import RulesStage
from monitor.spike_stage import SpikeStage
from monitor.watch import Watchlist
from sources.base import SourceContext
from sources.http import USER_AGENT
from sources.registry import build_source

__all__ = ["ClassifierUnavailableError", "CycleSummary", "Runtime", "daemon_id", "run_daemon"]

log = logging.getLogger("repmon.runtime")

#: First wait before loading a classifier again after it failed to load; doubles up to the maximum.
CLASSIFIER_RETRY_FIRST = 5.0
CLASSIFIER_RETRY_MAX = 300.0
#: Seconds :meth:`Runtime.aclose` may take in all (leases, sources, receiver, database).
CLOSE_TIMEOUT = 3.0
#: Seconds to wait at exit for worker threads still inside a database call before leaving them.
THREAD_EXIT_GRACE = 1.0
#: Heartbeat rows of daemons silent this long are deleted (they are long gone).
HEARTBEAT_KEEP = timedelta(days=1)


class ClassifierUnavailableError(ClassifierError):
    """The configured classifier cannot be loaded (yet): mentions wait unscored, never 'neutral'."""


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
    #: Why the classifier could not be loaded (the mentions stay unscored), or None.
    classifier_error: str | None = None

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
        notifier: Notifier | None = None,
        notifier_factory: Callable[[Settings], Notifier] | None = None,
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
        #: In-process health (classifier, delivery, processing loop) behind /healthz.
        self.health = DaemonHealth()
        #: /healthz's report, bounded in time (a hung database answers 503, not never).
        self.health_probe = HealthProbe(self)
        self.started_at = self.clock.now()
        if notifier is None:
            if notifier_factory is None:
                raise ValueError("Runtime needs a notifier or a notifier_factory")
            notifier = notifier_factory(config.settings)
        #: The receiver; rebuilt on reload from ``notifier_factory`` when its settings change.
        self.notifier = notifier
        self._notifier_factory = notifier_factory
        self._retired_notifiers: list[Notifier] = []
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
        #: Bumped whenever the configured classifier changes, so a load that was already running
        #: for the old settings is not installed.
        self._classifier_generation = 0
        #: After a failed load: not before this time again (backoff); None to try at once.
        self._classifier_retry_at: datetime | None = None
        #: What the delivery stage sends through: the receiver, watched for /healthz.
        self._watched = WatchedNotifier(notifier, self.health.delivery, self.clock)
        self.coordinators: dict[str, SourceCoordinator] = {}
        #: When each source was first configured in this process (how late a new source may be).
        self.source_added_at: dict[str, datetime] = {}
        #: Shared by every coordinator: how many sources poll at once (daemon.max_concurrent_polls).
        self.poll_limiter = PollLimiter(settings.daemon.max_concurrent_polls)
        self._build(config)

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self.config.settings

    @property
    def classifier(self) -> Classifier:
        """The classifier, loaded on first use (model loading is slow; the daemon uses
        :meth:`ensure_classifier`, which loads it off the event loop)."""
        if self._classifier is None:
            self._install_classifier(*self._load_classifier(self.settings))
        assert self._classifier is not None
        return self._classifier

    def _load_classifier(self, settings: Settings) -> tuple[Classifier, tuple[int, int] | None]:
        """Load the classifier ``settings`` ask for (slow: runs in a worker thread in the daemon)."""
        c = settings.classifier
        stamp = _file_stamp(c.heads)
        if self._classifier_factory is not None:
            return self._classifier_factory(settings), stamp
        from classifiers.registry import load_classifier

        return load_classifier(c.model, **c.load_options()), stamp

    def _install_classifier(self, classifier: Classifier, stamp: tuple[int, int] | None) -> None:
        self._classifier, self._heads_stamp = classifier, stamp
        self._classifier_retry_at = None
        failed = self.health.classifier.failures if self.health.classifier.fatal else 0
        self.health.classifier.recover()
        if failed:
            log.info(
                "classifier %s loaded after %d failed attempts; scoring resumes", classifier.model_id, failed
            )
        else:
            log.info("classifier %s loaded", classifier.model_id)

    async def ensure_classifier(self) -> Classifier:
        """The classifier, loaded in a worker thread so the event loop (health, polls) keeps running.

        A failed load is logged when it starts failing (and once when it loads again), counted in
        ``repmon_classify_errors_total{reason="load"}``, reported on /healthz and retried with a
        backoff (5 s doubling, at most 5 min); a reload retries at once. Raises
        :class:`ClassifierUnavailableError` meanwhile: mentions wait unscored, never 'neutral'.
        """
        condition = self.health.classifier
        while self._classifier is None:
            now = self.clock.now()
            if self._classifier_retry_at is not None and now < self._classifier_retry_at:
                raise ClassifierUnavailableError(condition.error or "the classifier is not loaded")
            generation = self._classifier_generation
            settings = self.settings
            try:
                loaded = await asyncio.to_thread(self._load_classifier, settings)
            except Exception as exc:
                if generation != self._classifier_generation:
                    continue  # reloaded meanwhile: try the new settings
                self._classifier_load_failed(settings, exc)
                raise ClassifierUnavailableError(condition.error or str(exc)) from exc
            if generation == self._classifier_generation:
                self._install_classifier(*loaded)
        return self._classifier

    def _classifier_load_failed(self, settings: Settings, exc: Exception) -> None:
        now = self.clock.now()
        condition = self.health.classifier
        error = f"cannot load classifier {settings.classifier.model!r}: {exc}"
        if not isinstance(exc, ClassifierError):
            error = f"cannot load classifier {settings.classifier.model!r}: {type(exc).__name__}: {exc}"
        self.metrics.classify_errors.labels("load").inc()
        condition.fail(error[:1000], now, fatal=True)
        delay = min(CLASSIFIER_RETRY_MAX, CLASSIFIER_RETRY_FIRST * 2 ** (condition.failures - 1))
        self._classifier_retry_at = now + timedelta(seconds=delay)
        if not condition.reported:
            condition.reported = True
            log.error(
                "%s; mentions wait unscored and no sentiment alerts go out; retrying with backoff "
                "(at most every %.0fs), or fix classifier.* and reload",
                error,
                CLASSIFIER_RETRY_MAX,
            )
        else:
            log.debug("classifier still cannot be loaded (attempt %d): %s", condition.failures, error)

    def classifier_failed(self, exc: ClassifierError) -> None:
        """A scoring batch failed (the classify stage counted, logged and rescheduled it)."""
        now = self.clock.now()
        condition = self.health.classifier
        condition.fail(f"scoring fails: {exc}"[:1000], now)
        if not condition.reported and condition.failing(now):
            condition.reported = True
            log.error(
                "the classifier failed on %d batches in a row (%s); /healthz reports unhealthy",
                condition.failures,
                exc,
            )

    def classifier_ok(self) -> None:
        """A scoring batch succeeded."""
        if self.health.classifier.recover():
            log.info("the classifier scores again")

    async def classify_stage(self) -> ClassifyStage:
        """The classify stage, with the classifier loaded off the event loop (see :meth:`ensure_classifier`)."""
        await self.ensure_classifier()
        return self.classify

    def _http_client(self, **kwargs: object) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}  # type: ignore[call-overload]
        if self.transport is not None:
            kwargs.setdefault("transport", self.transport)
        return httpx.AsyncClient(headers=headers, **kwargs)  # type: ignore[arg-type]

    def _build(self, config: LoadedConfig) -> None:
        settings = config.settings
        self.watchlist = Watchlist(settings.brands, sources=settings.sources)
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
                previous.lease_ttl = settings.daemon.lease_ttl
                previous.max_backoff = settings.daemon.max_backoff
                if previous.retry_after_reload():
                    log.info(
                        "source %s: polling again after the reload (credentials re-checked)", previous.name
                    )
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
            if previous is None:
                self.source_added_at[source_settings.name] = self.clock.now()
        for name in set(self.source_added_at) - set(self.coordinators):
            del self.source_added_at[name]
        self.config = config
        self.rules = RulesStage(self.db, settings, self.clock, self.metrics)
        self.spikes = SpikeStage(self.db, settings, self.clock, self.metrics)
        self.delivery = DeliveryStage(
            self.db,
            settings,
            self._watched,
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
            self._classifier_generation += 1
        # a classifier that failed to load is tried again at once (the reload may have fixed it)
        self._classifier_retry_at = None
        slack = self.settings.slack
        buttons = bool(self.env.get(slack.token_env) and self.env.get(slack.app_token_env))
        for setting in _restart_only(self.settings, config.settings, buttons=buttons):
            log.warning("configuration reload: %s changed; restart repmon to apply it", setting)
        old_settings, old_delivery = self.settings, self.delivery
        self._build(config)
        # a receiver's rate limit (429 + Retry-After) still holds after a reload
        self.delivery.paused_until = old_delivery.paused_until
        if _notifier_settings(old_settings) != _notifier_settings(config.settings):
            self._rebuild_notifier(config.settings)
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
        try:
            stage: ClassifyStage | None = await self.classify_stage()
        except ClassifierUnavailableError as exc:
            # The other stages still run: alerts already due (ops alerts included) go out.
            summary.classifier_error = str(exc)
            stage = None
        while True:
            scored = await stage.drain() if stage is not None else 0
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
        # A heartbeat while it runs: its leases and claimed alerts stay its own (no duplicate sends).
        async with keep_alive(self.db, self.owner, "once", self.clock, self.settings.daemon.lease_ttl):
            polls = await self.poll_all()
            summary = await self.process()
        summary.polls = polls
        return summary

    async def heartbeat(self, roles: str = "all") -> None:
        """Tell other daemons this one is alive (its leases and claims stay its own).

        Heartbeat rows of daemons silent for :data:`HEARTBEAT_KEEP` are deleted on the way, so
        ``repmon status`` does not list every daemon that ever ran.
        """
        from monitor.outbox import heartbeat

        now = self.clock.now()
        await asyncio.to_thread(heartbeat, self.db, self.owner, roles, now)
        await asyncio.to_thread(self._forget_old_heartbeats, now - HEARTBEAT_KEEP)

    def _forget_old_heartbeats(self, before: datetime) -> None:
        with self.db.session() as session:
            session.execute(
                delete(models.DaemonHeartbeat).where(models.DaemonHeartbeat.heartbeat_at < before)
            )

    def _rebuild_notifier(self, settings: Settings) -> None:
        """A new receiver for changed alerts.*/slack.* settings; the old one closes when idle."""
        if self._notifier_factory is None:
            log.warning(
                "configuration reload: the alert receiver settings (alerts.console, alerts.jsonl_path, "
                "slack.*) changed but this runtime cannot rebuild its receiver; restart repmon to apply them"
            )
            return
        try:
            notifier = self._notifier_factory(settings)
        except Exception:
            log.exception(
                "configuration reload: the new alert receiver could not be built; keeping the old one"
            )
            return
        # A send in flight finishes on the old receiver; it is closed between processing steps.
        self._retired_notifiers.append(self.notifier)
        self.notifier = notifier
        self.health.delivery.recover()
        self._watched = WatchedNotifier(notifier, self.health.delivery, self.clock)
        self.delivery.notifier = self._watched
        self.delivery.paused_until = None  # a rate limit of the old receiver does not apply
        log.info("configuration reload: alerts now go to %s", notifier.name)

    async def close_retired_notifiers(self) -> None:
        """Close receivers replaced by a reload (call when no delivery is in flight)."""
        while self._retired_notifiers:
            notifier = self._retired_notifiers.pop()
            try:
                await notifier.aclose()
            except Exception:
                log.warning("closing the replaced alert receiver failed", exc_info=True)

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Hand the leases back, close sources, the notifier and the database; never raises.

        Best effort within ``timeout`` seconds in all: a step that fails or hangs (the database
        refuses connections or does not answer) is logged in one line and the next step still runs,
        so a stop always completes. Leases not handed back expire by themselves.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def step(what: str, work: Awaitable[object]) -> None:
            try:
                async with asyncio.timeout(max(0.5, deadline - loop.time())):
                    await work
            except TimeoutError:
                log.warning("shutdown: could not %s in time; going on without it", what)
            except Exception as exc:  # noqa: BLE001 - shutdown goes on whatever one step raised
                log.warning("shutdown: could not %s (%s); going on without it", what, describe(exc))

        await step("hand the source leases and heartbeat back", asyncio.to_thread(self._release_leases))
        for coordinator in self.coordinators.values():
            await step(f"close source {coordinator.name}", coordinator.source.aclose())
        await step("close replaced alert receivers", self.close_retired_notifiers())
        await step("close the alert receiver", self.notifier.aclose())
        await step("close the database connections", asyncio.to_thread(self.db.dispose))

    def _release_leases(self) -> None:
        """Give every source lease of this daemon up (clean shutdown), and its heartbeat: a daemon
        that stopped cleanly is neither 'alive' to the next ``repmon once`` nor 'stale' in status."""
        with self.db.session() as session:
            session.execute(
                update(models.SourceHealth)
                .where(models.SourceHealth.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )
            session.execute(delete(models.DaemonHeartbeat).where(models.DaemonHeartbeat.owner == self.owner))


def run_daemon(main: Coroutine[Any, Any, None], *, grace: float = THREAD_EXIT_GRACE) -> None:
    """Run the daemon's main coroutine; at the end, never wait forever for a hung database call.

    ``asyncio.run`` (and the interpreter at exit) would join every worker thread, and a thread
    inside a call to a database that stopped answering never returns. Threads still busy ``grace``
    seconds after the loop ended are left behind: one line is logged and the process exits 0.
    """
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="repmon-worker")
    loop.set_default_executor(executor)
    try:
        loop.run_until_complete(main)
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=grace))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()
    end = time.monotonic() + grace
    workers = list(getattr(executor, "_threads", ()))
    for thread in workers:
        thread.join(max(0.0, end - time.monotonic()))
    hung = [t for t in workers if t.is_alive()]
    if hung:
        log.warning("stopped, leaving %d database call(s) that do not return (the database hangs)", len(hung))
        logging.shutdown()
        os._exit(0)


def _notifier_settings(settings: Settings) -> tuple[object, ...]:
    """The settings :func:`monitor.notify.build_notifier` reads: a change rebuilds the receiver."""
    slack, alerts = settings.slack, settings.alerts
    return slack.token_env, slack.webhook_url_env, slack.api_url, alerts.console, alerts.jsonl_path


def _restart_only(old: Settings, new: Settings, *, buttons: bool) -> list[str]:
    """Changed settings that only take effect at start-up (a reload warns about each)."""
    changed = []
    if old.storage != new.storage:
        changed.append("storage (the database connection)")
    for name in ("health_host", "health_port"):
        if getattr(old.daemon, name) != getattr(new.daemon, name):
            changed.append(f"daemon.{name}")
    if new.digest.enabled and not old.digest.enabled:
        changed.append("digest.enabled (the digest scheduler starts with the daemon)")
    for name in ("app_token_env", "token_env", "api_url"):
        if buttons and getattr(old.slack, name) != getattr(new.slack, name):
            changed.append(
                f"slack.{name} for the Socket Mode listener of alert buttons (alerts use it at once)"
            )
    return changed


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    """(modification time, size) of ``path``; None without a path or a readable file."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
