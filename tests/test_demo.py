"""`repmon demo` end to end: praise, complaints and a crisis that forms and resolves, then a digest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.demo import digest_path, last_full_week, utc_time

REPO = Path(__file__).resolve().parents[1]


def test_digest_file_is_named_by_the_local_week() -> None:
    # Week 48 of 2026 starts Monday 23 November 00:00 in Amsterdam: Sunday 22 November 23:00 UTC,
    # which is still in ISO week 47.
    start, end = last_full_week(datetime(2026, 12, 2, 12, tzinfo=UTC))
    assert start == datetime(2026, 11, 22, 23, tzinfo=UTC)
    assert digest_path(Path("/w"), start, end, "Europe/Amsterdam") == Path("/w/digest-2026-W48.html")


def test_demo_without_its_sample_files_says_where_to_find_them(tmp_path: Path) -> None:
    from rich.console import Console

    from monitor.demo import run_demo

    console = Console(record=True, width=200)
    assert run_demo(tmp_path / "work", console, demo_dir=tmp_path / "nowhere") == 2
    assert "REPMON_DEMO_DIR" in console.export_text()
    # an installed package (the Docker image) finds the files where the variable says
    probe = "import monitor.demo as d; print(d.DEMO_DIR)"
    env = {**os.environ, "REPMON_DEMO_DIR": "/usr/share/repmon/demo"}
    shown = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "/usr/share/repmon/demo"


def test_summary_times_carry_their_zone() -> None:
    assert utc_time(datetime(2026, 11, 28, 9, 40, tzinfo=UTC)) == "Sat 09:40 UTC"


@pytest.mark.slow
def test_demo_shows_praise_complaints_and_a_crisis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["COLUMNS"] = "120"
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Untagged praise" in out
    assert "Complaint" in out
    assert "Crisis forming" in out and "Spoorweg Noord" in out
    assert "Resolved" in out
    assert "crisis: Spoorweg Noord (negative)" in out and "resolved" in out
    assert re.search(r"from \w{3} \d\d:\d\d UTC, .* resolved \w{3} \d\d:\d\d UTC", out)
    # One crisis, one thread: the total-volume spike beside it is recorded but not alerted.
    assert out.count("Crisis forming") == 1 and "Crisis forming: mentions about" not in out
    assert "inside the crisis: not alerted on its own" in " ".join(out.split())
    digests = list(tmp_path.glob("digest-*.html"))
    assert len(digests) == 1
    html = digests[0].read_text(encoding="utf-8")
    week = re.search(r"<title>Sentiment digest — Week (\d+), (\d{4})", html)
    assert week is not None
    assert digests[0].name == f"digest-{week[2]}-W{int(week[1]):02d}.html"  # the file names the week it shows
    assert "Spoorweg Noord" in html and "Kettle &amp; Co" in html
