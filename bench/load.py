"""Load benchmarks of the whole pipeline: throughput, alert latency and daemon memory.

    .venv/bin/python bench/load.py throughput [--n 10000] [--backend sqlite|postgres] [--daemons 1|2]
                                              [--classifier lexicon|default] [--pg-url URL]
    .venv/bin/python bench/load.py latency [--rate 20] [--seconds 60] [--spike-rate 200] [--spike-seconds 10]
    .venv/bin/python bench/load.py memory [--n 100000] [--every 10000]
    .venv/bin/python bench/load.py all [--n 10000]     # every run recorded in docs/benchmarks.md

Mentions are the demo's realistic week (``examples/demo/mentions.jsonl``: Dutch and English posts
and reviews about two brands and a competitor, with a crisis), repeated with fresh ids, one week
later per copy, so they never deduplicate away.

* **throughput** runs real ``repmon run`` processes over four replay sources and measures, from
  the first stored mention, how long until every mention is stored, matched, scored and through
  the rules and spike stages (mentions/s). PostgreSQL comes from ``.ci/pg.sh`` on a private port
  unless ``--pg-url`` is given.
* **latency** runs the daemon in-process on SQLite with the real clock, a source releasing
  mentions at a steady rate (and a spike), and the mock Slack Web API from ``tests/mock_slack.py``
  (group_wait and group_interval 0 s): the time from a mention's ``ingested_at`` to the mock
  receiving its alert, p50/p99, steady vs spike.
* **memory** samples the RSS of one ``repmon run`` process every ``--every`` processed mentions
  over a long replay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.mock_slack (the mock Slack server is test tooling)

DEMO = REPO / "examples" / "demo" / "mentions.jsonl"
BRANDS = """
brands:
  - name: Spoorweg Noord
    handles: ["@spoorwegnoord", "@swn_helpt"]
    keywords: ["spoorweg noord", "#spoorwegnoord"]
    channels: ["#webcare-swn"]
  - name: Kettle & Co
    handles: ["@kettleandco"]
    keywords: ["kettle & co", "kettle and co", "kettleandco"]
    channels: ["#webcare-kettle"]
  - name: Spoorlijn Zuid
    keywords: ["spoorlijn zuid"]
    competitor: true
"""


# -- data ------------------------------------------------------------------------------------


def demo_records() -> list[dict[str, Any]]:
    """The demo week, in time order."""
    with DEMO.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def replay_records(n: int) -> list[dict[str, Any]]:
    """``n`` records: the demo week repeated, each copy a week later with its own ids."""
    base = demo_records()
    out: list[dict[str, Any]] = []
    copy = 0
    while len(out) < n:
        for record in base:
            if len(out) >= n:
                break
            created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
            out.append(
                {
                    **record,
                    "id": f"{record['id']}-w{copy}",
                    "url": f"{record['url']}-w{copy}",
                    "created_at": (created + timedelta(weeks=copy)).isoformat(),
                }
            )
        copy += 1
    return out


def write_replays(folder: Path, records: Sequence[dict[str, Any]], parts: int) -> list[Path]:
    """Split records round-robin over ``parts`` JSONL files (one replay source each)."""
    paths = [folder / f"replay-{i}.jsonl" for i in range(parts)]
    handles = [p.open("w", encoding="utf-8") for p in paths]
    try:
        for i, record in enumerate(records):
            handles[i % parts].write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        for h in handles:
            h.close()
    return paths


def config_text(
    db_url: str, replays: Sequence[Path], folder: Path, *, classifier: str, extra: str = ""
) -> str:
    """A daemon configuration for the benchmarks (alerts to a JSONL file, no health server)."""
    sources = "".join(
        f"  - name: replay-{i}\n    type: replay\n    path: {p}\n    batch_size: 500\n    interval: 1s\n"
        for i, p in enumerate(replays)
    )
    return f"""
