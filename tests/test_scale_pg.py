"""Several `repmon run` processes on one PostgreSQL: work is shared, a killed daemon's work taken over."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from monitor import models
from tests.pipeline_util import post, start_daemon, write_jsonl

pytestmark = pytest.mark.slow

TEXTS = [
    "Acme Rail staff were brilliant and friendly today, thank you so much!",
    "@acmerail third delay this week, terrible service, I want a refund",
    "Kettle Co sent me a broken kettle and nobody answers, awful and terrible",
    "Acme Rail timetable changes in December",
    "Love the new Kettle Co teapot, great quality",
]
REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, pg_url: str, replays: list[Path], name: str) -> Path:
    sources = "".join(
        f"  - name: replay-{i}\n    type: replay\n    path: {p}\n    batch_size: 50\n    interval: 1s\n"
        for i, p in enumerate(replays)
    )
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(
        f"""
storage:
  url: {pg_url}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
  - name: Kettle Co
    keywords: ["kettle co"]
sources:
{sources}
classifier:
  model: lexicon
  batch_size: 16
alerts:
  console: false
  jsonl_path: {tmp_path / "alerts.jsonl"}
  group_wait: 0s
  group_interval: 0s
  max_per_minute: 100000
spikes:
  clock: data
daemon:
  health_port: null
  classify_interval: 0.05
  lease_ttl: 3s
""",
        encoding="utf-8",
    )
    return cfg


def _state(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "mentions": conn.execute(select(func.count()).select_from(models.Mention)).scalar_one(),
                "pending": conn.execute(
                    select(func.count()).where(models.Mention.classify_state == "pending")
                ).scalar_one(),
                "unruled": conn.execute(
                    select(func.count()).where(
                        models.Mention.classify_state == "scored", models.Mention.rules_done.is_(False)
                    )
                ).scalar_one(),
                "outbox": conn.execute(
                    select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
                ).scalar_one(),
                "sent": conn.execute(select(func.count()).where(models.Alert.status == "sent")).scalar_one(),
            }
    except Exception:
        return {"mentions": 0, "pending": 0, "unruled": 0, "outbox": 0, "sent": 0}
    finally:
        engine.dispose()


def test_two_daemons_share_one_postgres_and_survive_kill_9(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(5)
    per_source = 400
    replays = []
    for s in range(3):
        records = []
        for i in range(per_source):
            text = f"{rng.choice(TEXTS)} ({s}-{i})"
            records.append(
                post(
                    s * 10_000 + i,
                    text,
                    minutes=i * 0.3,
                    mentions=["acmerail"] if "@acmerail" in text else [],
                )
            )
        replays.append(write_jsonl(tmp_path / f"replay-{s}.jsonl", records))
    total = 3 * per_source
    cfg_a, cfg_b = _config(tmp_path, pg_url, replays, "a"), _config(tmp_path, pg_url, replays, "b")
    log = tmp_path / "daemons.log"

    a = start_daemon(cfg_a, log)
    time.sleep(1.0)  # let the first daemon create the schema
    b = start_daemon(cfg_b, log)
    try:
        deadline = time.monotonic() + 120
        while _state(pg_url)["mentions"] < total // 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.poll() is None and b.poll() is None, log.read_text()[-4000:]
        a.send_signal(signal.SIGKILL)  # the survivor must take over a's sources and in-flight work
        a.wait(timeout=10)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            st = _state(pg_url)
            if st["mentions"] == total and st["pending"] == 0 and st["unruled"] == 0 and st["outbox"] == 0:
                break
            time.sleep(0.25)
        else:
            pytest.fail(f"not finished: {_state(pg_url)}\n{log.read_text()[-4000:]}")
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        ids = conn.execute(select(models.Mention.external_id)).scalars().all()
        scores = conn.execute(select(func.count()).select_from(models.Score)).scalar_one()
        keys = conn.execute(select(models.Alert.key).where(models.Alert.status == "sent")).scalars().all()
        owners = conn.execute(select(models.DaemonHeartbeat.owner)).scalars().all()
    engine.dispose()
    assert len(ids) == len(set(ids)) == total
    assert scores == total
    # The killed daemon's heartbeat is left (it goes stale); the one stopped cleanly took its own.
    assert len(owners) == 1
    delivered: list[str] = []
    # Both daemons append to one receiver (as both would post to one Slack workspace).
    for line in (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            delivered.extend(json.loads(line)["alert_keys"])
        except ValueError:
            continue
    assert keys and sorted(delivered) == sorted(keys), "each alert delivered exactly once across daemons"
