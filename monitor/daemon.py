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
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from classifiers.base import ClassifierError
from config.loader import ConfigError, LoadedConfig, load_config
from monitor import models
from monitor.coordinator import _sleep_or_stop
from monitor.runtime import Runtime

__all__ = ["Daemon"]

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
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._extra = list(extra_tasks or [])
        self._mtime = config_path.stat().st_mtime if config_path and config_path.exists() else None
        self.health_port: int | None = None

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
        everything = [*tasks, *self._source_tasks.values()]
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
        """Validate the config file and apply it; a bad edit keeps the old config running."""
        if self.config_path is None:
            return False
        try:
            config: LoadedConfig = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error("configuration reload (%s) refused, keeping the running configuration:\n%s", why, exc)
            return False
        removed = self.runtime.reload(config)
        for name in removed:
            task = self._source_tasks.pop(name, None)
            if task is not None:
                task.cancel()
        for name, task in list(self._source_tasks.items()):
            if name not in self.runtime.coordinators or task.done():
                self._source_tasks.pop(name).cancel()
        if "poll" in self.roles:
            self._start_sources()
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
            self._source_tasks[name] = asyncio.create_task(
                coordinator.run(self.stop, on_stored=self.work.set, start_spread=spread),
                name=f"source:{name}",
            )

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
        """Beat three times per lease_ttl so a live daemon is never mistaken for a dead one."""
        roles = ",".join(sorted(self.roles))
        while not self.stop.is_set():
            await _sleep_or_stop(self.runtime.clock, self.runtime.settings.daemon.lease_ttl / 3, self.stop)
            try:
                await self.runtime.heartbeat(roles)
            except Exception:
                log.exception("heartbeat failed (database unreachable?); retrying")

    async def _process_loop(self) -> None:
        rt = self.runtime
        interval = rt.settings.daemon.classify_interval
        failing = False
        while not self.stop.is_set():
            self.work.clear()
            try:
                busy = await self._process_step()
                await asyncio.to_thread(self._update_gauges)
            except ClassifierError:
                busy = False
            except Exception:
                # Logged when it starts failing (e.g. the database is down), not every second.
                if not failing:
                    log.exception("processing step failed; retrying every %.1fs", interval)
                else:
                    log.debug("processing step still failing", exc_info=True)
                failing = True
                busy = False
            else:
                if failing:
                    log.info("processing works again")
                    failing = False
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
            done += await rt.classify.run_batch()
        if "alert" in self.roles:
            done += await asyncio.to_thread(rt.rules.run_batch)
            done += await asyncio.to_thread(rt.spikes.run)
            await rt.delivery.reconcile()
            done += await rt.delivery.run_batch()
        return done > 0

    def _update_gauges(self) -> None:
        rt = self.runtime
        with rt.db.read_session() as session:
            pending = session.execute(
                select(func.count()).where(models.Mention.classify_state == "pending")
            ).scalar_one()
            outbox = session.execute(
                select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
            ).scalar_one()
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
            report = await asyncio.to_thread(health_report, self.runtime)
        except SQLAlchemyError as exc:
            # The daemon is alive but cannot reach its database: say so (503), not a bare 500.
            problem = type(getattr(exc, "orig", None) or exc).__name__
            down = {
                "status": "down",
                "daemon": self.runtime.owner,
                "error": f"database unreachable ({problem})",
            }
            return web.json_response(down, status=503)
        status = 200 if report["status"] == "ok" else 503
        return web.json_response(report, status=status)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.runtime.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def health_report(runtime: Runtime) -> dict[str, object]:
    """Health of the daemon and each source, as served on /healthz and shown by ``repmon status``."""
    with runtime.db.read_session() as session:
        healths = list(session.execute(select(models.SourceHealth)).scalars())
        pending = session.execute(
            select(func.count()).where(models.Mention.classify_state == "pending")
        ).scalar_one()
        outbox = session.execute(
            select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
        ).scalar_one()
        failed = session.execute(select(func.count()).where(models.Alert.status == "failed")).scalar_one()
    sources = {
        h.source_name: {
            "kind": h.kind,
            "last_success_at": h.last_success_at.isoformat() if h.last_success_at else None,
            "last_error": h.last_error,
            "consecutive_failures": h.consecutive_failures,
            "disabled": h.disabled_reason,
            "mentions_total": h.mentions_total,
        }
        for h in healths
        if h.source_name in runtime.coordinators
    }
    degraded = any(
        h.disabled_reason or h.consecutive_failures >= 3
        for h in healths
        if h.source_name in runtime.coordinators
    )
    return {
        "status": "degraded" if degraded else "ok",
        "daemon": runtime.owner,
        "queues": {"classify": pending, "outbox": outbox, "failed_alerts": failed},
        "sources": sources,
    }


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
