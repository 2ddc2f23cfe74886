"""``repmon check``: a classifier that cannot load here and a Slack token Slack refuses exit 1.

The classifier checks never load a model: the GPU count is faked at the one function that asks
torch, and the Hugging Face cache is a folder laid out as the hub lays it out.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from config.loader import parse_config
from monitor.checks import run_checks
from monitor.cli import app
from tests.mock_slack import BOT_TOKEN, MockSlack
from tests.pipeline_util import config_text, write_jsonl

GOOD = """
storage:
  url_env: null
brands:
  - name: Acme
    keywords: ["acme"]
sources:
  - name: news
    type: rss
    url: https://example.org/feed.xml
"""

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="the transformers backend is not installed"
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _check(tmp_path: Path, classifier: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    cfg = tmp_path / "c.yaml"
    storage = f"  url: sqlite:///{tmp_path / 'x.db'}\n"
    cfg.write_text(GOOD.replace("storage:\n", "storage:\n" + storage) + classifier, encoding="utf-8")
    env = {"HF_HUB_OFFLINE": None, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), **(env or {})}
    result = CliRunner().invoke(app, ["check", "--config", str(cfg)], env=env)
    return result.exit_code, _flat(result.output)


def _model_dir(tmp_path: Path) -> Path:
    """A local directory laid out as a Hugging Face model (only its config is looked at)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    return model


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int | None) -> None:
    monkeypatch.setattr("monitor.checks._cuda_device_count", lambda: count)


@needs_transformers
@pytest.mark.parametrize(
    ("device", "gpus", "expected"),
    [
        ("cuda", 0, "classifier.device cuda: no GPU is available to torch"),
        ("cuda", 0, "(torch.cuda.is_available() is false); set device: cpu (or auto) on this machine"),
        ("cuda", None, "classifier.device cuda: torch cannot use CUDA; set device: cpu"),
        ("cuda:1", 1, "classifier.device cuda:1: this machine has 1 GPU(s), cuda:0 to cuda:0"),
    ],
)
def test_check_refuses_a_cuda_device_this_machine_does_not_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str, gpus: int | None, expected: str
) -> None:
    _gpus(monkeypatch, gpus)
    model = _model_dir(tmp_path)
    code, output = _check(tmp_path, f"classifier:\n  model: transformers:{model}\n  device: {device}\n")
    assert code == 1, output
    assert f"✗ classifier.device {device}: " in output and expected in output


@needs_transformers
def test_check_accepts_a_gpu_that_is_there_and_a_local_model_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gpus(monkeypatch, 1)
    model = _model_dir(tmp_path)
    code, output = _check(tmp_path, f"classifier:\n  model: transformers:{model}\n  device: cuda\n")
    assert code == 0, output
    assert "✓ classifier.device cuda: GPU available" in output
    assert f"✓ classifier model {model}: local directory" in output


