"""Configuration: validation errors name the file, line and fix; secrets never live in YAML."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.loader import ConfigError, load_config, parse_config
from config.settings import parse_duration
from monitor.cli import app

REPO = Path(__file__).resolve().parents[1]

GOOD = """
brands:
  - name: Acme
    handles: ["@Acme_Help"]
    keywords: ["acme"]
sources:
  - name: news
    type: rss
    url: https://example.org/feed.xml
    interval: 5m
"""


def test_valid_config_normalises_values() -> None:
    loaded = parse_config(GOOD, "good.yaml")
    assert loaded.settings.brands[0].handles == ("acme_help",)
    assert loaded.settings.sources[0].interval == 300
    assert loaded.source_options["news"].url == "https://example.org/feed.xml"  # type: ignore[attr-defined]


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    return [str(i) for i in info.value.issues]


def test_unknown_setting_points_at_its_line() -> None:
    issues = _issues(GOOD + "alerts:\n  group_wiat: 30s\n")
    assert any(i.startswith("bad.yaml:12: alerts.group_wiat: unknown setting") for i in issues), issues


def test_bad_duration_says_what_would_be_right() -> None:
    issues = _issues(GOOD.replace("interval: 5m", "interval: soon"))
    assert any("bad.yaml:10: sources[0].interval" in i and "write e.g. 30s, 5m" in i for i in issues), issues


def test_unknown_source_type_lists_known_types() -> None:
    issues = _issues(GOOD.replace("type: rss", "type: myspace"))
    assert any(
        "bad.yaml:8: sources[0].type: unknown source type 'myspace'" in i and "rss" in i for i in issues
    )


def test_source_specific_options_are_validated_by_the_source() -> None:
    issues = _issues(GOOD.replace("url: https://example.org/feed.xml", "urll: https://example.org/feed.xml"))
    assert any("sources[0].urll: unknown setting" in i for i in issues), issues
    assert any("sources[0].url: required setting is missing" in i for i in issues), issues


def test_literal_secret_in_yaml_is_refused_without_echoing_it() -> None:
    text = GOOD + "slack:\n  token: xoxb-very-secret-value\n"
    issues = _issues(text)
    joined = "\n".join(issues)
    assert "slack.token" in joined and "token_env" in joined
    assert "xoxb-very-secret-value" not in joined


@pytest.mark.parametrize(
    ("section", "key", "fix"),
    [
        ("slack:\n  token: xoxb-very-secret-value\n", "slack.token", "'token_env: VARIABLE'"),
        ("slack:\n  app_token: xapp-very-secret-value\n", "slack.app_token", "'app_token_env: VARIABLE'"),
        (
            "slack:\n  webhook_url: https://hooks.slack.com/services/T0/B0/very-secret-value\n",
            "slack.webhook_url",
            "'webhook_url_env: VARIABLE'",
        ),
        (
            "  - name: tweets\n    type: x\n    bearer_token: very-secret-value\n",
            "sources[1].bearer_token",
            "'bearer_token_env: VARIABLE' (or a file with 'bearer_token_file: PATH')",
        ),
        (
            "  - name: reddit\n    type: reddit\n    client_secret: very-secret-value\n",
            "sources[1].client_secret",
            "'client_secret_env: VARIABLE'",
        ),
        (
            "  - name: reviews\n    type: kiyoh\n    hash: very-secret-value\n",
            "sources[1].hash",
            "'hash_env: VARIABLE'",
        ),
    ],
    ids=["slack-token", "slack-app-token", "slack-webhook", "x-bearer", "reddit-secret", "kiyoh-hash"],
)
def test_literal_secret_gets_one_error_naming_the_fix(section: str, key: str, fix: str) -> None:
    # One line, one error: the secrets message, not also "unknown setting" for the same key.
    issues = _issues(GOOD + section)
    line = 12 if key.startswith("slack.") else 13
    assert len(issues) == 1 and issues[0].startswith(f"bad.yaml:{line}: {key}: "), issues
    only = issues[0]
    assert "secrets never go in the YAML file" in only and fix in only, issues
    assert "very-secret-value" not in only
    if key.startswith("slack."):  # Slack reads its secrets from the environment only: no *_file
        assert "_file" not in only


def test_secret_put_in_an_env_setting_is_refused_without_echoing_it() -> None:
    issues = _issues(GOOD + "slack:\n  token_env: xoxb-1234-very-secret-value\n")
    assert len(issues) == 1 and issues[0].startswith("bad.yaml:12: slack.token_env:"), issues
    assert "SLACK_BOT_TOKEN" in issues[0] and "very-secret-value" not in issues[0]


def test_query_syntax_error_shows_caret() -> None:
    issues = _issues(
        GOOD.replace('keywords: ["acme"]', "keywords: [\"acme\"]\n    query: 'acme AND (rail OR'")
    )
    joined = "\n".join(issues)
    assert "brands[0].query" in joined and "^" in joined


def test_cross_field_checks() -> None:
    dup = GOOD + "  - name: news\n    type: rss\n    url: https://example.org/other.xml\n"
    assert any("source names must be unique" in i for i in _issues(dup))
    assert any(
        "matches nothing" in i or "would match nothing" in i for i in _issues("brands:\n  - name: Empty\n")
    )
    assert any("unknown timezone" in i for i in _issues(GOOD + "digest:\n  timezone: Mars/Base\n"))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    assert any("not valid YAML" in i for i in _issues("brands: [unclosed\n"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "file not found" in str(info.value)


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200 and parse_duration(15) == 15
    with pytest.raises(ValueError):
        parse_duration("fortnight")


def test_check_exits_2_on_bad_config_and_0_on_example(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("interval: 5m", "interval: -"), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml:10" in result.output
    example = REPO / "config" / "example.yaml"
    result = runner.invoke(
        app, ["check", "--config", str(example)], env={"REPMON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert result.exit_code in (0, 1), result.output  # 1 only when optional credentials are missing
    assert "is valid" in result.output


def test_bad_keyword_is_caught_at_start_up() -> None:
    issues = _issues(GOOD.replace('keywords: ["acme"]', 'keywords: ["acme", "k*"]'))
    assert any("brands[0].keywords[1]" in i for i in issues), issues


def test_classifier_heads_need_the_default_model_or_a_transformers_encoder() -> None:
    issues = _issues(GOOD + "classifier:\n  model: lexicon\n  heads: heads.npz\n")
    assert any(i.startswith("bad.yaml:11: classifier:") and "transformers:" in i for i in issues), issues
    retrained = parse_config(GOOD + "classifier:\n  model: default\n  heads: /data/h.npz\n", "ok.yaml")
    assert retrained.settings.classifier.load_options()["heads_path"] == "/data/h.npz"
    ok = parse_config(GOOD + "classifier:\n  model: transformers:/models/xlmr\n  heads: h.npz\n", "ok.yaml")
    assert ok.settings.classifier.heads == "h.npz"


def test_classifier_label_map_only_for_transformers_models() -> None:
    issues = _issues(GOOD + "classifier:\n  model: default\n  label_map: {LABEL_0: negative}\n")
    assert any("label_map only goes with" in i for i in issues), issues
    issues = _issues(GOOD + "classifier:\n  model: transformers:/m\n  label_map: {LABEL_0: angry}\n")
    assert any("classifier.label_map" in i for i in issues), issues
    ok = parse_config(
        GOOD + "classifier:\n  model: transformers:/m\n  label_map: {LABEL_0: negative}\n", "ok.yaml"
    )
    options = ok.settings.classifier.load_options()
    assert options["label_map"] == {"LABEL_0": "negative"} and options["max_length"] == 256
    assert "label_map" not in parse_config(GOOD, "d.yaml").settings.classifier.load_options()


def test_classifier_dtype_reaches_the_default_model_and_float16_is_refused() -> None:
    issues = _issues(GOOD + "classifier:\n  model: default\n  dtype: float16\n")
    assert any("float16 is for transformers" in i for i in issues), issues
    pinned = parse_config(GOOD + "classifier:\n  dtype: float32\n", "ok.yaml").settings.classifier
    assert pinned.load_options()["dtype"] == "float32"
    assert parse_config(GOOD, "d.yaml").settings.classifier.load_options()["dtype"] == "auto"
    lexicon = parse_config(GOOD + "classifier:\n  model: lexicon\n", "l.yaml").settings.classifier
    assert "dtype" not in lexicon.load_options()  # the lexicon has no matrix products to set


def test_check_flags_a_missing_head_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    env = {"REPMON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    heads = tmp_path / "heads.npz"
    cfg.write_text(GOOD + f"classifier:\n  model: default\n  heads: {heads}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", "--config", str(cfg)], env=env)
    assert result.exit_code == 1
    assert "is not a readable file" in " ".join(result.output.split())
    heads.write_bytes(b"npz")
    result = CliRunner().invoke(app, ["check", "--config", str(cfg)], env=env)
    assert "heads " in result.output and "not a readable file" not in result.output


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("daemon:\n  shutdown_timeout: -3\n", "daemon.shutdown_timeout"),
        ("alerts:\n  give_up_after: -7200\n", "alerts.give_up_after"),
        ("alerts:\n  group_wait: -1.5\n", "alerts.group_wait"),
        ("spikes:\n  lateness: '-2m'\n", "spikes.lateness"),
        ("daemon:\n  lease_ttl: .nan\n", "daemon.lease_ttl"),
    ],
)
def test_negative_durations_are_refused_everywhere(setting: str, path: str) -> None:
    issues = _issues(GOOD + setting)
    assert any(f"bad.yaml:12: {path}" in i and "cannot be negative" in i for i in issues), issues


def test_negative_interval_is_refused_like_other_durations() -> None:
    issues = _issues(GOOD.replace("interval: 5m", "interval: -300"))
    assert any("sources[0].interval" in i and "cannot be negative" in i for i in issues), issues
    assert parse_duration(0) == 0 and parse_duration("0s") == 0
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(-1)


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("", "no brands configured"),
        ("", "no sources configured"),
        (GOOD.split("sources:")[0], "no sources configured"),
        ("sources:" + GOOD.split("sources:")[1], "no brands configured"),
    ],
)
def test_check_warns_about_a_config_without_brands_or_sources(
    tmp_path: Path, text: str, warning: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["check", "--config", str(cfg)], env={"REPMON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert result.exit_code == 1, result.output
    assert warning in " ".join(result.output.split())


def test_check_creates_no_database_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    db = tmp_path / "typo" / "repmon.db"
    cfg.write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["check", "--config", str(cfg)], env={"REPMON_DATABASE_URL": f"sqlite:///{db}"}
    )
    assert "does not exist yet" in " ".join(result.output.split())
    assert not db.parent.exists()


@pytest.mark.parametrize(
    ("keywords", "line", "where", "fix"),
    [
        # YAML 1.1 reads these unquoted words as booleans and numbers, not as brand names
        ("keywords: [acme, ON, NO, 1984]", 5, "keywords[1]", 'ON as true, not as text: quote it, e.g. "ON"'),
        ("keywords: [acme, ON, NO, 1984]", 5, "keywords[2]", 'NO as false, not as text: quote it, e.g. "NO"'),
        ("keywords: [acme, ON, NO, 1984]", 5, "keywords[3]", 'a number, not as text: quote it, e.g. "1984"'),
        # an unquoted '#' starts a comment: the item is empty
        ("keywords:\n      - acme\n      - #acme", 7, "keywords[1]", 'quote it: - "#acme"'),
        ("keywords: acme", 5, "keywords", "a list is expected, not the single text 'acme': write [\"acme\"]"),
    ],
)
def test_yaml_type_surprises_say_how_to_write_it(keywords: str, line: int, where: str, fix: str) -> None:
    issues = _issues(GOOD.replace('keywords: ["acme"]', keywords))
    assert any(i.startswith(f"bad.yaml:{line}: brands[0].{where}: ") and fix in i for i in issues), issues
    assert not any("Input should be a valid" in i for i in issues), issues


def test_check_warns_about_a_query_without_positive_terms(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        GOOD.replace('keywords: ["acme"]', "keywords: [\"acme\"]\n    query: 'NOT lang:de'"), encoding="utf-8"
    )
    result = CliRunner().invoke(
        app, ["check", "--config", str(cfg)], env={"REPMON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    flat = " ".join(result.output.split())
    assert "brand Acme: query 'NOT lang:de' matches posts that contain none of its words" in flat, flat
    assert "acme AND (NOT lang:de)" in flat
    fine = tmp_path / "fine.yaml"
    fine.write_text(GOOD.replace('keywords: ["acme"]', "query: 'acme AND NOT lang:de'"), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["check", "--config", str(fine)], env={"REPMON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert "none of its words" not in " ".join(result.output.split())


def test_brand_thresholds_override_only_the_values_they_set() -> None:
    text = GOOD.replace(
        'keywords: ["acme"]', 'keywords: ["acme"]\n    thresholds:\n      praise_min_positive: 0.8'
    )
    text += "  - name: Other\n    type: rss\n    url: https://example.org/o.xml\n"
    text += "thresholds:\n  complaint_min: 0.95\n  large_account_followers: 50000\n"
    text = text.replace("sources:", "  - name: Plain\n    keywords: [plain]\nsources:")
    settings = parse_config(text, "t.yaml").settings
    own = settings.thresholds_for("Acme")
    assert own.praise_min_positive == 0.8  # the brand's own value
    assert own.complaint_min == 0.95 and own.large_account_followers == 50000  # the global block's
    assert own.complaint_min_reach == 0  # set nowhere: the built-in default
    plain = settings.thresholds_for("Plain")
    assert plain.praise_min_positive == "auto" and plain.complaint_min == 0.95


def test_example_config_brand_thresholds_inherit_the_global_block() -> None:
    example = (REPO / "config" / "example.yaml").read_text(encoding="utf-8")
    example = example.replace("large_account_followers: 10000", "large_account_followers: 50000")
    settings = parse_config(example, "e.yaml").settings
    own = settings.thresholds_for("Spoorweg Noord")
    assert own.large_account_followers == 50000 and own.complaint_min == 0.7
    assert settings.thresholds_for("Spoorlijn Zuid").complaint_min == 0.6


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("htp:/127.0.0.1:8701/a.xml", "the scheme 'htp' is not http or https"),
        ('"not a url"', "is not a URL (it contains spaces)"),
        ('""', "empty URL; write a full URL like https://"),
        ("example.org/feed.xml", "has no scheme; write https://example.org/feed.xml"),
        ("http:/example.org/feed.xml", "has no host; write http://example.org/feed.xml"),
        ("file:///tmp/feed.xml", "only http:// and https:// URLs are fetched"),
    ],
)
def test_source_urls_must_be_http_urls_with_a_host(url: str, fix: str) -> None:
    issues = _issues(GOOD.replace("url: https://example.org/feed.xml", f"url: {url}"))
    assert any(i.startswith("bad.yaml:9: sources[0].url: ") and fix in i for i in issues), issues


def test_other_source_url_options_are_checked_too() -> None:
    text = GOOD + "  - name: toots\n    type: mastodon\n    instance_url: mastodon.social\n    tags: [acme]\n"
    issues = _issues(text)
    assert any(
        i.startswith("bad.yaml:13: sources[1].instance_url: ") and "write https://mastodon.social" in i
        for i in issues
    ), issues


def test_slack_api_url_must_be_an_http_url() -> None:
    issues = _issues(GOOD + "slack:\n  api_url: slack.com/api\n")
    assert issues == [
        "bad.yaml:12: slack.api_url: 'slack.com/api' has no scheme; write https://slack.com/api"
    ]
    ok = parse_config(GOOD + "slack:\n  api_url: http://127.0.0.1:8702/api/\n", "ok.yaml")
    assert ok.settings.slack.api_url == "http://127.0.0.1:8702/api/"


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgres://repmon:pw@db/repmon", "postgres:// is not a database scheme SQLAlchemy knows; write postgresql+psycopg://"),
        ("postgresql+psycopg2://repmon@db/repmon", "the PostgreSQL driver 'psycopg2' that postgresql+psycopg2:// uses is not installed"),
        ("mysql://repmon@db/repmon", "repmon stores its data in SQLite or PostgreSQL, not 'mysql'"),
        ("var/repmon.db", "not a database URL; write e.g. sqlite:///var/repmon.db"),
    ],
)  # fmt: skip
def test_storage_url_must_be_usable(url: str, fix: str) -> None:
    if "psycopg2" in url and importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here")
    issues = _issues(GOOD + f"storage:\n  url: {url}\n")
    assert any(i.startswith("bad.yaml:12: storage.url: ") and fix in i for i in issues), issues
    assert not any(":pw@" in i for i in issues)


def test_classifier_device_is_checked_on_load() -> None:
    issues = _issues(GOOD + "classifier:\n  device: gpu\n")
    assert any("bad.yaml:12: classifier.device: unknown device 'gpu'" in i for i in issues), issues
    issues = _issues(GOOD + "classifier:\n  model: default\n  device: cuda\n")
    assert any(
        "bad.yaml:11: classifier:" in i and "the default model runs on the CPU only" in i for i in issues
    )
    assert parse_config(GOOD + "classifier:\n  model: transformers:/m\n  device: cuda:1\n", "ok.yaml")


MANY_PROBLEMS = """\
brands:
  - name: Acme
    keywords: ["acme"]
    query: 'acme AND (rail OR'
    compare_with: ["Nope"]
    channels: webcare
  - name: Acme
    keywords: ["acme2"]
