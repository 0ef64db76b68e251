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
    with pytest.raises(ConfigError) as refused:  # copied and not filled in: refused
        load_settings(EXAMPLE)
    assert "jenkins.url (line 16 of" in str(refused.value)
    monkeypatch.setenv("JENKINS_URL", "https://ci.acme.test/")
    settings = load_settings(EXAMPLE)  # `register` runs: the all-zero GUID is refused later
    with pytest.raises(ConfigError, match="all-zero placeholder; create the instance with"):
        settings.require("sei.instance_guid")
    monkeypatch.setenv("SEI_INSTANCE_GUID", "0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e")
    settings = load_settings(EXAMPLE)
    settings.require("sei.instance_guid")
    assert settings.sei.api_base == "https://app.harness.io/gratis/sei/api"
    assert settings.agent.lookback == timedelta(hours=24)
    assert settings.agent.rules == []  # the example's rules are commented out


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
    from agent.http.proxy import proxy_for

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
    from agent.jenkins.client import JenkinsClient

    monkeypatch.setenv("JENKINS_URL", "https://jenkins.example/")
    monkeypatch.setenv("JENKINS_INSECURE", "1")
    with caplog.at_level("WARNING"):
        JenkinsClient(load_settings().jenkins).close()
    assert "NOT verified (JENKINS_INSECURE=true)" in caplog.text


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("agent:\n  look_back: 2d\n", "unknown setting agent.look_back (line 2 of"),
        ("agent:\n  cd_job: [x]\n", "agent.cd_job (line 2 of"),
        ("seii:\n  api_key: k\n", "unknown setting seii (line 1 of"),
        ("agent:\n  rules:\n    - job: [deploy]\n      cfr_status: true\n", "rules[0].job"),
    ],
)
def test_a_misspelt_key_is_an_error_naming_it_its_line_and_the_closest_name(
    tmp_path: Path, text: str, wanted: str
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert wanted in str(error.value) and "did you mean" in str(error.value)


def test_agent_rules_that_is_not_json_or_has_unknown_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RULES", '[{"jobs": ["a"], "cfr_status": tru}]')
    with pytest.raises(ConfigError, match=r"AGENT_RULES: not JSON .* at line 1, column"):
        load_settings()
    monkeypatch.setenv("AGENT_RULES", '[{"job": ["a"], "cfr_status": true}]')
    with pytest.raises(ConfigError, match=r"AGENT_RULES\[0\]\.job; did you mean jobs\?"):
        load_settings()
    monkeypatch.setenv("AGENT_RULES", '[{"jobs": ["a"], "results": ["FAILED"]}]')
    with pytest.raises(ConfigError, match=r"AGENT_RULES.*FAILED is not a Jenkins result"):
        load_settings()


def test_a_glob_list_written_as_json_in_a_glob_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_CD_JOBS", '["deploy-*", "release/*"]')
    with pytest.raises(ConfigError, match="AGENT_CD_JOBS: write the globs separated by commas"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEI_API_KEY", "replace-with-an-sei-api-key"),
        ("JENKINS_URL", "https://jenkins.example.com/"),
        ("SEI_API_KEY", "<SEI_API_KEY>"),
    ],
)
def test_placeholders_from_the_examples_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"invalid setting {name}: ") as error:
        load_settings()
    assert "placeholder" in str(error.value)


def test_secrets_are_stripped_and_control_characters_refused_unshown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEI_API_KEY", "  key-from-a-file-1234\r\n")
    assert load_settings().sei.api_key.get_secret_value() == "key-from-a-file-1234"  # type: ignore[union-attr]
    monkeypatch.setenv("SEI_API_KEY", "first-half\nsecond-half")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "SEI_API_KEY" in str(error.value) and "control character" in str(error.value)
    assert "half" not in str(error.value)


def test_unknown_agent_and_sei_variables_are_named_jenkins_ones_are_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENT_LOOKBAK", "2d")
    monkeypatch.setenv("SEI_APIKEY", "x")
    monkeypatch.setenv("JENKINS_HOME", "/var/jenkins_home")
    with caplog.at_level("WARNING"):
        load_settings()
    assert "AGENT_LOOKBAK is not a setting of the agent, ignored; did you mean AGENT_LOOKBACK?" in (
        caplog.text
    )
    assert "SEI_APIKEY" in caplog.text and "JENKINS_HOME" not in caplog.text


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_bytes("agent:\n  project_name: Zürich\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(config)


def test_satellite_metadata_keys_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "satellite.yml"
    config.write_text(
        "satellite:\n  url: https://app.harness.io/gratis/sei/api\n  api_key: k-1234\n"
        "integrations:\n  - id: '7'\n    application: jenkins\n    url: https://ci.acme.test/\n"
        "    metadata: {instance_uuid: 0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "integrations[0].metadata.instance_uuid (line 8 of" in str(error.value)
    assert "did you mean instance_guid?" in str(error.value)


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [
        ("JENKINS_URL", "http://ci.acme.test:99999/", "not a valid URL"),
        ("AGENT_LOOKBACK", "99999999999999999999d", "longer than any duration"),
    ],
)
def test_values_that_used_to_end_in_a_traceback(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, wanted: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"invalid setting {name}: .*{wanted}"):
        load_settings()


def test_clients_get_resolved_endpoints_or_a_config_error_never_an_assertion() -> None:
    """A client needs its URL and credentials; what resolves them says which is missing (an
    assert would vanish under `python -O` and fail later, far from the cause)."""
    from pydantic import SecretStr

    from agent.config import JenkinsSettings, SeiSettings
    from agent.jenkins.client import JenkinsClient
    from agent.sei.client import SeiClient

    with pytest.raises(ConfigError, match=r"^missing setting: JENKINS_URL$"):
        JenkinsClient(JenkinsSettings())
    with pytest.raises(ConfigError, match=r"^missing setting: SEI_BASE_URL or SEI_ENVIRONMENT$"):
        SeiClient(SeiSettings(api_key="k3y"))
    with pytest.raises(ConfigError, match=r"^missing setting: SEI_API_KEY$"):
        SeiClient(SeiSettings(environment="eu1"))
    both = r"^missing setting: SEI_BASE_URL or SEI_ENVIRONMENT, SEI_API_KEY$"
    with pytest.raises(ConfigError, match=both):
        SeiSettings().endpoint()

    jenkins = JenkinsSettings(url="https://ci.example/jenkins", user="ann", api_token="t0k")
    assert jenkins.endpoint().base == "https://ci.example/jenkins/"
    assert jenkins.endpoint().auth == ("ann", SecretStr("t0k"))
    assert JenkinsSettings(url="https://ci.example").endpoint().auth is None
    sei = SeiSettings(base_url="https://sei.example/v1/", api_key="k3y").endpoint()
    assert (sei.base, sei.api_key.get_secret_value()) == ("https://sei.example", "k3y")
