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


def _kubernetes_secret_volume(root: Path, files: dict[str, str]) -> Path:
    """The kubelet's layout: each name a symlink to ..data/name, ..data to a timestamped dir."""
    stamped = root / "..2026_11_27_06_00_00.000000000"
    stamped.mkdir(parents=True)
    for name, value in files.items():
        (stamped / name).write_text(value)
    (root / "..data").symlink_to(stamped.name)
    for name in files:
        (root / name).symlink_to(f"..data/{name}")
    return root


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = _kubernetes_secret_volume(
        tmp_path / "secrets",
        {
            # Editors and `kubectl create secret --from-file` leave a trailing newline.
            "STREAMAPP_SALESFORCE_SECRET": "from-a-file\n",
            "streamapp_database_url": "postgresql://u:p@db:5432/s\n",
            "STREAMAPP_BROKER_SASL_PASSWORD": "sasl-pw",
        },
    )
    monkeypatch.setenv("STREAMAPP_SECRETS_DIR", str(secrets))
    settings = load_settings()
    assert settings.salesforce_secret is not None
    assert settings.salesforce_secret.get_secret_value() == "from-a-file"
    assert settings.postgres_dsn == "postgresql://u:p@db:5432/s"
    assert settings.broker_sasl_password is not None
    assert settings.broker_sasl_password.get_secret_value() == "sasl-pw"
    assert settings.secrets_dir == secrets
    # An environment variable wins over a file.
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "from-env")
    overridden = Settings().salesforce_secret
    assert overridden is not None
    assert overridden.get_secret_value() == "from-env"


def test_no_secrets_dir_reads_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "STREAMAPP_SALESFORCE_SECRET").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert Settings().salesforce_secret is None


def test_prod_secret_from_a_file_satisfies_the_prod_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "STREAMAPP_SALESFORCE_SECRET").write_text("s\n")
    monkeypatch.setenv("STREAMAPP_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMAPP_ENV", "prod")
    assert Settings().salesforce_auth_enabled


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"STREAMAPP_BROKER_SECURITY_PROTOCOL": "SASL_SSL"}, "STREAMAPP_BROKER_SASL_PASSWORD"),
        (
            {
                "STREAMAPP_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "STREAMAPP_BROKER_SASL_MECHANISM": "SCRAM-SHA-512",
                "STREAMAPP_BROKER_SASL_USERNAME": "u",
            },
            "STREAMAPP_BROKER_SASL_PASSWORD",
        ),
        (
            {
                "STREAMAPP_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
                "STREAMAPP_BROKER_SASL_MECHANISM": "OAUTHBEARER",
            },
            "STREAMAPP_BROKER_SASL_OAUTH_TOKEN_FILE",
        ),
        ({"STREAMAPP_BROKER_SECURITY_PROTOCOL": "SSL", "STREAMAPP_BROKER_SSL_CERTFILE": "/c.pem"}, "KEYFILE"),
    ],
)
def test_incomplete_broker_security_is_refused(
    env: dict[str, str], missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=missing):
        Settings()


def test_unknown_broker_protocol_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(broker_security_protocol="TLS")