sources:
  - name: news
    type: rsss
    url: https://example.org/feed.xml
  - name: feed
    type: rss
    url: htp:/127.0.0.1:8701/a.xml
    interval: soon
alerts:
  group_wiat: 30s
"""


def test_every_problem_is_reported_in_one_pass_with_its_line() -> None:
    # The settings model fails (channels, interval, group_wiat): the source type, the query, the
    # unknown compare_with brand, the duplicate name and the URL are still reported, each on its line.
    issues = _issues(MANY_PROBLEMS)
    expected = [
        "bad.yaml:4: brands[0].query:",
        "bad.yaml:5: brands[0].compare_with[0]: unknown brand 'Nope'",
        "bad.yaml:6: brands[0].channels: a list is expected",
        "bad.yaml:7: brands[1].name: brand names must be unique; 'Acme' is repeated",
        "bad.yaml:11: sources[0].type: unknown source type 'rsss'",
        "bad.yaml:15: sources[1].url: 'htp:/127.0.0.1:8701/a.xml': the scheme 'htp'",
        "bad.yaml:16: sources[1].interval: 'soon' is not a duration",
        "bad.yaml:18: alerts.group_wiat: unknown setting",
    ]
    assert len(issues) == len(expected), issues
    for issue, start in zip(issues, expected, strict=True):
        assert issue.startswith(start), (start, issues)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 9 31 2 *", "'0 9 31 2 *' never fires (no date matches it)"),
        ("0 9 30 2 *", "'0 9 30 2 *' never fires"),
        ("0 9 29 2 *", "'0 9 29 2 *' fires less than once in two years"),
        # croniter reads a 6th field as seconds: once a minute would become 60 runs a minute
        ("0 9 * * mon *", "'0 9 * * mon *' is not a 5-field cron expression"),
        ("0 9 * * mon 2030", "is not a 5-field cron expression"),
        ("@reboot", "is not a 5-field cron expression"),
        ("weekly", "is not a 5-field cron expression"),
    ],
)
def test_digest_schedule_must_be_five_fields_and_fire(schedule: str, expected: str) -> None:
    issues = _issues(GOOD + f'digest:\n  schedule: "{schedule}"\n')
    assert any(i.startswith("bad.yaml:12: digest.schedule:") and expected in i for i in issues), issues
    assert any("write e.g. '0 9 * * mon'" in i for i in issues), issues


@pytest.mark.parametrize(
    "schedule", ["0 9 * * mon", "30 7 * * *", "0 9 1 * *", "0 9 1 1 *", "@weekly", "@daily"]
)
def test_usual_digest_schedules_are_accepted(schedule: str) -> None:
    settings = parse_config(GOOD + f'digest:\n  schedule: "{schedule}"\n', "ok.yaml").settings
    assert settings.digest.schedule == schedule


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "defualt",
            "unknown classifier model 'defualt' (did you mean 'default'?); write default (or embedded)",
        ),
        ("lexcon", "(did you mean 'lexicon'?)"),
        (
            "bert-base",
            "unknown classifier model 'bert-base'; write default (or embedded), lexicon, or transformers:",
        ),
        ("default:extra", "unknown classifier model 'default:extra'"),
        ("transformers:", "'transformers:' names no model; write transformers:<hub id or local directory>"),
        ("transformers:  ", "names no model"),
        ("transformers", "'transformers' names no model"),
    ],
)
def test_unknown_classifier_model_is_a_config_error(model: str, expected: str) -> None:
    issues = _issues(GOOD + f'classifier:\n  model: "{model}"\n')
    assert any(i.startswith("bad.yaml:12: classifier.model:") and expected in i for i in issues), issues


@pytest.mark.parametrize(
    "model",
    [
        "default",
        "embedded",
        "Default",
        " lexicon ",
        "LEXICON",
        "stub",
        "transformers:acme/model",
        "Transformers:./m",
    ],
)
def test_every_spec_the_registry_loads_is_accepted(model: str) -> None:
    settings = parse_config(GOOD + f'classifier:\n  model: "{model}"\n', "ok.yaml").settings
    assert settings.classifier.model == model


def test_check_refuses_a_misspelt_classifier_and_a_digest_that_never_fires(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        GOOD + 'classifier:\n  model: defualt\ndigest:\n  schedule: "0 9 31 2 *"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["check", "--config", str(cfg)])
    output = " ".join(result.output.split())
    assert result.exit_code != 0, output
    assert "valid" not in output.replace("invalid", "")
    assert "classifier.model: unknown classifier model 'defualt'" in output
    assert "digest.schedule: '0 9 31 2 *' never fires" in output
