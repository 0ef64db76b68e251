"""Settings: the documented example, precedence, and messages that name the setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError, Settings, load_settings, parse_duration

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "agent.example.yaml"


def test_example_documents_every_setting_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_API_TOKEN", "from-the-environment")
    documented = yaml.safe_load(EXAMPLE.read_text())
    for section, model in Settings.model_fields.items():
        fields = set(model.annotation.model_fields) - {"config"}  # type: ignore[union-attr]
        assert set(documented[section]) == fields, section
    settings = load_settings(EXAMPLE)
    assert settings.sei.api_base == "https://app.harness.io/gratis/sei/api"
    assert settings.agent.lookback == timedelta(hours=24)


def test_environment_beats_file_and_flags_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "a.yaml"
    config.write_text("agent:\n  lookback: 2d\n  interval: 60\nsei:\n  environment: eu\n")
    monkeypatch.setenv("AGENT_INTERVAL", "120")
    monkeypatch.setenv("AGENT_CD_JOBS", "deploy-*, release/*")
    settings = load_settings(config, {"agent": {"interval": 30}})
    assert settings.agent.lookback == timedelta(days=2)
    assert settings.agent.interval == 30
    assert settings.agent.cd_jobs == ["deploy-*", "release/*"]
    assert settings.sei.api_base == "https://accounts.eu.harness.io/sei/api"
    monkeypatch.setenv("AGENT_CONFIG", str(config))
    assert load_settings().agent.interval == 120


@pytest.mark.parametrize(
    ("base", "api_base"),
    [
        ("https://sei.example/sei/api", "https://sei.example/sei/api"),
        ("https://sei.example/sei/api/", "https://sei.example/sei/api"),
        ("https://sei.example/sei/api/v1", "https://sei.example/sei/api"),
        ("https://sei.example/sei/api/v1/", "https://sei.example/sei/api"),
    ],
)
def test_base_url_with_or_without_v1(base: str, api_base: str) -> None:
    assert load_settings(overrides={"sei": {"base_url": base}}).sei.api_base == api_base


def test_secrets_are_hidden_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEI_API_KEY", "very-secret-key")
    monkeypatch.setenv("JENKINS_USER", "u")
    monkeypatch.setenv("JENKINS_API_TOKEN", "very-secret-token")
    settings = load_settings()
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24h", 86400), ("7d", 604800), ("90m", 5400), ("1d12h", 129600), ("45", 45), ("1w", 604800)],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text).total_seconds() == expected


@pytest.mark.parametrize("text", ["", "soon", "0h", "5x", "3h soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_missing_required_settings_are_all_named() -> None:
    settings = load_settings()
    with pytest.raises(ConfigError) as caught:
        settings.require("jenkins.url", "sei.base_url", "sei.api_key", "sei.instance_guid")
    message = str(caught.value)
    for name in (
        "JENKINS_URL",
        "SEI_BASE_URL or SEI_ENVIRONMENT",
        "SEI_API_KEY",
        "SEI_INSTANCE_GUID",
    ):
        assert name in message


def test_top_level_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    config = tmp_path / "list.yaml"
    config.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml"):
        load_settings(config)


def test_rules_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENT_RULES", '[{"jobs": "*/deploy-*", "results": ["FAILURE"], "cfr_status": true}]'
    )
    [rule] = load_settings().agent.rules
    assert (rule.jobs, rule.results, rule.cfr_status) == (["*/deploy-*"], ["FAILURE"], True)


def test_push_artifacts_needs_the_integration_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEI_PUSH_ARTIFACTS", "true")
    with pytest.raises(ConfigError, match="SEI_INTEGRATION_ID"):
        load_settings()


def test_tls_and_proxy_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.transport import proxy_for

    monkeypatch.setenv("JENKINS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="JENKINS_CA_BUNDLE"):
        load_settings()
    monkeypatch.delenv("JENKINS_CA_BUNDLE")
    monkeypatch.setenv("SEI_PROXY", "not a proxy")
    with pytest.raises(ConfigError, match="SEI_PROXY"):
        load_settings()
    monkeypatch.setenv("SEI_PROXY", "http://proxy.internal:3128")
    settings = load_settings()
    assert proxy_for("https://sei.example/api", settings.sei.proxy) == "http://proxy.internal:3128"
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:8080")
    monkeypatch.setenv("NO_PROXY", "jenkins.internal")
    assert proxy_for("https://sei.example/api", None) == "http://env-proxy:8080"
    assert proxy_for("https://jenkins.internal/", None) is None


def test_insecure_is_logged_at_every_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agent.jenkins_client import JenkinsClient

    monkeypatch.setenv("JENKINS_URL", "https://jenkins.example/")
    monkeypatch.setenv("JENKINS_INSECURE", "1")
    with caplog.at_level("WARNING"):
        JenkinsClient(load_settings().jenkins).close()
    assert "NOT verified (JENKINS_INSECURE=true)" in caplog.text