@needs_transformers
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "nonexistent-model", "no such directory (and not a Hugging Face model id)"),
        (lambda tmp: tmp, "the directory has no config.json"),
    ],
    ids=["missing", "not-a-model"],
)
def test_check_refuses_a_local_model_path_that_is_not_a_model(
    tmp_path: Path, make: object, expected: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, output = _check(tmp_path, f'classifier:\n  model: "transformers:{path}"\n')
    assert code == 1, output
    assert f"✗ classifier model {path}: {expected}" in output


def _cache_model(cache: Path, repo: str) -> None:
    """Put a model's config into a Hugging Face hub cache folder, as a download leaves it."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")


@needs_transformers
def test_check_says_whether_a_hub_model_is_in_the_local_cache(tmp_path: Path) -> None:
    classifier = "classifier:\n  model: transformers:acme/sentiment-model\n"
    code, output = _check(tmp_path, classifier)
    assert code == 0, output  # it may still download: a warning, unless offline
    assert "! classifier model acme/sentiment-model: not in the local Hugging Face cache" in output
    assert "downloads it from huggingface.co" in output
    offline_code, offline = _check(tmp_path, classifier, env={"HF_HUB_OFFLINE": "1"})
    assert offline_code == 1, offline
    assert "✗ classifier model acme/sentiment-model: not in the local Hugging Face cache" in offline
    assert "HF_HUB_OFFLINE is set: it cannot be loaded" in offline
    _cache_model(tmp_path / "hf-cache", "acme/sentiment-model")
    cached_code, cached = _check(tmp_path, classifier, env={"HF_HUB_OFFLINE": "1"})
    assert cached_code == 0, cached
    assert "✓ classifier model acme/sentiment-model: in the local Hugging Face cache" in cached


@needs_transformers
def test_check_online_asks_the_hub_for_a_model_not_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.checks._hub_problem", lambda model: "huggingface.co cannot be reached")
    config = parse_config(
        GOOD.replace("storage:\n", f"storage:\n  url: sqlite:///{tmp_path / 'x.db'}\n")
        + "classifier:\n  model: transformers:acme/sentiment-model\n",
        "c.yaml",
    )
    from monitor.checks import classifier_findings

    env = {"HF_HUB_CACHE": str(tmp_path / "empty")}
    [(good, message)] = classifier_findings(config.settings.classifier, env, online=True)
    assert good is False and "not in the local Hugging Face cache and huggingface.co cannot" in message


def test_check_refuses_a_transformers_model_without_torch_and_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.checks import classifier_findings

    installed = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "transformers" else installed(name, *a)
    )
    settings = parse_config(GOOD + "classifier:\n  model: transformers:acme/model\n", "c.yaml").settings
    findings = classifier_findings(settings.classifier, {})
    assert findings == [
        (False, "classifier transformers:acme/model: needs transformers installed (pip install 'repmon[ml]')")
    ]
    lexicon = parse_config(GOOD + "classifier:\n  model: lexicon\n  device: cuda\n", "l.yaml").settings
    assert classifier_findings(lexicon.classifier, {}) == []  # the lexicon ignores the device


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, width=300)


def _online_config(tmp_path: Path, api_url: str) -> str:
    replay = write_jsonl(tmp_path / "posts.jsonl", [])
    return config_text(f"sqlite:///{tmp_path / 'x.db'}", replay, extra=f"slack:\n  api_url: {api_url}\n")


async def test_check_online_fails_when_slack_refuses_the_token(tmp_path: Path) -> None:
    async with MockSlack() as slack:
        config = parse_config(_online_config(tmp_path, slack.api_url), "c.yaml")
        accepted = io.StringIO()
        assert await run_checks(config, {"SLACK_BOT_TOKEN": BOT_TOKEN}, _console(accepted), online=True)
        assert "✓ Slack bot token set (SLACK_BOT_TOKEN)" in accepted.getvalue()
        assert "authenticated as repmon in Repmon Test" in accepted.getvalue()

        slack.fail_auth("invalid_auth")
        refused = io.StringIO()
        assert not await run_checks(
            config, {"SLACK_BOT_TOKEN": "xoxb-revoked"}, _console(refused), online=True
        )
    text = _flat(refused.getvalue())
    assert "✗ Slack bot token set (SLACK_BOT_TOKEN)" in text and "auth.test failed: invalid_auth" in text
    assert "xoxb-revoked" not in text


async def test_check_online_fails_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    config = parse_config(_online_config(tmp_path, "http://127.0.0.1:1/api/"), "c.yaml")
    out = io.StringIO()
    assert not await run_checks(config, {"SLACK_BOT_TOKEN": BOT_TOKEN}, _console(out), online=True)
    text = _flat(out.getvalue())
    assert "✗ Slack bot token set (SLACK_BOT_TOKEN)" in text and "unreachable:" in text


async def test_check_shows_the_next_digest_run_and_refuses_one_that_never_comes(tmp_path: Path) -> None:
    config = parse_config(
        _online_config(tmp_path, "http://127.0.0.1:1/api/")
        + 'digest:\n  schedule: "0 9 * * mon"\n  timezone: Europe/Amsterdam\n',
        "c.yaml",
    )
    out = io.StringIO()
    assert await run_checks(config, {}, _console(out))
    text = _flat(out.getvalue())
    assert (
        "✓ digest: next run Mon " in text and "09:00 " in text and "(0 9 * * mon, Europe/Amsterdam)" in text
    )

    # A schedule that never fires is refused when the configuration loads; one that got past (a
    # Settings built in code) still fails the check instead of passing it.
    settings = config.settings
    never = settings.digest.model_copy(update={"schedule": "0 9 31 2 *"})
    broken = dataclasses.replace(config, settings=settings.model_copy(update={"digest": never}))
    out = io.StringIO()
    assert not await run_checks(broken, {}, _console(out))
    assert "✗ digest schedule (0 9 31 2 *, Europe/Amsterdam) has no next run" in _flat(out.getvalue())
