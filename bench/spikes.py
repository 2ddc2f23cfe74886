"""Benchmark the spike detector on the labelled NAB Twitter volume series.

Usage: .venv/bin/python bench/spikes.py [--data DIR] [--scorer PATH] [--loo] [--keep DIR]

Runs ``run_benchmark`` with default settings on the shared dev series into a temporary folder,
scores it with the shared NAB scorer (standard profile) and prints the scorer's report. With
``--loo`` it also estimates held-out performance by leave-one-series-out tuning over a small grid
of the main thresholds: for each series, pick the grid point that scores best on the other four,
score the held-out series with it, and combine the five held-out results as NAB does. With
``--thin`` it scores binomially thinned copies of every series (each mention kept with probability
p, windows unchanged): the same events at a brand 2, 5 or 10 times quieter, since held-out series
may be much quieter than the dev ones.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from alerts.spike_bench import detect_rows, run_benchmark
from alerts.spikes import SpikeSettings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "eval" / "spikes"
DEFAULT_SCORER = REPO.parent / "shared" / "tools" / "spike_score.py"
LOO_GRID: dict[str, list[float]] = {
    "typical_factor": [3.0, 3.5, 4.0, 4.5, 5.0],
    "min_share": [0.08, 0.1, 0.12],
    "band_z": [1.0, 1.5],
    "point_margin": [1.5, 99.0],  # 99 switches the one-bucket path off
}


def load_scorer(path: Path) -> ModuleType:
    """Import the NAB scorer script as a module (to reuse its per-file scoring)."""
    spec = importlib.util.spec_from_file_location("spike_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load scorer {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Rows = list[tuple[str, str]]


def file_raws(
    data: Path, scorer: ModuleType, settings: SpikeSettings, transform: Callable[[Rows], Rows] | None = None
) -> dict[str, tuple[float, int]]:
    """Raw NAB score and window count per series for one settings value (``transform``: of the counts)."""
    windows = json.loads((data / "windows.json").read_text())
    result: dict[str, tuple[float, int]] = {}
    for name, spans in sorted(windows.items()):
        with (data / name).open(newline="") as f:
            rows = [(r["timestamp"], r["value"]) for r in csv.DictReader(f)]
        flags = [float(x) for x in detect_rows(transform(rows) if transform else rows, settings)]
        raw, n_windows, _, _ = scorer.score_file(
            [ts for ts, _ in rows],
            flags,
            [(s[:19], e[:19]) for s, e in spans],
            0.5,
            *scorer.PROFILES["standard"],
        )
        result[name] = (raw, n_windows)
    return result


def thinned_score(
    data: Path, scorer: ModuleType, settings: SpikeSettings, keep: float, seed: int = 0
) -> float:
    """NAB score on copies of the series where each mention survives with probability ``keep``."""
    rng = random.Random(seed)

    def thin(rows: Rows) -> Rows:
        return [(ts, str(sum(rng.random() < keep for _ in range(int(float(v)))))) for ts, v in rows]

    raws = file_raws(data, scorer, settings, thin)
    return normalised(raws, sorted(raws))


def normalised(raws: dict[str, tuple[float, int]], names: list[str]) -> float:
    """NAB normalised score (standard profile) of the given series."""
    raw = sum(raws[n][0] for n in names)
    windows = sum(raws[n][1] for n in names)
    return 100.0 * (raw + windows) / (2.0 * windows)


def leave_one_out(data: Path, scorer: ModuleType) -> float:
    """Leave-one-series-out estimate over ``LOO_GRID`` around the default settings."""
    base = SpikeSettings()
    grid = [dict(zip(LOO_GRID, values, strict=True)) for values in itertools.product(*LOO_GRID.values())]
    # The grid only names float fields, which mypy cannot see through a dict.
    results = [(point, file_raws(data, scorer, replace(base, **point))) for point in grid]  # type: ignore[arg-type]
    names = sorted(results[0][1])
    held: dict[str, tuple[float, int]] = {}
    for name in names:
        rest = [n for n in names if n != name]
        point, raws = max(results, key=lambda r: normalised(r[1], rest))
        held[name] = raws[name]
        print(f"  held out {name}: picked {point} -> raw {raws[name][0]:.3f}")
    return normalised(held, names)


def main(argv: list[str]) -> int:
    """Run the benchmark, print the NAB score and optionally the leave-one-out estimate."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scorer", type=Path, default=DEFAULT_SCORER)
    parser.add_argument("--keep", type=Path, help="write the detection files here instead of a temp dir")
    parser.add_argument("--loo", action="store_true", help="also run leave-one-series-out tuning (minutes)")
    parser.add_argument(
        "--thin", action="store_true", help="also score 2x, 5x and 10x quieter copies (1 min)"
    )
    args = parser.parse_args(argv)
    if not (args.data / "windows.json").exists() or not args.scorer.exists():
        print(f"missing data ({args.data}) or scorer ({args.scorer})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        started = time.perf_counter()
        run_benchmark(args.data, out)
        elapsed = time.perf_counter() - started
        report = subprocess.run(
            [sys.executable, str(args.scorer), str(args.data), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
    print(report.stdout, end="")
    print(f"detector time for all series: {elapsed:.1f}s")
    if args.thin:
        scorer = load_scorer(args.scorer)
        for keep in (0.5, 0.2, 0.1):
            runs = [thinned_score(args.data, scorer, SpikeSettings(), keep, seed) for seed in range(5)]
            print(
                f"thinned to {keep:.0%} of the mentions, 5 draws: NAB score mean {sum(runs) / 5:.1f} "
                f"(range {min(runs):.1f}-{max(runs):.1f})"
            )
    if args.loo:
        scorer = load_scorer(args.scorer)
        print(f"LOO grid: {LOO_GRID}")
        print(f"leave-one-series-out NAB standard score: {leave_one_out(args.data, scorer):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
