"""Settings: env prefix, parsing, frozen, and the services.env fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamapp.cli import main
from streamapp.config.carts import CartsSettings
from streamapp.config.licenses import LicensesSettings
from streamapp.errors import InvalidSettings
from streamapp.settings import Settings, load_settings


def test_env_prefix_and_csv_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_WEB_PORT", "7001")
    monkeypatch.setenv("STREAMAPP_SALESFORCE_ORG_ALLOWLIST", " 00D1 , 00D2,,")
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "s3cret")
    settings = LicensesSettings()
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
    assert not settings.of(LicensesSettings).salesforce_auth_enabled


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


# In the order they are reported: the core's, then each pipeline's (by name).
PROD_DOORS = {
    "STREAMAPP_ADMIN_TOKEN": "admin",
    "STREAMAPP_ASSISTANCE_BOT_TOKEN": "bot",
    "STREAMAPP_CARTS_JWT_SECRET": "carts-jwt-secret-of-at-least-32-bytes",
    "STREAMAPP_CARTS_JWT_AUDIENCE": "shop",
    "STREAMAPP_SALESFORCE_SECRET": "sf",
    "STREAMAPP_TASKS_SECRET": "tasks",
}


def test_production_starts_with_open_doors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 3: prod required only the Salesforce secret; now every door's credential, one line each."""
    monkeypatch.setenv("STREAMAPP_ENV", "prod")
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    assert caught.value.problems == [f"{name} must be set when STREAMAPP_ENV=prod" for name in PROD_DOORS]
    for name, value in PROD_DOORS.items():
        monkeypatch.setenv(name, value)
    assert load_settings().env == "prod"
    for missing in PROD_DOORS:
        monkeypatch.setenv(missing, "")  # `FOO=` in an env file: unset
        with pytest.raises(InvalidSettings) as caught:
            load_settings()
        assert caught.value.problems == [f"{missing} must be set when STREAMAPP_ENV=prod"]
        monkeypatch.setenv(missing, PROD_DOORS[missing])


def test_settings_errors_print_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 5: the validation error showed every input, the database password included."""
    monkeypatch.setenv("STREAMAPP_ENV", "prod")
    monkeypatch.setenv("STREAMAPP_DATABASE_URL", "postgresql://app:hunter2-db-password@db/app")
    monkeypatch.setenv("STREAMAPP_CARTS_JWT_SECRET", "short-jwt-key-typed-here")
    monkeypatch.setenv("STREAMAPP_WEB_PORT", "not-a-port-9f3a")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    for secret in ("hunter2", "short-jwt-key-typed-here", "not-a-port-9f3a"):
        assert secret not in err
    lines = err.splitlines()
    assert "streamapp: STREAMAPP_CARTS_JWT_SECRET: must be at least 32 bytes" in lines
    assert any(line.startswith("streamapp: STREAMAPP_WEB_PORT: ") for line in lines)
    assert "Traceback" not in err
    with pytest.raises(ValidationError) as caught:
        CartsSettings(env="prod", database_url="postgresql://app:hunter2@db/app", carts_jwt_secret="short")
    assert "hunter2" not in str(caught.value)
    assert "short" not in str(caught.value).replace("shorter", "")


def test_jwt_audience_is_required_outside_dev() -> None:
    """Finding 6: outside dev a JWT key without an audience takes tokens meant for anyone."""
    key = "carts-jwt-secret-of-at-least-32-bytes"
    with pytest.raises(ValidationError, match="STREAMAPP_CARTS_JWT_AUDIENCE"):
        CartsSettings(env="test", carts_jwt_secret=key)
    assert (
        CartsSettings(env="test", carts_jwt_secret=key, carts_jwt_audience="shop").carts_jwt_audience
        == "shop"
    )
    assert CartsSettings(env="dev", carts_jwt_secret=key).carts_jwt_audience is None


def test_empty_secret_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "")
    assert not LicensesSettings().salesforce_auth_enabled


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
    salesforce_secret = settings.of(LicensesSettings).salesforce_secret
    assert salesforce_secret is not None
    assert salesforce_secret.get_secret_value() == "from-a-file"
    assert settings.postgres_dsn == "postgresql://u:p@db:5432/s"
    assert settings.broker_sasl_password is not None
    assert settings.broker_sasl_password.get_secret_value() == "sasl-pw"
    assert settings.secrets_dir == secrets
    # An environment variable wins over a file.
    monkeypatch.setenv("STREAMAPP_SALESFORCE_SECRET", "from-env")
    overridden = LicensesSettings().salesforce_secret
    assert overridden is not None
    assert overridden.get_secret_value() == "from-env"


def test_no_secrets_dir_reads_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "STREAMAPP_SALESFORCE_SECRET").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert LicensesSettings().salesforce_secret is None


def test_prod_secret_from_a_file_satisfies_the_prod_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every credential prod requires (issue 12), each as a file, the JWT key as typed in it.
    for name in (
        "STREAMAPP_SALESFORCE_SECRET",
        "STREAMAPP_ADMIN_TOKEN",
        "STREAMAPP_TASKS_SECRET",
        "STREAMAPP_ASSISTANCE_BOT_TOKEN",
        "STREAMAPP_CARTS_JWT_AUDIENCE",
    ):
        (tmp_path / name).write_text("s\n")
    (tmp_path / "STREAMAPP_CARTS_JWT_SECRET").write_text("k" * 40 + "\n")
    monkeypatch.setenv("STREAMAPP_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMAPP_ENV", "prod")
    settings = load_settings()
    assert settings.of(LicensesSettings).salesforce_auth_enabled
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s"


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


def test_worker_gc_thresholds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().worker_gc_thresholds == (50_000, 20, 20)
    monkeypatch.setenv("STREAMAPP_WORKER_GC_THRESHOLDS", "[700, 10, 10]")
    assert load_settings().worker_gc_thresholds == (700, 10, 10)
    with pytest.raises(ValidationError):
        Settings(worker_gc_thresholds=(-1, 10, 10))


def test_worker_stream_buffer_becomes_faust_s_stream_buffer_for_workers_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamapp.app import faust_options

    assert Settings().worker_stream_buffer == 16_384
    monkeypatch.setenv("STREAMAPP_WORKER_STREAM_BUFFER", "8192")
    monkeypatch.setenv("STREAMAPP_BROKER_URL", "kafka://127.0.0.1:1")
    settings = load_settings()
    assert faust_options(settings)["stream_buffer_maxsize"] == 8192
    assert faust_options(settings, role="ingest")["stream_buffer_maxsize"] == 4096  # Faust's default
    with pytest.raises(ValidationError):
        Settings(worker_stream_buffer=0)