storage:
  url: {db_url}
  url_env: null
{BRANDS}
sources:
{sources}
classifier:
  model: {classifier}
alerts:
  console: false
  jsonl_path: {folder / "alerts.jsonl"}
  max_per_minute: 1000
spikes:
  clock: data
digest:
  enabled: false
daemon:
  health_port: null
  lease_ttl: 10s
{extra}
"""


# -- processes and databases -----------------------------------------------------------------


def daemon_command(config: Path) -> list[str]:
    """``repmon run`` with this configuration."""
    return [sys.executable, "-m", "monitor.cli", "run", "--config", str(config), "--log-level", "WARNING"]


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start one daemon process with Slack credentials removed from its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        daemon_command(config), stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=REPO
    )


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then wait (SIGKILL after 30 s)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def upgrade(config: Path) -> None:
    """Create the schema before timing starts."""
    subprocess.run(
        [sys.executable, "-m", "monitor.cli", "db", "upgrade", "--config", str(config)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux)."""
    with Path(f"/proc/{pid}/status").open() as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Postgres:
    """A PostgreSQL server for one benchmark run (``.ci/pg.sh`` on a private port, or given)."""

    base_url: str
    env: dict[str, str] | None = None

    @classmethod
    @contextlib.contextmanager
    def start(cls, url: str | None) -> Iterator[Postgres]:
        """Use ``url`` or start a private server, stopping it afterwards."""
        if url:
            yield cls(url)
            return
        env = {**os.environ, "REPMON_PG_PORT": "54391", "REPMON_PG_DIR": "/tmp/repmon-bench-pg"}
        out = subprocess.run(
            [str(REPO / ".ci" / "pg.sh"), "start"], env=env, check=True, capture_output=True, text=True
        )
        try:
            yield cls(out.stdout.strip(), env)
        finally:
            subprocess.run([str(REPO / ".ci" / "pg.sh"), "stop"], env=env, check=False, capture_output=True)

    def fresh_database(self) -> str:
        """A new empty database; returns its URL."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"repmon_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)


class State:
    """Reads pipeline progress straight from the database (read-only, beside the daemons)."""

    QUERIES: ClassVar[dict[str, str]] = {
        "mentions": "SELECT count(*) FROM mentions",
        "pending": "SELECT count(*) FROM mentions WHERE classify_state = 'pending'",
        "unruled": "SELECT count(*) FROM mentions WHERE classify_state = 'scored' AND NOT rules_done",
        "alerts": "SELECT count(*) FROM alerts",
        "incidents": "SELECT count(*) FROM spike_incidents",
    }

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1]
            self._sqlite: sqlite3.Connection | None = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
            self._engine = None
        else:
            from sqlalchemy import create_engine

            self._sqlite = None
            self._engine = create_engine(url, pool_size=1)

    def read(self) -> dict[str, int]:
        """Current counts."""
        if self._sqlite is not None:
            return {k: int(self._sqlite.execute(q).fetchone()[0]) for k, q in self.QUERIES.items()}
        from sqlalchemy import text

        assert self._engine is not None
        with self._engine.connect() as conn:
            return {k: int(conn.execute(text(q)).scalar_one()) for k, q in self.QUERIES.items()}

    def close(self) -> None:
        """Release the connection."""
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._engine.dispose()


# -- throughput ------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One throughput run."""

    backend: str
    daemons: int
    classifier: str
    n: int
    first_s: float = 0.0
    stored_s: float = 0.0
    done_s: float = 0.0
    alerts: int = 0
    incidents: int = 0
    rss_max_mb: float = 0.0
    cpu_s: float = 0.0

    @property
    def per_cpu_s(self) -> float:
        """Mentions per CPU-second of the daemon processes (robust to other jobs on the machine)."""
        return self.n / self.cpu_s if self.cpu_s else 0.0

    @property
    def rate(self) -> float:
        """End-to-end mentions per second (first stored → everything through the rules)."""
        return self.n / self.done_s if self.done_s else 0.0

    @property
    def stored_rate(self) -> float:
        """Mentions stored (polled, matched, deduplicated) per second."""
        return self.n / self.stored_s if self.stored_s else 0.0


