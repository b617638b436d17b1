"""Broker TLS/SASL settings reach Faust's credentials and the aiokafka clients it builds."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faust.auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials

from streamapp.app import create_app, faust_options
from streamapp.kafka_security import FileTokenProvider, aiokafka_security, broker_credentials
from streamapp.settings import Settings


def make(**overrides: Any) -> Settings:
    """Settings pointing at a (never contacted) broker and database, plus `overrides`."""
    return Settings(broker_url="kafka://k1:9093", database_url="postgresql://u@h/db", **overrides)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA certificate and a client certificate/key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "client.key", folder / "client.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return {"cafile": cert, "certfile": cert, "keyfile": key}


def test_plaintext_is_faust_default() -> None:
    settings = make()
    assert broker_credentials(settings) is None
    assert aiokafka_security(settings) == {"security_protocol": "PLAINTEXT"}


def test_ssl_with_ca_and_client_certificate(ca: dict[str, Path]) -> None:
    settings = make(
        broker_security_protocol="SSL",
        broker_ssl_cafile=ca["cafile"],
        broker_ssl_certfile=ca["certfile"],
        broker_ssl_keyfile=ca["keyfile"],
    )
    credentials = broker_credentials(settings)
    assert isinstance(credentials, SSLCredentials)
    options = aiokafka_security(settings)
    assert options["security_protocol"] == "SSL"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    # The CA file was loaded (the system store alone would not name our test CA).
    assert any(entry["subject"] == ((("commonName", "test"),),) for entry in context.get_ca_certs())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_user_password(mechanism: str) -> None:
    settings = make(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism=mechanism,
        broker_sasl_username="svc",
        broker_sasl_password="pw",
    )
    assert isinstance(broker_credentials(settings), SASLCredentials)
    options = aiokafka_security(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls() -> None:
    settings = make(
        broker_security_protocol="SASL_PLAINTEXT", broker_sasl_username="u", broker_sasl_password="p"
    )
    options = aiokafka_security(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["ssl_context"] is None


async def test_oauthbearer_rereads_its_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    settings = make(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="OAUTHBEARER",
        broker_sasl_oauth_token_file=token,
    )
    assert isinstance(broker_credentials(settings), OAuthCredentials)
    provider = aiokafka_security(settings)["sasl_oauth_token_provider"]
    assert isinstance(provider, FileTokenProvider)
    assert await provider.token() == "first"
    token.write_text("rotated")
    assert await provider.token() == "rotated"


def test_gssapi() -> None:
    settings = make(
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_mechanism="GSSAPI",
        broker_sasl_kerberos_domain_name="kafka.example.com",
    )
    assert isinstance(broker_credentials(settings), GSSAPICredentials)
    options = aiokafka_security(settings)
    assert options["sasl_kerberos_service_name"] == "kafka"
    assert options["sasl_kerberos_domain_name"] == "kafka.example.com"


def test_credentials_reach_the_faust_app_and_its_producer() -> None:
    settings = make(
        broker_security_protocol="SASL_SSL", broker_sasl_username="svc", broker_sasl_password="pw"
    )
    assert isinstance(faust_options(settings)["broker_credentials"], SASLCredentials)
    app = create_app(settings, pipelines=[])
    assert isinstance(app.conf.broker_credentials, SASLCredentials)
    # The producer (which also creates topics) and the consumer read the credentials from the app.
    assert app.producer.credentials is app.conf.broker_credentials  # type: ignore[attr-defined]
    assert "pw" not in repr(app.conf.broker_credentials)


class _Refused(Exception):
    pass


async def test_dead_letters_cli_connects_with_the_broker_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from streamapp import deadletter_cli

    seen: list[dict[str, object]] = []

    class Recorder:
        def __init__(self, **kwargs: object) -> None:
            seen.append(kwargs)

        async def start(self) -> None:
            raise _Refused

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(deadletter_cli, "AIOKafkaConsumer", Recorder)
    monkeypatch.setattr(deadletter_cli, "AIOKafkaProducer", Recorder)
    settings = make(
        broker_security_protocol="SASL_SSL", broker_sasl_username="svc", broker_sasl_password="pw"
    )
    with pytest.raises(_Refused):
        async for _ in deadletter_cli.read_dead_letters(settings):
            pass
    assert seen[-1]["security_protocol"] == "SASL_SSL"
    assert seen[-1]["sasl_plain_password"] == "pw"

    async def no_letters(settings: Settings) -> AsyncIterator[tuple[int, int, object]]:
        return
        yield

    monkeypatch.setattr(deadletter_cli, "read_dead_letters", no_letters)
    args = argparse.Namespace(pipeline=None, reason=None, ids=None, dry_run=False, limit=10, json=False)
    with pytest.raises(_Refused):
        await deadletter_cli.replay_letters(settings, args)
    assert len(seen) == 2
    assert all(kwargs["security_protocol"] == "SASL_SSL" for kwargs in seen)
