"""Storage faults under a running in-process daemon: SQLite busy, SQLite full (page limit and a
real full disk), and a PostgreSQL restart. Each stage logs, retries and carries on; the daemon
never loses a task; afterwards every mention is stored, scored and alerted exactly once and the
database is intact.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor import db as monitor_db
from monitor import models
from monitor.clock import FakeClock
from monitor.daemon import Daemon, health_report
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import T0, load, post, write_jsonl

REPO = Path(__file__).resolve().parents[1]
TEXTS = (
    "Acme Rail staff were brilliant and friendly, thanks {n}",
    "Acme Rail delay again, terrible service, refund please {n}",
    "Acme Rail timetable changes {n}",
)


def _replay(path: Path, n: int) -> Path:
    return write_jsonl(path, [post(i, TEXTS[i % 3].format(n=i), minutes=i * 0.5) for i in range(n)])


def _config(db_url: str, replay: Path, *, batch: int = 25, health_port: str = "null") -> str:
    return f"""
storage:
  url: {db_url}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
sources:
  - name: replay
    type: replay
    path: {replay}
    batch_size: {batch}
    interval: 1s
    jitter: 0
alerts:
  group_wait: 0s
  group_interval: 0s
  max_per_minute: 100000
spikes:
  clock: data
daemon:
  health_port: {health_port}
  classify_interval: 0.05
  lease_ttl: 3s
"""


@dataclass
class Running:
    """An in-process daemon under test."""

    runtime: Runtime
    daemon: Daemon
    task: asyncio.Task[None]
    notifier: CapturingNotifier

    def counts(self) -> dict[str, int]:
        """Stored, unscored, unruled mentions and undelivered alerts."""
        with self.runtime.db.session() as s:
            return {
                "mentions": s.execute(select(func.count()).select_from(models.Mention)).scalar_one(),
                "pending": s.execute(
                    select(func.count()).where(models.Mention.classify_state == "pending")
                ).scalar_one(),
                "unruled": s.execute(
                    select(func.count()).where(
                        models.Mention.classify_state == "scored", models.Mention.rules_done.is_(False)
                    )
                ).scalar_one(),
                "outbox": s.execute(
                    select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
                ).scalar_one(),
            }

    def alive(self) -> None:
        """Every daemon task (sources, processing, heartbeat) still runs."""
        assert not self.task.done(), self.task
        for name, task in self.daemon._source_tasks.items():
            assert not task.done(), f"source task {name} died: {task.exception() if task.done() else ''}"
        tasks = {t.get_name(): t for t in asyncio.all_tasks()}
        for name in ("process", "heartbeat"):
            assert name in tasks and not tasks[name].done(), f"task {name} died"


@contextlib.asynccontextmanager
async def running(db_url: str, replay: Path, **kw: Any) -> AsyncIterator[Running]:
    """Start an in-process daemon (real clock) and stop it at the end."""
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(_config(db_url, replay, **kw)), notifier=notifier, classifier=StubClassifier(), env={}
    )
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    try:
        yield Running(runtime, daemon, task, notifier)
    finally:
        daemon.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=20)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` (which may fail while the database is down) until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await asyncio.to_thread(predicate):
                return
        except Exception:  # the database may be unreachable right now
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def done(run: Running, total: int) -> Callable[[], bool]:
    """Everything stored, scored, evaluated and delivered."""

    def check() -> bool:
        c = run.counts()
        return c["mentions"] == total and c["pending"] == 0 and c["unruled"] == 0 and c["outbox"] == 0

    return check


def assert_exactly_once(run: Running, total: int) -> None:
    """Every replayed mention stored and scored once; every alert delivered once."""
    with run.runtime.db.session() as s:
        ids = s.execute(select(models.Mention.external_id)).scalars().all()
        scores = s.execute(select(func.count()).select_from(models.Score)).scalar_one()
        sent = s.execute(select(models.Alert.key).where(models.Alert.status == "sent")).scalars().all()
        statuses = set(s.execute(select(models.Alert.status)).scalars())
    assert len(ids) == len(set(ids)) == total
    assert scores == total
    assert statuses == {"sent"}
    assert sent and sorted(run.notifier.keys) == sorted(sent), "each alert delivered exactly once"


def integrity_ok(path: Path) -> None:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()


# -- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 ms busy timeout instead of 30 s, so holding a lock 'beyond the timeout' is quick."""
    monkeypatch.setattr(monitor_db, "SQLITE_BUSY_TIMEOUT_MS", 200)