def _settled(state: State, key: str, *, quiet_s: float = 5.0, limit_s: float = 30.0) -> int:
    """``key``'s count once it stopped changing for ``quiet_s`` (the spike stage may trail the rules
    stage by a cycle); not part of the timed phase."""
    value, since, give_up = state.read()[key], time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() - since < quiet_s and time.monotonic() < give_up:
        time.sleep(0.5)
        now = state.read()[key]
        if now != value:
            value, since = now, time.monotonic()
    return int(value)


def run_throughput(
    n: int, backend: str, daemons: int, classifier: str, pg: Postgres | None, *, keep: bool = False
) -> Throughput:
    """Run ``daemons`` processes over ``n`` mentions until everything is through the rules stage."""
    folder = Path(tempfile.mkdtemp(prefix="repmon-bench-"))
    try:
        replays = write_replays(folder, replay_records(n), 4)
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'bench.db'}"
        else:
            assert pg is not None
            url = pg.fresh_database()
        configs = []
        for i in range(daemons):
            cfg = folder / f"repmon-{i}.yaml"
            cfg.write_text(config_text(url, replays, folder, classifier=classifier), encoding="utf-8")
            configs.append(cfg)
        upgrade(configs[0])
        result = Throughput(backend, daemons, classifier, n)
        state = State(url)
        log = folder / "daemons.log"
        launched = time.monotonic()
        procs = [start_daemon(cfg, log) for cfg in configs]
        first = stored = None
        deadline = launched + 120 + n / 20
        try:
            while time.monotonic() < deadline:
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"daemon exited with {p.returncode}:\n{log.read_text()[-3000:]}")
                    result.rss_max_mb = max(result.rss_max_mb, rss_mb(p.pid))
                counts = state.read()
                now = time.monotonic()
                if first is None and counts["mentions"] > 0:
                    first = now
                if stored is None and counts["mentions"] >= n:
                    stored = now
                if stored is not None and counts["pending"] == 0 and counts["unruled"] == 0:
                    assert first is not None
                    result.first_s = first - launched
                    result.stored_s = stored - first
                    result.done_s = now - first
                    result.alerts = counts["alerts"]
                    result.cpu_s = sum(cpu_seconds(p.pid) for p in procs)
                    result.incidents = _settled(state, "incidents")
                    break
                time.sleep(0.25)
            else:
                raise RuntimeError(f"not finished in time: {state.read()}\n{log.read_text()[-3000:]}")
        finally:
            stop(procs)
            state.close()
        return result
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


# -- latency ---------------------------------------------------------------------------------


@dataclass
class RateSource:
    """A source that releases mentions at a scheduled rate on the real clock (cursor = count)."""

    pool: list[dict[str, Any]]
    schedule: list[tuple[float, float]]  # (seconds, mentions per second) phases
    name: str = "stream"
    kind: ClassVar[str] = "replay"
    started: float = 0.0
    released_at: dict[str, float] = field(default_factory=dict)

    def due(self, elapsed: float) -> int:
        """How many mentions the schedule has released after ``elapsed`` seconds."""
        total, t = 0.0, 0.0
        for seconds, rate in self.schedule:
            span = min(seconds, max(0.0, elapsed - t))
            total += span * rate
            t += seconds
        return int(total)

    @property
    def total(self) -> int:
        """Mentions released by the end of the schedule."""
        return self.due(sum(s for s, _ in self.schedule))

    async def poll(self, cursor: dict[str, str]) -> Any:
        """Everything released since the cursor, stamped with the current time."""
        from sources.base import PollResult
        from sources.replay import mention_from_record

        if not self.started:
            self.started = time.monotonic()
        done = int(cursor.get("n", "0"))
        upto = min(self.total, self.due(time.monotonic() - self.started))
        now = datetime.now(UTC)
        mentions = []
        for i in range(done, upto):
            record = dict(self.pool[i % len(self.pool)])
            record["id"] = f"live-{i}"
            record["url"] = f"https://example.org/live/{i}"
            record["created_at"] = now.isoformat()
            # A reference number keeps recycled texts from being linked as copies (no alert).
            record["text"] = f"{record['text']} (ref {i})"
            mentions.append(mention_from_record(record, source_name=self.name))
        return PollResult(mentions, {"n": str(upto)})

    async def aclose(self) -> None:
        """Nothing to close."""


