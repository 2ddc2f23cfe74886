"""``repmon run``: the long-running daemon.

One task per source coordinator, one processing task (classify → rules → spikes → delivery), the
digest scheduler and the health/metrics server. SIGTERM/SIGINT stop it within the configured
shutdown timeout; SIGHUP (or a changed config file) reloads the configuration after validating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from classifiers.base import ClassifierError
from config.loader import ConfigError, LoadedConfig, load_config
from monitor import models
from monitor.coordinator import SourceCoordinator, _sleep_or_stop
from monitor.health import health_report, queue_depths
from monitor.logs import FailureLog
from monitor.runtime import ClassifierUnavailableError, Runtime
from sources.text import scrub

__all__ = ["Daemon", "health_report"]

log = logging.getLogger("repmon.daemon")

#: How often the config file's modification time is checked for live reload.
CONFIG_WATCH_SECONDS = 5.0


class Daemon:
    """Runs a :class:`Runtime` until stopped."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        config_path: Path | None = None,
        roles: frozenset[str] = frozenset({"poll", "classify", "alert"}),
        extra_tasks: Sequence[Callable[[asyncio.Event], Awaitable[None]]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.config_path = config_path
        self.roles = roles
        self.stop = asyncio.Event()
        #: Set when a poll stored new mentions: the processing loop wakes at once instead of idling.
        self.work = asyncio.Event()
        #: Per source: its task, the coordinator it runs and the event that stops it between polls.
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._source_runs: dict[str, tuple[SourceCoordinator, asyncio.Event]] = {}
        #: Tasks of replaced or removed sources that finish their poll in flight before they end.
        self._retiring: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()
        self._extra = list(extra_tasks or [])
        self._mtime = config_path.stat().st_mtime if config_path and config_path.exists() else None
        self.health_port: int | None = None
        #: When a heartbeat or processing step last failed to reach the database (see reconcile).
        self._database_failed_at: datetime | None = None

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or ``stop``), then shut down within the timeout."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._request_stop, sig.name)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        runner = await self._start_health()
        await self.runtime.heartbeat(",".join(sorted(self.roles)))
        await self.runtime.delivery.reconcile()
        tasks: list[asyncio.Task[object]] = []
        if "poll" in self.roles:
            self._start_sources()
        if self.roles & {"classify", "alert"}:
            tasks.append(asyncio.create_task(self._process_loop(), name="process"))
        if self.config_path is not None:
            tasks.append(asyncio.create_task(self._watch_config(), name="config-watch"))
        tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        for extra in self._extra:
            tasks.append(asyncio.create_task(_run_extra(extra, self.stop), name="extra"))
        log.info(
            "repmon running as %s: %d sources (at most %d polling at once), %d brands, roles %s",
            self.runtime.owner,
            len(self.runtime.coordinators),
            self.runtime.settings.daemon.max_concurrent_polls,
            len(self.runtime.settings.brands),
            ",".join(sorted(self.roles)),
        )
        await self.stop.wait()
        timeout = self.runtime.settings.daemon.shutdown_timeout
        log.info("shutting down (finishing in-flight work, at most %.0fs)", timeout)
        for _coordinator, source_stop in self._source_runs.values():
            source_stop.set()
        everything = [*tasks, *self._source_tasks.values(), *self._retiring]
        _done, pending = await asyncio.wait(everything, timeout=timeout) if everything else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
            log.warning("%d tasks did not finish within %.0fs and were cancelled", len(pending), timeout)
        if runner is not None:
            await runner.cleanup()
        await self.runtime.aclose()
        log.info("stopped")

    def _request_stop(self, why: str = "stop") -> None:
        if not self.stop.is_set():
            log.info("received %s", why)
            self.stop.set()

    def _request_reload(self) -> None:
        asyncio.get_running_loop().create_task(self.reload("SIGHUP"))

    async def reload(self, why: str) -> bool:
        """Validate the config file and apply it; a bad edit keeps the old config running.

        Unchanged sources keep polling with the new watchlist and settings; a changed source's
        old task finishes the poll it is in (its store transaction included) and then the new one
        starts; a removed or disabled source stops after its poll in flight.
        """
        if self.config_path is None:
            return False
        async with self._reload_lock:
            try:
                config: LoadedConfig = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                log.error(
                    "configuration reload (%s) refused, keeping the running configuration:\n%s", why, exc
                )
                return False
            self.runtime.reload(config)
            stopped: list[SourceCoordinator] = []
            for name, (coordinator, source_stop) in list(self._source_runs.items()):
                if self.runtime.coordinators.get(name) is coordinator:
                    continue
                source_stop.set()  # between polls: a poll in flight completes first
                del self._source_runs[name]
                task = self._source_tasks.pop(name)
                if task.done():
                    stopped.append(coordinator)  # it had ended (disabled): closed here
                else:
                    self._retiring.add(task)  # closes its source itself when it ends
                    task.add_done_callback(self._retiring.discard)
            if "poll" in self.roles and not self.stop.is_set():
                self._start_sources()
            for coordinator in stopped:
                await self._close_retired(coordinator)
            return True

    def _start_sources(self) -> None:
        d = self.runtime.settings.daemon
        # More sources than may poll at once: spread their first polls instead of queueing them all
        # at the same instant (and keeping them bunched up on every interval after).
        spread = d.startup_spread if len(self.runtime.coordinators) > d.max_concurrent_polls else 0.0
        for name, coordinator in self.runtime.coordinators.items():
            task = self._source_tasks.get(name)
            if task is not None and not task.done():
                continue
            # A replaced coordinator of the same source may still finish its last poll: wait for it,
            # so two polls of one source never run at once (same cursor, same lease).
            before = [t for t in self._retiring if t.get_name() == f"source:{name}"]
            source_stop = asyncio.Event()
            self._source_runs[name] = (coordinator, source_stop)
            self._source_tasks[name] = asyncio.create_task(
                self._run_source(coordinator, source_stop, before, spread), name=f"source:{name}"
            )

    async def _run_source(
        self,
        coordinator: SourceCoordinator,
        stop: asyncio.Event,
        before: list[asyncio.Task[None]],
        spread: float,
    ) -> None:
        """Run one coordinator until its stop event; a coordinator replaced by a reload is closed.

        An unexpected exception out of a poll (a bug, a record the database refuses) never ends the
        task: it is logged with its traceback, recorded as a failed poll of the source (so /healthz
        and ``repmon status`` show it), and polling resumes after the backoff.
        """
        try:
            if before:
                await asyncio.wait(before)
            while not stop.is_set():
                try:
                    await coordinator.run(stop, on_stored=self.work.set, start_spread=spread)
                except Exception as exc:
                    spread = 0.0
                    log.exception(
                        "source %s: poll failed unexpectedly; retrying after backoff", coordinator.name
                    )
                    delay = await self._source_failed(coordinator, exc)
                    await _sleep_or_stop(self.runtime.clock, delay, stop)
                else:
                    break  # stopped, or the source disabled itself
        finally:
            if self.runtime.coordinators.get(coordinator.name) is not coordinator:
                await self._close_retired(coordinator)

    async def _source_failed(self, coordinator: SourceCoordinator, exc: Exception) -> float:
        """Record an unexpected exception as a failed poll (health row, metrics); the wait before retrying."""
        # The message goes to the health row: no lone surrogates (the database refuses them).
        problem = RuntimeError(scrub(f"{type(exc).__name__}: {exc}"))
        try:
            outcome = await asyncio.to_thread(
                coordinator._failed, "unexpected", problem, coordinator.clock.now()
            )
        except Exception:  # the database is away too: retry at the backoff anyway
            log.warning("source %s: could not record the failed poll", coordinator.name, exc_info=True)
            coordinator.failures += 1
            return coordinator.backoff_delay()
        return outcome.delay

    async def _close_retired(self, coordinator: SourceCoordinator) -> None:
        """Close a coordinator's source after a reload replaced or removed it."""
        try:
            if coordinator.name not in self.runtime.coordinators:
                await asyncio.to_thread(coordinator.release_lease)
            await coordinator.source.aclose()
        except Exception:
            log.warning("closing the replaced source %s failed", coordinator.name, exc_info=True)

    async def _watch_config(self) -> None:
        assert self.config_path is not None
        while not self.stop.is_set():
            await _sleep_or_stop(self.runtime.clock, CONFIG_WATCH_SECONDS, self.stop)
            try:
                mtime = self.config_path.stat().st_mtime
            except OSError:
                continue
            if self._mtime is not None and mtime != self._mtime:
                self._mtime = mtime
                await self.reload("file changed")
            self._mtime = mtime

    async def _heartbeat_loop(self) -> None:
        """Beat three times per lease_ttl so a live daemon is never mistaken for a dead one.

        After a failed beat (the database is away) it tries every second, so the others see this
        daemon alive as soon as the database is back, not up to lease_ttl/3 later.
        """
        roles = ",".join(sorted(self.roles))
        beats = FailureLog(log, "heartbeat")  # one line when it starts failing, one on recovery
        failing = False
        while not self.stop.is_set():
            ttl = self.runtime.settings.daemon.lease_ttl
            await _sleep_or_stop(self.runtime.clock, min(ttl / 3, 1.0) if failing else ttl / 3, self.stop)
            try:
                await self.runtime.heartbeat(roles)
            except Exception as exc:  # noqa: BLE001 - logged once by FailureLog, retried next beat
                self._database_failed()
                beats.failed(exc, "retrying every second")
                failing = True
            else:
                beats.succeeded()
                failing = False

    def _database_failed(self) -> None:
        """Remember that the database was out of reach now (stale heartbeats prove nothing for a while)."""
        self._database_failed_at = self.runtime.clock.now()
        self.runtime.delivery.database_failed(self._database_failed_at)

    async def _process_loop(self) -> None:
        try:
            await self._process_forever()
        finally:
            # /healthz says so if the loop ever ends while the daemon is meant to run
            self.runtime.health.loop_stopped = not self.stop.is_set()

    async def _process_forever(self) -> None:
        rt = self.runtime
        # one line when it starts failing (e.g. the database is down, no traceback), one on recovery
        steps = FailureLog(log, "processing step")
        while not self.stop.is_set():
            interval = rt.settings.daemon.classify_interval
            self.work.clear()
            # no delivery is in flight between steps: receivers replaced by a reload can close
            await rt.close_retired_notifiers()
            rt.health.step_started_at = rt.clock.now()
            try:
                busy = await self._process_step()
                await asyncio.to_thread(self._update_gauges)
            except Exception as exc:  # noqa: BLE001 - logged once by FailureLog, retried next step
                if isinstance(exc, SQLAlchemyError | OSError):
                    self._database_failed()
                steps.failed(exc, f"retrying every {interval:.1f}s")
                busy = False
            else:
                steps.succeeded()
            finally:
                rt.health.step_started_at = None
                rt.health.step_finished_at = rt.clock.now()
            if not busy:
                await _sleep_or_stop(rt.clock, await self._idle_for(interval), self.stop, self.work)

    async def _idle_for(self, interval: float) -> float:
        """How long to idle: the interval, or less when an outbox alert falls due sooner."""
        if "alert" not in self.roles:
            return interval
        try:
            due = await asyncio.to_thread(self.runtime.delivery.next_due)
        except Exception:  # noqa: BLE001 - the step itself reports database trouble
            return interval
        if due is None:
            return interval
        return min(interval, max(0.0, (due - self.runtime.clock.now()).total_seconds()))

    async def _process_step(self) -> bool:
        rt = self.runtime
        done = 0
        if "classify" in self.roles:
            done += await self._classify_step()
        if "alert" in self.roles:
            done += await asyncio.to_thread(rt.rules.run_batch)
            done += await asyncio.to_thread(rt.spikes.run)
            if self._database_failed_at is not None:  # a reload builds a new stage: tell it again
                rt.delivery.database_failed(self._database_failed_at)
            await rt.delivery.reconcile()
            done += await rt.delivery.run_batch()
        return done > 0

    async def _classify_step(self) -> int:
        """Score one batch; a classifier that cannot load or score leaves the alert stages running."""
        rt = self.runtime
        try:
            stage = await rt.classify_stage()
        except ClassifierUnavailableError:
            return 0  # logged, counted and retried with backoff by the runtime; on /healthz
        try:
            scored = await stage.run_batch()
        except ClassifierError as exc:
            rt.classifier_failed(exc)  # the stage counted it and rescheduled the batch
            return 0
        if scored:
            rt.classifier_ok()
        return scored

    def _update_gauges(self) -> None:
        rt = self.runtime
        with rt.db.read_session() as session:
            pending, outbox = queue_depths(session)
            healths = list(session.execute(select(models.SourceHealth)).scalars())
        rt.metrics.queue_depth.labels("classify").set(pending)
        rt.metrics.queue_depth.labels("outbox").set(outbox)
        now = rt.clock.now()
        for h in healths:
            if h.last_success_at is not None:
                rt.metrics.source_lag.labels(h.source_name).set((now - h.last_success_at).total_seconds())

    # -- health ----------------------------------------------------------------------------

    async def _start_health(self) -> web.AppRunner | None:
        d = self.runtime.settings.daemon
        if d.health_port is None:
            return None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, d.health_host, d.health_port)
        try:
            await site.start()
        except OSError as exc:
            log.error(
                "health server could not listen on %s:%s (%s); continuing without it",
                d.health_host,
                d.health_port,
                exc,
            )
            await runner.cleanup()
            return None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.health_port = sockets[0].getsockname()[1] if sockets else d.health_port
        log.info("health and metrics on http://%s:%s/healthz and /metrics", d.health_host, self.health_port)
        return runner

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            report = await self.runtime.health_probe.async_report()
        except TimeoutError:
            # A database that hangs (rather than refusing connections) must not hang /healthz too.
            down = {
                "status": "down",
                "daemon": self.runtime.owner,
                "error": f"database not answering within {self.runtime.health_probe.timeout:g}s",
            }
            return web.json_response(down, status=503)
        except SQLAlchemyError as exc:
            # The daemon is alive but cannot reach its database: say so (503), not a bare 500.
            problem = type(getattr(exc, "orig", None) or exc).__name__
            down = {
                "status": "down",
                "daemon": self.runtime.owner,
                "error": f"database unreachable ({problem})",
            }
            return web.json_response(down, status=503)
        # 503 only when repmon itself cannot do its job; failing sources are 200 "degraded"
        status = 503 if report["status"] == "unhealthy" else 200
        return web.json_response(report, status=status)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.runtime.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _run_extra(task: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run an extra daemon task (digest scheduler); a crash is logged, never fatal."""
    try:
        await task(stop)
    except Exception:
        log.exception("background task failed; the daemon keeps running without it")


def socket_mode_task(runtime: Runtime) -> Callable[[asyncio.Event], Awaitable[None]] | None:
    """The Socket Mode listener for alert buttons, when both Slack tokens are configured."""
    slack = runtime.settings.slack
    bot, app_token = runtime.env.get(slack.token_env), runtime.env.get(slack.app_token_env)
    if not bot or not app_token:
        return None

    async def listen(stop: asyncio.Event) -> None:
        from alerts.interactions import SocketModeInteractions
        from monitor.feedback import make_action_handler

        client = SocketModeInteractions(
            app_token, bot, slack.api_url, on_action=make_action_handler(runtime.db, runtime.delivery)
        )
        await client.start()
        log.info("listening for alert buttons over Socket Mode")
        try:
            await stop.wait()
        finally:
            await client.aclose()

    return listen
