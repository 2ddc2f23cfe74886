"""The operator commands on the outbox: ``repmon alerts failed|retry`` and ``repmon silence``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from config.loader import load_config
from monitor import models
from monitor.cli import app
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import config_text, post, write_jsonl


def _praise_runtime(tmp_path: Path) -> tuple[Path, Runtime, CapturingNotifier]:
    """A configuration file with one praise post to replay, and a runtime on it that captures alerts."""
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant, thanks", minutes=1)])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'c.db'}", replay), encoding="utf-8")
    notifier = CapturingNotifier()
    runtime = Runtime(load_config(cfg), notifier=notifier, classifier=StubClassifier(), env={})
    upgrade(runtime.db)
    return cfg, runtime, notifier


async def test_failed_alerts_are_listed_and_retried_from_the_cli(tmp_path: Path) -> None:
    cfg, runtime, notifier = _praise_runtime(tmp_path)
    runner = CliRunner()
    try:
        notifier.fail_next(1, retryable=False)  # say, channel_not_found
        await runtime.run_once()
        listed = runner.invoke(app, ["alerts", "failed", "-c", str(cfg)])
        assert listed.exit_code == 0, listed.output
        assert "Acme Rail" in listed.output and "receiver down" in listed.output

        retried = runner.invoke(app, ["alerts", "retry", "--brand", "Kettle Co", "-c", str(cfg)])
        assert "0 failed alerts back" in retried.output
        retried = runner.invoke(app, ["alerts", "retry", "-c", str(cfg)])
        assert retried.exit_code == 0 and "1 failed alert back in the outbox" in retried.output
        await runtime.process()
        assert len(notifier.keys) == 1
        with runtime.db.session() as session:
            assert session.execute(select(models.Alert.status)).scalar_one() == "sent"
    finally:
        await runtime.aclose()


def test_silence_add_list_expire(tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", [])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 's.db'}", replay), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "-c", str(cfg)]).exit_code == 0
    bad = runner.invoke(app, ["silence", "add", "brand", "-c", str(cfg)])
    assert bad.exit_code == 2 and "not a matcher" in bad.output
    added = runner.invoke(
        app, ["silence", "add", "brand=Acme Rail", "kind=praise", "--duration", "2h", "-c", str(cfg)]
    )
    assert added.exit_code == 0 and "silence #1" in added.output
    listed = runner.invoke(app, ["silence", "list", "-c", str(cfg)])
    assert "brand=Acme Rail kind=praise" in listed.output
    assert runner.invoke(app, ["silence", "expire", "1", "-c", str(cfg)]).exit_code == 0
    assert "brand=Acme Rail" not in runner.invoke(app, ["silence", "list", "-c", str(cfg)]).output
    assert runner.invoke(app, ["silence", "expire", "7", "-c", str(cfg)]).exit_code == 1


async def test_retry_of_unknown_or_unfailed_ids_says_so_and_exits_1(tmp_path: Path) -> None:
    cfg, runtime, _ = _praise_runtime(tmp_path)
    runner = CliRunner()
    try:
        await runtime.run_once()  # delivered: the one alert is "sent", not "failed"
        with runtime.db.session() as session:
            sent_id = session.execute(select(models.Alert.id)).scalar_one()
        retried = runner.invoke(app, ["alerts", "retry", "999", str(sent_id), "-c", str(cfg)])
        output = " ".join(retried.output.split())
        assert retried.exit_code == 1, retried.output
        assert "alert #999 not found" in output and f"alert #{sent_id} is sent, not failed" in output
        assert "0 failed alerts back in the outbox" in output
    finally:
        await runtime.aclose()


def _silence(tmp_path: Path, *matchers: str) -> tuple[int, str]:
    replay = write_jsonl(tmp_path / "posts.jsonl", [])
    cfg = tmp_path / "repmon.yaml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 's.db'}", replay), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "-c", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["silence", "add", *matchers, "-c", str(cfg)])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ("brnad=Acme Rail", "unknown label 'brnad'; labels: brand, kind, source, severity, metric"),
        ("channel=#webcare", "unknown label 'channel'"),
        ("brand=", "empty value; write brand=VALUE"),
        ("kind=  ", "empty value"),
        ("brand!=Acme Rail", "the operator != is not supported"),
        ("brand=~Acme.*", "the operator =~ is not supported"),
        ("brand!~Acme.*", "the operator !~ is not supported"),
        ("=praise", "is not a matcher"),
    ],
)
def test_silence_refuses_matchers_no_alert_can_carry(tmp_path: Path, matcher: str, message: str) -> None:
    code, output = _silence(tmp_path, matcher)
    assert code == 2 and message in output, output
    assert "silence #" not in output


def test_silence_refuses_the_same_label_twice(tmp_path: Path) -> None:
    code, output = _silence(tmp_path, "kind=praise", "kind=complaint")
    assert code == 2 and "kind is given twice" in output


def test_silence_warns_about_an_unknown_brand_or_kind_but_adds_it(tmp_path: Path) -> None:
    code, output = _silence(tmp_path, "brand=acme rail", "kind=praize")
    assert code == 0 and "silence #1" in output
    assert "brand 'acme rail' is not a configured brand" in output and "did you mean 'Acme Rail'?" in output
    assert "kind 'praize' is not an alert kind; kinds: praise, complaint, spike, ops" in output


def test_silence_on_a_known_brand_and_kind_has_no_warning(tmp_path: Path) -> None:
    code, output = _silence(tmp_path, "brand=Kettle Co", "kind=spike", "severity=critical")
    assert code == 0 and "warning" not in output, output
