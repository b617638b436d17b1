"""Settings: env prefix, parsing, frozen, and the services.env fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamapp.settings import Settings, load_settings


def test_env_prefix_and_csv_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_WEB_PORT", "7001")
    monkeypatch.setenv("STREAMAPP_SALESFORCE_ORG_ALLOWLIST", " 00D1 , 00D2,,")
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "s3cret")
    settings = Settings()
    assert settings.web_port == 7001
    assert settings.salesforce_org_allowlist == ["00D1", "00D2"]
    assert settings.salesforce_auth_enabled
    assert "s3cret" not in repr(settings)


def test_frozen_and_validated() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.web_port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(topic_partitions=0)
    assert not settings.salesforce_auth_enabled


def test_missing_urls_are_explained() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="STREAMAPP_BROKER_URL"):
        _ = settings.kafka_url
    with pytest.raises(ValueError, match="STREAMAPP_DATABASE_URL"):
        _ = settings.postgres_dsn


def test_services_env_file_fills_in_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_DATA_DIR", str(tmp_path))
    (tmp_path / "services.env").write_text(
        "STREAMAPP_BROKER_URL=kafka://127.0.0.1:1234\nSTREAMAPP_DATABASE_URL=postgresql://a@/b\n"
    )
    settings = load_settings()
    assert settings.kafka_url == "kafka://127.0.0.1:1234"
    assert settings.postgres_dsn == "postgresql://a@/b"
    # A real environment variable wins over the file.
    monkeypatch.setenv("STREAMAPP_BROKER_URL", "kafka://real:9092")
    assert load_settings().kafka_url == "kafka://real:9092"


def test_prod_requires_a_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="STREAMAPP_SALESFORCE_SECRET"):
        Settings(env="prod")
    assert Settings(env="prod", salesforce_secret="x").salesforce_auth_enabled


def test_empty_secret_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "")
    assert not Settings().salesforce_auth_enabled