@pytest.mark.slow
@pytest.mark.usefixtures("short_busy_timeout")
async def test_sqlite_write_lock_beyond_busy_timeout_is_survived(tmp_path: Path) -> None:
    total = 600
    path = tmp_path / "busy.db"
    replay = _replay(tmp_path / "replay.jsonl", total)
    async with running(f"sqlite:///{path}", replay) as run:
        await wait_for(lambda: run.counts()["mentions"] >= 100, 30, "first mentions")
        # Another process takes the write lock and keeps it for 3 s (15x the busy timeout).
        stored_before = run.counts()["mentions"]
        blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
        blocker.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(3)
        blocker.execute("ROLLBACK")
        blocker.close()
        errors = run.runtime.metrics.source_errors.labels("replay", "storage")._value.get()
        assert errors >= 1, "the failed polls are counted"
        run.alive()
        await wait_for(done(run, total), 60, "the replay to finish after the lock was released")
        run.alive()
        assert stored_before < total
        assert_exactly_once(run, total)
        assert health_report(run.runtime)["status"] == "ok"
    integrity_ok(path)


async def test_health_answers_while_another_process_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    replay = write_jsonl(tmp_path / "p.jsonl", [post(1, "Acme Rail is brilliant", minutes=1)])
    runtime = Runtime(
        load(_config(f"sqlite:///{path}", replay)),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        env={},
    )
    upgrade(runtime.db)
    await runtime.run_once()
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # a long write elsewhere (another daemon, a CLI command)
        blocker.execute("UPDATE source_health SET mentions_total = 99")
        started = time.monotonic()
        report = await asyncio.wait_for(asyncio.to_thread(health_report, runtime), 5)
        assert time.monotonic() - started < 2  # not the 30 s busy timeout
        assert report["sources"]["replay"]["mentions_total"] == 1  # the last committed state
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await runtime.aclose()


