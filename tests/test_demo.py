"""`repmon demo` end to end: praise, complaints and a crisis that forms and resolves, then a digest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


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
    # One crisis, one thread: the total-volume spike beside it is recorded but not alerted.
    assert out.count("Crisis forming") == 1 and "Crisis forming: mentions about" not in out
    assert "inside the crisis: not alerted on its own" in " ".join(out.split())
    digests = list(tmp_path.glob("digest-*.html"))
    assert len(digests) == 1
    html = digests[0].read_text(encoding="utf-8")
    assert "Spoorweg Noord" in html and "Kettle &amp; Co" in html
