"""CLI failures an operator meets: no schema yet, an unreachable database, a failed `repmon once`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alerts.testing import CapturingNotifier
from monitor.cli import app
from tests.pipeline_util import config_text, post, write_jsonl

LEXICON = "classifier:\n  model: lexicon\n"
#: Nothing listens on port 1, so connecting is refused at once; the password must never be shown.
UNREACHABLE = "postgresql://repmon:s3cret-pw@127.0.0.1:1/repmon"

DB_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["alerts", "failed"],
    ["alerts", "retry", "3"],
    ["silence", "list"],
    ["silence", "expire", "1"],
    ["silence", "add", "kind=praise"],
    ["watchlist", "test"],
]


def _config(tmp_path: Path, db_url: str, *, replay: Path | None = None) -> Path:
    replay = replay or write_jsonl(tmp_path / "posts.jsonl", [])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(config_text(db_url, replay, extra=LEXICON), encoding="utf-8")
    return cfg


def _summary(stdout: str) -> dict[str, Any]:
    """The --json summary: all of stdout (console alerts go to stderr), so it pipes into jq."""
    summary: dict[str, Any] = json.loads(stdout)
    return summary


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", DB_COMMANDS, ids=" ".join)
def test_a_database_without_tables_says_to_upgrade(tmp_path: Path, command: list[str]) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(app, [*command, "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    assert "has no tables yet; run `repmon db upgrade` first" in _flat(result.output)
    assert "Traceback" not in result.output and "sqlalchemy" not in result.output.lower()


@pytest.mark.parametrize(
    "command", [*DB_COMMANDS, ["db", "upgrade"], ["once"], ["run"], ["digest"]], ids=" ".join
)
def test_an_unreachable_database_is_one_line_with_its_cause_and_no_password(
    tmp_path: Path, command: list[str]
) -> None:
    cfg = _config(tmp_path, UNREACHABLE)
    result = CliRunner().invoke(app, [*command, "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    output = _flat(result.output)
    assert "database postgresql://repmon:***@127.0.0.1:1/repmon unreachable:" in output
    assert "Connection refused" in output
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "postgres://repmon:s3cret-pw@db/repmon",
            "postgres:// is not a database scheme SQLAlchemy knows; write postgresql+psycopg://",
        ),
        ("not-a-url", "not a database URL; write e.g. sqlite:///var/repmon.db"),
    ],
    ids=["postgres-scheme", "unparsable"],
)
@pytest.mark.parametrize(
    "command", [*DB_COMMANDS, ["db", "upgrade"], ["once"], ["run"], ["digest"]], ids=" ".join
)
def test_a_database_url_from_the_environment_that_cannot_be_used_is_one_line(
    tmp_path: Path, command: list[str], url: str, problem: str
) -> None:
    # storage.url is checked when the configuration loads; url_env's value only when it is used
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}")
    cfg.write_text(cfg.read_text().replace("url_env: null", "url_env: REPMON_DATABASE_URL"))
    result = CliRunner().invoke(app, [*command, "-c", str(cfg)], env={"REPMON_DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    output = _flat(result.output)
    assert "cannot be used: " + problem in output
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "command", [["status"], ["db", "upgrade"], ["once"], ["run"], ["digest"]], ids=" ".join
)
def test_a_sqlite_folder_that_cannot_be_created_is_one_line(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "blocker").write_text("a file where the database folder should be")
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'blocker' / 'db' / 'repmon.db'}")
    result = CliRunner().invoke(app, [*command, "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    assert f"cannot be created in {tmp_path / 'blocker' / 'db'}" in _flat(result.output)
    assert "Traceback" not in result.output


def test_check_names_the_root_cause_of_an_unreachable_database(tmp_path: Path) -> None:
    cfg = _config(tmp_path, UNREACHABLE)
    result = CliRunner().invoke(app, ["check", "-c", str(cfg)], env={})
    assert result.exit_code == 1
    output = _flat(result.output)
    assert "unreachable: connection failed" in output and "Connection refused" in output
    assert "s3cret-pw" not in result.output


def test_once_exits_0_on_a_clean_run(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'ok.db'}", replay=replay)
    result = CliRunner().invoke(app, ["once", "--json", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    summary = _summary(result.stdout)
    assert summary["failed_sources"] == [] and summary["delivery_failures"] == 0
    assert summary["alerts_delivered"] == 1 and "Untagged praise" in result.stderr  # printed beside it


def test_once_exits_1_after_finishing_when_a_source_failed(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'src.db'}", replay=tmp_path / "missing.jsonl")
    result = CliRunner().invoke(app, ["once", "--json", "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    summary = _summary(result.stdout)
    assert summary["failed_sources"] == ["replay"] and "missing.jsonl" in summary["errors"]["replay"]
    text = CliRunner().invoke(app, ["once", "-c", str(cfg)])
    assert text.exit_code == 1 and "source replay failed" in _flat(text.output)


def test_once_exits_1_and_counts_failed_deliveries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'dl.db'}", replay=replay)
    notifier = CapturingNotifier()
    notifier.fail_next(1, retryable=False)  # say, channel_not_found: parked as failed
    monkeypatch.setattr("monitor.notify.build_notifier", lambda settings, env, **_: notifier)
    result = CliRunner().invoke(app, ["once", "--json", "-c", str(cfg)])
    assert result.exit_code == 1, result.output
    summary = _summary(result.stdout)
    assert summary["delivery_failures"] == 1 and summary["alerts_delivered"] == 0
    assert summary["failed_sources"] == []
    failed = CliRunner().invoke(app, ["alerts", "failed", "-c", str(cfg)])
    assert "Acme Rail" in failed.output


def test_watchlist_test_refuses_an_unknown_brand_and_lists_the_configured_ones(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)]).exit_code == 0
    result = CliRunner().invoke(app, ["watchlist", "test", "Nope", "-c", str(cfg)])
    assert result.exit_code == 2, result.output
    assert "unknown brand: Nope; configured: Acme Rail, Kettle Co" in _flat(result.output)
    known = CliRunner().invoke(app, ["watchlist", "test", "Kettle Co", "-c", str(cfg)])
    assert known.exit_code == 0, known.output


@pytest.mark.parametrize("days", ["-3", "0"])
def test_watchlist_test_needs_at_least_one_day(tmp_path: Path, days: str) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    result = CliRunner().invoke(app, ["watchlist", "test", "--days", days, "-c", str(cfg)])
    assert result.exit_code == 2 and "--days" in result.output


def test_watchlist_test_missing_file_names_the_file_option(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    result = CliRunner().invoke(
        app, ["watchlist", "test", "--file", str(tmp_path / "missing.yaml"), "-c", str(cfg)]
    )
    assert result.exit_code == 2
    output = _flat(result.output)
    assert "missing.yaml: file not found; check the path given to --file" in output
    assert "--config" not in output


def test_status_lists_unpolled_sources_and_the_queues(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = _config(tmp_path, db_url)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--config", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["status", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # not polled yet is no error (none is made up); a source switched off says so
    assert [(s["name"], s["last_error"], s["problem"]) for s in report["sources"]] == [
        ("replay", None, "not polled yet")
    ]
    assert report["queues"] == {"classify": 0, "outbox": 0, "failed_alerts": 0}
    text = " ".join(runner.invoke(app, ["status", "--config", str(cfg)]).output.split())
    assert "not polled" in text and "queues: 0 mentions to score, 0 alerts to send" in text
    cfg.write_text(cfg.read_text().replace("    type: replay\n", "    type: replay\n    enabled: false\n"))
    (off,) = json.loads(runner.invoke(app, ["status", "--json", "--config", str(cfg)]).stdout)["sources"]
    assert off["disabled"] == off["problem"] == "switched off (enabled: false)"
    assert "mentions: none" in text and "alerts: none" in text


def test_watchlist_explain_takes_title_author_name_and_detects_the_language() -> None:
    result = CliRunner().invoke(
        app,
        [
            "watchlist", "explain", 'vlucht AND author:"Jan Jansen" AND source:twitter AND lang:nl',
            "is weer vertraagd, wat een gedoe met die maatschappij",
            "--title", "Mijn vlucht", "--author-name", "Jan Jansen", "--source", "x",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "result: MATCH" in result.output and "title:  Mijn vlucht" in result.output
    assert "lang:   nl (detected" in result.output