@dataclass
class Latency:
    """Alert latencies (seconds) by phase."""

    steady: list[float] = field(default_factory=list)
    spike: list[float] = field(default_factory=list)
    mentions: int = 0
    alerts: int = 0
    duration_s: float = 0.0


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def load_classifier(name: str) -> Any:
    """The named classifier (``lexicon``, ``default``, ...)."""
    from classifiers.registry import load_classifier as load

    return load(name)


@contextlib.contextmanager
def remote_slack(channels: dict[str, str]) -> Iterator[Any]:
    """The mock Slack Web API on its own thread and event loop, as a remote service would be."""
    from tests.mock_slack import MockSlack

    class TimedSlack(MockSlack):
        """The mock Slack API, noting when each message arrived."""

        def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
            result = super()._m_chat_postMessage(params)
            if result.get("ok"):
                self.messages[result["channel"]][-1]["received"] = time.time()
            return result

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="mock-slack", daemon=True)
    thread.start()
    slack = TimedSlack(channels=channels)
    asyncio.run_coroutine_threadsafe(slack.start(), loop).result(10)
    try:
        yield slack
    finally:
        asyncio.run_coroutine_threadsafe(slack.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def run_latency(
    rate: float, seconds: float, spike_rate: float, spike_seconds: float, classifier: str, batch: int = 64
) -> Latency:
    """Steady load, a spike in the middle, steady again; alerts to the mock Slack server."""
    from sqlalchemy import select

    from alerts.slack import SlackNotifier
    from config.loader import parse_config
    from monitor import models
    from monitor.daemon import Daemon
    from monitor.migrate import upgrade as db_upgrade
    from monitor.runtime import Runtime
    from tests.mock_slack import BOT_TOKEN

    folder = Path(tempfile.mkdtemp(prefix="repmon-latency-"))
    half = seconds / 2
    schedule = [(half, rate), (spike_seconds, spike_rate), (half, rate)]
    source = RateSource(demo_records(), schedule)
    empty = folder / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    channels = {"C0SWN00001": "webcare-swn", "C0KETTLE01": "webcare-kettle", "C0WEBCARE1": "webcare"}
    result = Latency()
    with remote_slack(channels) as slack:
        text = f"""
storage:
  url: sqlite:///{folder / "latency.db"}
  url_env: null
{BRANDS}
sources:
  - name: stream
    type: replay
    path: {empty}
    interval: 1s
    jitter: 0
classifier:
  model: {classifier}
  batch_size: {batch}
alerts:
  group_wait: 0s
  group_interval: 0s
  max_per_minute: 100000
slack:
  api_url: {slack.api_url}
digest:
  enabled: false
daemon:
  health_port: null
"""
        runtime = Runtime(
            parse_config(text, "latency.yaml"),
            notifier=SlackNotifier(BOT_TOKEN, slack.api_url),
            classifier=load_classifier(classifier),
            env={},
        )
        db_upgrade(runtime.db)
        runtime.classifier.classify(["warm up"], [None])
        runtime.coordinators["stream"].source = source
        daemon = Daemon(runtime)
        task = asyncio.create_task(daemon.run())
        started = time.monotonic()
        total = source.total
        try:
            while time.monotonic() - started < seconds + spike_seconds + 120:
                await asyncio.sleep(0.5)
                if source.started and time.monotonic() - source.started > seconds + spike_seconds + 1:
                    with runtime.db.session() as s:
                        stored = s.execute(
                            select(models.Mention.id).order_by(models.Mention.id.desc())
                        ).first()
                    if (
                        stored is not None
                        and runtime.delivery.pending() == 0
                        and runtime.classify.pending() == 0
                    ):
                        break
        finally:
            daemon.stop.set()
            await asyncio.wait_for(task, 30)
        result.duration_s = time.monotonic() - started
        from monitor.db import Database

        db = Database(f"sqlite:///{folder / 'latency.db'}")
        with db.session() as s:
            ingested = {
                a.key: (m.ingested_at.timestamp(), m.external_id)
                for a, m in s.execute(
                    select(models.Alert, models.Mention).join(
                        models.Mention, models.Alert.mention_id == models.Mention.id
                    )
                ).all()
            }
            result.mentions = len(s.execute(select(models.Mention.id)).all())
        db.dispose()
        spike_from = int(half * rate)
        spike_to = spike_from + int(spike_seconds * spike_rate)
        for message in slack.all_messages():
            keys = (message.get("metadata") or {}).get("event_payload", {}).get("keys", [])
            for key in keys:
                if key not in ingested:
                    continue  # spike alerts have no single mention
                at, external = ingested[key]
                number = int(external.split("-")[1])
                bucket = result.spike if spike_from <= number < spike_to else result.steady
                bucket.append(message["received"] - at)
                result.alerts += 1
        assert result.mentions == total, (result.mentions, total)
    shutil.rmtree(folder, ignore_errors=True)
    return result


# -- memory ----------------------------------------------------------------------------------


@dataclass
class Memory:
    """RSS samples of one daemon: (stored mentions, MiB)."""

    n: int
    samples: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


def run_memory(n: int, every: int, classifier: str) -> Memory:
    """One ``repmon run`` over a long replay on SQLite; RSS sampled every ``every`` mentions."""
    folder = Path(tempfile.mkdtemp(prefix="repmon-memory-"))
    try:
        replays = write_replays(folder, replay_records(n), 1)
        url = f"sqlite:///{folder / 'memory.db'}"
        cfg = folder / "repmon.yaml"
        cfg.write_text(config_text(url, replays, folder, classifier=classifier), encoding="utf-8")
        upgrade(cfg)
        state = State(url)
        log = folder / "daemon.log"
        proc = start_daemon(cfg, log)
        result = Memory(n)
        started = time.monotonic()
        next_mark = every
        try:
            while time.monotonic() - started < 120 + n / 20:
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                counts = state.read()
                # Processed: stored and through classification and the rules (or unmatched).
                processed = counts["mentions"] - counts["pending"] - counts["unruled"]
                done = counts["mentions"] >= n and processed >= n
                if processed >= next_mark or done:
                    result.samples.append((processed, rss_mb(proc.pid)))
                    next_mark = (processed // every + 1) * every
                if done:
                    break
                time.sleep(1.0)
            else:
                raise RuntimeError(f"not finished in time: {state.read()}")
            result.seconds = time.monotonic() - started
        finally:
            stop([proc])
            state.close()
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- reporting -------------------------------------------------------------------------------


def machine() -> str:
    """One line about the machine."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()}, {platform.system()}"


def print_throughput(rows: Sequence[Throughput]) -> None:
    """The throughput table."""
    print(
        "\n| backend | daemons | classifier | mentions | first stored s | stored/s | end-to-end/s "
        "| per daemon CPU-s | alerts | incidents | max RSS MiB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.backend} | {r.daemons} | {r.classifier} | {r.n:,} | {r.first_s:.1f} | {r.stored_rate:,.0f} | "
            f"**{r.rate:,.0f}** | {r.per_cpu_s:,.0f} | {r.alerts:,} | {r.incidents} | {r.rss_max_mb:.0f} |"
        )


def print_latency(r: Latency, rate: float, spike_rate: float) -> None:
    """The latency table."""
    print(
        f"\n{r.mentions:,} mentions, {r.alerts:,} per-mention alerts delivered to the mock Slack in {r.duration_s:.0f} s"
    )
    print("| phase | load | alerts | p50 s | p90 s | p99 s | max s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, values, load in (("steady", r.steady, rate), ("spike", r.spike, spike_rate)):
        print(
            f"| {name} | {load:g}/s | {len(values)} | {_pct(values, 0.5):.2f} | {_pct(values, 0.9):.2f} | "
            f"{_pct(values, 0.99):.2f} | {max(values) if values else float('nan'):.2f} |"
        )


def print_memory(m: Memory) -> None:
    """The memory summary."""
    rss = [mb for _, mb in m.samples]
    print(f"\n{m.n:,} mentions in {m.seconds:.0f} s; RSS of the daemon by mentions processed")
    print("| processed | RSS MiB |")
    print("|---:|---:|")
    for stored, mb in m.samples:
        print(f"| {stored:,} | {mb:.0f} |")
    if rss:
        print(
            f"\nRSS start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, max {max(rss):.0f} MiB, "
            f"median {statistics.median(rss):.0f} MiB"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    tp = sub.add_parser("throughput", help="end-to-end mentions/s")
    tp.add_argument("--n", type=int, default=10_000)
    tp.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    tp.add_argument("--daemons", type=int, default=1)
    tp.add_argument("--classifier", default="lexicon")
    tp.add_argument("--pg-url", default=None)
    lt = sub.add_parser("latency", help="alert latency p50/p99")
    lt.add_argument("--rate", type=float, default=20.0)
    lt.add_argument("--seconds", type=float, default=60.0)
    lt.add_argument("--spike-rate", type=float, default=200.0)
    lt.add_argument("--spike-seconds", type=float, default=10.0)
    lt.add_argument("--classifier", default="lexicon")
    lt.add_argument("--batch", type=int, default=64, help="classifier.batch_size")
    mm = sub.add_parser("memory", help="daemon RSS over a long replay")
    mm.add_argument("--n", type=int, default=100_000)
    mm.add_argument("--every", type=int, default=10_000)
    mm.add_argument("--classifier", default="lexicon")
    al = sub.add_parser("all", help="the recorded set")
    al.add_argument("--n", type=int, default=10_000)
    al.add_argument("--pg-url", default=None)
    al.add_argument("--classifiers", default="lexicon,default")
    args = parser.parse_args(argv)

    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine()}")
    if args.what == "throughput":
        if args.backend == "postgres":
            with Postgres.start(args.pg_url) as pg:
                row = run_throughput(args.n, args.backend, args.daemons, args.classifier, pg)
        else:
            row = run_throughput(args.n, args.backend, args.daemons, args.classifier, None)
        print_throughput([row])
    elif args.what == "latency":
        r = asyncio.run(
            run_latency(
                args.rate, args.seconds, args.spike_rate, args.spike_seconds, args.classifier, args.batch
            )
        )
        print_latency(r, args.rate, args.spike_rate)
    elif args.what == "memory":
        print_memory(run_memory(args.n, args.every, args.classifier))
    else:
        classifiers = args.classifiers.split(",")
        rows: list[Throughput] = []
        with Postgres.start(args.pg_url) as pg:
            for classifier in classifiers:
                rows.append(run_throughput(args.n, "sqlite", 1, classifier, None))
                rows.append(run_throughput(args.n, "postgres", 1, classifier, pg))
                rows.append(run_throughput(args.n, "postgres", 2, classifier, pg))
                print_throughput(rows[-3:])
        print_throughput(rows)
        r = asyncio.run(run_latency(20, 60, 200, 10, "lexicon"))
        print_latency(r, 20, 200)
        print_memory(run_memory(max(args.n * 10, 100_000), 10_000, "lexicon"))


if __name__ == "__main__":
    main()
