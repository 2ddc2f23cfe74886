"""``repmon status``: source health and queue depths, read from the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from config.loader import LoadedConfig
from monitor import models
from monitor.db import Database, database_url

__all__ = ["print_status", "status_report"]


def status_report(config: LoadedConfig, now: datetime | None = None) -> dict[str, Any]:
    """Health of every source (and which daemon polls it), the daemons, queue depths, alert counts."""
    now = now or datetime.now(UTC)
    stale = now - timedelta(seconds=config.settings.daemon.lease_ttl)
    db = Database(database_url(config.settings.storage))
    try:
        with db.read_session() as session:
            beats = list(
                session.execute(
                    select(models.DaemonHeartbeat).order_by(models.DaemonHeartbeat.owner)
                ).scalars()
            )
            healths = list(
                session.execute(
                    select(models.SourceHealth).order_by(models.SourceHealth.source_name)
                ).scalars()
            )
            mentions = dict(
                session.execute(
                    select(models.Mention.classify_state, func.count()).group_by(
                        models.Mention.classify_state
                    )
                ).all()
            )
            alerts = dict(
                session.execute(select(models.Alert.status, func.count()).group_by(models.Alert.status)).all()
            )
            open_incidents = session.execute(
                select(
                    models.SpikeIncident.brand, models.SpikeIncident.metric, models.SpikeIncident.started_at
                ).where(models.SpikeIncident.status == "open")
            ).all()
    finally:
        db.dispose()
    off = {src.name for src in config.settings.sources if not src.enabled}
    switched_off = "switched off (enabled: false)"
    sources = [
        {
            "name": h.source_name,
            "kind": h.kind,
            "last_success_at": h.last_success_at,
            "consecutive_failures": h.consecutive_failures,
            "last_error": h.last_error,
            "last_error_at": h.last_error_at,
            "disabled": h.disabled_reason or (switched_off if h.source_name in off else None),
            "problem": _problem(h) or (switched_off if h.source_name in off else None),
            "mentions_total": h.mentions_total,
            "skipped_total": h.skipped_total,
            # a lease that ran out is nobody's (the next daemon to poll takes it)
            "lease_owner": h.lease_owner if h.lease_until is None or h.lease_until > now else None,
            "lease_until": h.lease_until,
            "next_poll_at": h.next_poll_at,
        }
        for h in healths
    ]
    daemons = [
        {
            "owner": b.owner,
            "roles": b.roles,
            "started_at": b.started_at,
            "last_heartbeat_at": b.heartbeat_at,
            "alive": b.heartbeat_at >= stale,
            "sources": sum(1 for s in sources if s["lease_owner"] == b.owner),
        }
        for b in beats
    ]
    seen = {h.source_name for h in healths}
    # configured but never polled (new, or no daemon running): listed, not left out
    sources += [
        {
            "name": src.name,
            "kind": src.type,
            "last_success_at": None,
            "consecutive_failures": 0,
            "last_error": None,
            "last_error_at": None,
            "disabled": switched_off if not src.enabled else None,
            "problem": switched_off if not src.enabled else "not polled yet",
            "mentions_total": 0,
            "skipped_total": 0,
            "lease_owner": None,
            "lease_until": None,
            "next_poll_at": None,
        }
        for src in config.settings.sources
        if src.name not in seen
    ]
    return {
        "sources": sources,
        "daemons": daemons,
        "queues": {
            "classify": int(mentions.get("pending", 0)),
            "outbox": int(alerts.get("pending", 0) + alerts.get("sending", 0)),
            "failed_alerts": int(alerts.get("failed", 0)),
        },
        "mentions": mentions,
        "alerts": alerts,
        "open_incidents": [{"brand": b, "metric": m, "since": s} for b, m, s in open_incidents],
    }


def _problem(health: models.SourceHealth) -> str | None:
    """What is wrong with a source now: why it is disabled, or its error while it keeps failing.

    ``last_error`` stays in the row after the source recovers (it is history, shown in ``--json``);
    a source whose last poll succeeded has no problem.
    """
    if health.disabled_reason:
        return health.disabled_reason
    if health.consecutive_failures > 0:
        return health.last_error
    return None


def print_status(report: dict[str, Any], out: Console) -> None:
    """Render the status report as tables."""
    # which daemon polls a source: only where there are leases (PostgreSQL with running daemons)
    leases = any(s["lease_owner"] for s in report["sources"])
    columns = ["source", "kind", "last success", "failures", "mentions", "skipped"]
    table = Table(*columns, *(["polled by"] if leases else []), "problem", title="Sources")
    for s in report["sources"]:
        table.add_row(
            s["name"],
            s["kind"],
            f"{s['last_success_at']:%Y-%m-%d %H:%M}" if s["last_success_at"] else "never",
            str(s["consecutive_failures"]),
            str(s["mentions_total"]),
            str(s["skipped_total"]),
            *([s["lease_owner"] or ""] if leases else []),
            s["problem"] or "",
        )
    out.print(table)
    if report["daemons"]:
        daemons = Table("daemon", "roles", "last heartbeat", "state", "sources", title="Daemons")
        for d in report["daemons"]:
            daemons.add_row(
                d["owner"],
                d["roles"],
                f"{d['last_heartbeat_at']:%Y-%m-%d %H:%M:%S}",
                "alive" if d["alive"] else "[yellow]stale[/]",
                str(d["sources"]),
            )
        out.print(daemons)
    q = report["queues"]
    out.print(
        f"queues: {q['classify']} mentions to score, {q['outbox']} alerts to send"
        + (f", [red]{q['failed_alerts']} failed[/] (repmon alerts failed)" if q["failed_alerts"] else "")
    )
    for name in ("mentions", "alerts"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report[name].items()))
        out.print(f"{name}: {counts or 'none'}")
    for inc in report["open_incidents"]:
        out.print(
            f"[red]open crisis[/] {inc['brand']} ({inc['metric']}) since {inc['since']:%Y-%m-%d %H:%M} UTC"
        )
