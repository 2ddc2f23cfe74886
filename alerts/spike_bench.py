"""Run the spike detector over NAB-style volume series and write NAB detection files.

Input: a folder of ``NAME.csv`` files with a ``timestamp,value`` header, one row per bucket.
Output: ``NAME.csv`` per input with ``timestamp,value,anomaly_score``: one row per input row, same
order and the same timestamp strings; ``anomaly_score`` is 1 on rows where the detector raises or
escalates an incident and 0 elsewhere (resolves and quiet rows), as the NAB scorer expects.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from alerts.spikes import SpikeDetector, SpikeSettings

ALERTING_KINDS = frozenset({"raise", "escalate"})


def detect_rows(rows: list[tuple[str, str]], settings: SpikeSettings | None = None) -> list[int]:
    """Return a 0/1 detection per ``(timestamp, value)`` row, fed in order to one fresh detector."""
    detector = SpikeDetector(settings)
    flags: list[int] = []
    for ts, value in rows:
        event = detector.update(datetime.fromisoformat(ts.strip()), float(value))
        flags.append(1 if event is not None and event.kind in ALERTING_KINDS else 0)
    return flags


def run_benchmark(input_dir: Path, output_dir: Path, settings: SpikeSettings | None = None) -> list[Path]:
    """Write one detections CSV per ``*.csv`` series in ``input_dir``; return the written paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source in sorted(Path(input_dir).glob("*.csv")):
        with source.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
                raise ValueError(f"{source}: expected a 'timestamp,value' header")
            rows = [(r["timestamp"], r["value"]) for r in reader]
        flags = detect_rows(rows, settings)
        target = output_dir / source.name
        with target.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["timestamp", "value", "anomaly_score"])
            writer.writerows((ts, value, flag) for (ts, value), flag in zip(rows, flags, strict=True))
        written.append(target)
    return written