@pytest.mark.slow
async def test_sqlite_full_fails_cleanly_and_resumes_when_space_is_freed(tmp_path: Path) -> None:
    """SQLITE_FULL (max_page_count reached): polls fail, the cursor stays, nothing half-written."""
    total = 1500
    path = tmp_path / "full.db"
    replay = _replay(tmp_path / "replay.jsonl", total)
    limit = {"pages": 0}

    async with running(f"sqlite:///{path}", replay, batch=50) as run:
        engine = run.runtime.db.engine

        @event.listens_for(engine, "checkout")
        def _cap(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if limit["pages"]:
                dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

        await wait_for(lambda: run.counts()["mentions"] >= 100, 30, "first mentions")
        # "The disk is full": the file may grow by only a few more pages.
        size = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
        limit["pages"] = size + 8
        await wait_for(
            lambda: run.runtime.metrics.source_errors.labels("replay", "storage")._value.get() >= 3,
            30,
            "polls failing with SQLITE_FULL",
        )
        run.alive()
        # Nothing half-written: the cursor covers exactly the stored lines of the replay.
        with run.runtime.db.session() as s:
            stored = s.execute(select(func.count()).select_from(models.Mention)).scalar_one()
            line = s.execute(
                select(models.SourceCursor.value).where(
                    models.SourceCursor.source_name == "replay", models.SourceCursor.key == "line"
                )
            ).scalar_one()
        assert int(line) == stored < total
        integrity_ok(path)
        # Space is freed: the daemon carries on by itself.
        limit["pages"] = 1_000_000
        await wait_for(done(run, total), 60, "the replay to finish after space was freed")
        run.alive()
        assert_exactly_once(run, total)
    integrity_ok(path)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
async def test_real_disk_full_then_freed(tmp_path: Path, tiny_disk: Path) -> None:
    total = 2000
    path = tiny_disk / "repmon.db"
    replay = _replay(tmp_path / "replay.jsonl", total)
    filler = tiny_disk / "filler"
    async with running(f"sqlite:///{path}", replay, batch=50) as run:
        await wait_for(lambda: run.counts()["mentions"] >= 100, 30, "first mentions")
        # Fill the disk up to the last few KiB.
        free = shutil.disk_usage(tiny_disk).free
        # The suppress must enclose the file: closing it flushes, and that may hit ENOSPC too.
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            handle.write(b"\0" * max(0, free - 16 * 1024))
        await wait_for(
            lambda: run.runtime.metrics.source_errors.labels("replay", "storage")._value.get() >= 2,
            60,
            "polls failing on the full disk",
        )
        run.alive()
        assert run.counts()["mentions"] < total
        filler.unlink()
        await wait_for(done(run, total), 90, "the replay to finish after the disk was freed")
        run.alive()
        assert_exactly_once(run, total)
    integrity_ok(path)


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
    )
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnPostgres:
    """A private PostgreSQL instance (its own port and directory) that a test may stop and start."""

    url: str
    data: Path
    port: int
    bin: Path

    def _ctl(self, *args: str) -> None:
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        if os.geteuid() == 0:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (immediate = like a crash: connections cut, no checkpoint)."""
        self._ctl("stop", "-m", mode)

    def start(self) -> None:
        """Start it again with the same data directory."""
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data.parent} -c fsync=off -c max_connections=200"
        self._ctl("-l", str(self.data.parent / "server.log"), "-w", "-o", opts, "start")


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    """Start a throwaway PostgreSQL with .ci/pg.sh on a free port and in a private directory."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    root = Path(f"/tmp/repmon-faults-pg-{os.getpid()}")
    port = _free_port()
    env = {**os.environ, "REPMON_PG_PORT": str(port), "REPMON_PG_DIR": str(root)}
    started = subprocess.run(
        [str(REPO / ".ci" / "pg.sh"), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if started.returncode != 0:
        pytest.skip(f"cannot start a private PostgreSQL: {started.stderr.strip()[-300:]}")
    try:
        yield OwnPostgres(started.stdout.strip(), root / "data", port, bin_dir)
    finally:
        subprocess.run(
            [str(REPO / ".ci" / "pg.sh"), "stop"], env=env, capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
async def test_postgres_restart_mid_run_reconnects_and_loses_nothing(
    own_postgres: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    total = 1500
    tmp = own_postgres.data.parent
    replay = _replay(tmp / "replay.jsonl", total)
    async with running(own_postgres.url, replay, batch=25, health_port="0") as run:
        await wait_for(lambda: run.counts()["mentions"] >= 300, 60, "first mentions")
        caplog.set_level(logging.INFO, logger="repmon")
        caplog.clear()
        own_postgres.stop("immediate")  # a crash: every connection is cut mid-transaction
        await asyncio.sleep(3)  # lease_ttl 3s: a heartbeat every second
        run.alive()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{run.daemon.health_port}") as client:
            answer = await client.get("/healthz", timeout=10)
        assert answer.status_code == 503 and answer.json()["status"] == "down", answer.text
        assert own_postgres.url.split("@")[0] not in answer.text  # no credentials in the answer
        own_postgres.start()
        await wait_for(done(run, total), 90, "the replay to finish after the restart")
        run.alive()
        assert run.runtime.metrics.source_errors.labels("replay", "storage")._value.get() >= 1
        assert_exactly_once(run, total)
        with run.runtime.db.session() as s:
            beat = s.execute(select(models.DaemonHeartbeat.heartbeat_at)).scalar_one()
        assert (run.runtime.clock.now() - beat).total_seconds() < 5, "heartbeats resumed"
    # One line when a failure starts and one when it recovers, per loop: nothing said twice.
    records = [r for r in caplog.records if r.name.startswith("repmon") and r.levelno >= logging.WARNING]
    said = collections.Counter((r.name, r.getMessage()) for r in records)
    assert said and max(said.values()) == 1, said.most_common(3)
    assert len([r for r in records if r.getMessage().startswith("heartbeat failed")]) == 1


async def test_heartbeat_outage_is_logged_once_and_its_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replay = _replay(tmp_path / "replay.jsonl", 1)
    runtime = Runtime(
        load(_config(f"sqlite:///{tmp_path / 'beat.db'}", replay)),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        clock=FakeClock(T0),
        env={},
    )
    upgrade(runtime.db)
    daemon = Daemon(runtime)
    beats = 0

    async def heartbeat(roles: str = "all") -> None:
        nonlocal beats
        beats += 1
        if beats <= 20:  # the database is down for twenty beats
            raise OperationalError("INSERT INTO daemon_heartbeats", {}, ConnectionError("connection refused"))
        if beats >= 25:
            daemon.stop.set()

    runtime.heartbeat = heartbeat  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.INFO, logger="repmon"):
            await asyncio.wait_for(daemon._heartbeat_loop(), 10)
    finally:
        await runtime.aclose()
    said = [r for r in caplog.records if r.name.startswith("repmon")]
    assert [r.levelname for r in said] == ["ERROR", "INFO"], [r.getMessage() for r in said]
    failed, recovered = said
    assert "connection refused" in failed.getMessage() and failed.exc_info is None  # one line
    assert "works again after 20 failed" in recovered.getMessage()


# -- a failed transaction inside a stage -----------------------------------------------------


async def _crisis_alerts(tmp_path: Path, fail_on: str | None) -> list[tuple[str, str]]:
    """Replay the crisis series; optionally the spike stage's transaction fails once at ``fail_on``."""
    from datetime import timedelta

    from sqlalchemy.exc import OperationalError

    from monitor.clock import FakeClock
    from tests.pipeline_util import T0
    from tests.test_faults_slack import crisis_posts

    tmp_path.mkdir(parents=True, exist_ok=True)
    replay = write_jsonl(tmp_path / "crisis.jsonl", crisis_posts())
    notifier = CapturingNotifier()
    runtime = Runtime(
        load(_config(f"sqlite:///{tmp_path / 'crisis.db'}", replay, batch=200)),
        notifier=notifier,
        classifier=StubClassifier(),
        clock=FakeClock(T0 + timedelta(days=10)),
        env={},
    )
    upgrade(runtime.db)
    stage = runtime.spikes
    original = stage._handle
    failed: list[str] = []

    def flaky_handle(session: Any, brand: str, metric: str, event: Any, bucket: Any) -> None:
        if event.kind == fail_on and not failed:
            failed.append(event.kind)
            raise OperationalError("INSERT INTO alerts", {}, Exception("database is locked"))
        original(session, brand, metric, event, bucket)

    stage._handle = flaky_handle  # type: ignore[method-assign]
    try:
        more = True
        while more:
            more = (await runtime.coordinators["replay"].poll_once()).more
            for _ in range(3):  # the daemon's loop simply runs the stages again after a failure
                try:
                    await runtime.process()
                    break
                except OperationalError:
                    continue
        assert bool(failed) == (fail_on is not None)
        return [(i.key, i.event) for n in notifier.sent for i in n.items if i.kind == "spike"]
    finally:
        await runtime.aclose()


@pytest.mark.slow
async def test_failed_spike_transaction_is_replayed_not_lost(tmp_path: Path) -> None:
    """A database error while the spike stage records a raise must not lose (or change) the crisis."""
    clean = await _crisis_alerts(tmp_path / "clean", None)
    assert (clean[0][1], clean[-1][1]) == ("raise", "resolve")
    for kind in ("raise", "escalate", "resolve"):
        assert await _crisis_alerts(tmp_path / kind, kind) == clean, kind
