"""kill -9 of ``repmon run`` in the middle of a replay, then restarts: nothing lost, nothing twice."""

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

PRAISE = [
    "Acme Rail staff were brilliant and friendly today, thank you so much!",
    "Love the new Acme Rail trains, great and comfortable journey",
    "Kettle Co is brilliant, my new kettle is perfect, love it",
]
COMPLAINTS = [
    "@acmerail third delay this week, terrible service, I want a refund",
    "Kettle Co sent me a broken kettle and nobody answers, awful and terrible",
]
NEUTRAL = ["Acme Rail timetable changes in December", "Kettle Co has a sale this weekend"]


def _replay(path: Path, n: int) -> Path:
    rng = random.Random(7)
    records = []
    for i in range(n):
        pool = rng.choice([PRAISE, COMPLAINTS, NEUTRAL, NEUTRAL])
        text = f"{rng.choice(pool)} #{i}"
        mentions = ["acmerail"] if text.startswith("@acmerail") else []
        records.append(
            post(i, text, minutes=i * 0.5, mentions=mentions, author={"handle": f"u{i}", "followers": 500})
        )
    return write_jsonl(path, records)


def _config(tmp_path: Path, replay: Path) -> Path:
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(
        f"""
storage:
  url: sqlite:///{tmp_path / "crash.db"}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
  - name: Kettle Co
    keywords: ["kettle co"]
sources:
  - name: replay
    type: replay
    path: {replay}
    batch_size: 40
classifier:
  model: lexicon
  batch_size: 32
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
""",
        encoding="utf-8",
    )
    return cfg


def _counts(db_url: str) -> tuple[int, int, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            mentions = conn.execute(select(func.count()).select_from(models.Mention)).scalar_one()
            sent = conn.execute(select(func.count()).where(models.Alert.status == "sent")).scalar_one()
            todo = conn.execute(
                select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
            ).scalar_one()
        return mentions, sent, todo
    except Exception:
        return 0, 0, 0
    finally:
        engine.dispose()


def test_kill_9_mid_replay_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    total = 10_000  # issue #8: kill -9 at random moments during a replay of at least 10,000 mentions
    replay = _replay(tmp_path / "replay.jsonl", total)
    cfg = _config(tmp_path, replay)
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    log = tmp_path / "daemon.log"
    rng = random.Random(11)
    kills = 0
    # Kill at a few random points while the replay is still flowing.
    for target in sorted(rng.sample(range(300, total - 300), 3)):
        proc = start_daemon(cfg, log)
        deadline = time.monotonic() + 120
        while _counts(db_url)[0] < target and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    # A final run until everything is stored, scored and delivered; then a clean SIGTERM.
    proc = start_daemon(cfg, log)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        mentions, sent, todo = _counts(db_url)
        if mentions == total and todo == 0 and sent > 0:
            engine = create_engine(db_url)
            with engine.connect() as conn:
                unscored = conn.execute(
                    select(func.count()).where(models.Mention.classify_state == "pending")
                ).scalar_one()
                unruled = conn.execute(
                    select(func.count()).where(
                        models.Mention.rules_done.is_(False), models.Mention.classify_state == "scored"
                    )
                ).scalar_one()
            engine.dispose()
            if unscored == 0 and unruled == 0:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    assert kills == 3

    engine = create_engine(db_url)
    with engine.connect() as conn:
        ids = conn.execute(select(models.Mention.external_id)).scalars().all()
        scores = conn.execute(select(func.count()).select_from(models.Score)).scalar_one()
        alerts = conn.execute(select(models.Alert.key, models.Alert.status)).all()
    engine.dispose()
    assert len(ids) == len(set(ids)) == total
    assert scores == total
    keys = [k for k, _ in alerts]
    assert len(keys) == len(set(keys))
    assert alerts and all(status == "sent" for _, status in alerts)
    delivered = []
    for line in (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            delivered.extend(json.loads(line)["alert_keys"])
        except ValueError:
            continue  # a line torn by kill -9 is not a delivery
    assert sorted(delivered) == sorted(keys), "every alert delivered exactly once"
