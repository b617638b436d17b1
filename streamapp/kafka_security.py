"""TLS and SASL to the broker: the settings turned into Faust credentials and aiokafka options."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from aiokafka.conn import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faust.auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from streamapp.settings import Settings


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    """OAUTHBEARER tokens read from a file at every authentication.

    Short-lived tokens are refreshed by something else (a sidecar, a projected
    service-account token); re-reading picks up the new one on the next connect.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        return text.strip()


def broker_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (None for plaintext protocols)."""
    if not settings.broker_tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None,
        certfile=str(settings.broker_ssl_certfile) if settings.broker_ssl_certfile else None,
        keyfile=str(settings.broker_ssl_keyfile) if settings.broker_ssl_keyfile else None,
        password=(
            settings.broker_ssl_key_password.get_secret_value() if settings.broker_ssl_key_password else None
        ),
    )
    context.check_hostname = settings.broker_ssl_check_hostname
    return context


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials`; None for PLAINTEXT (Faust's default then applies)."""
    protocol = settings.broker_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = broker_ssl_context(settings)
    if protocol == "SSL":
        assert context is not None  # broker_tls is true for SSL
        return SSLCredentials(context)
    mechanism = settings.broker_sasl_mechanism
    credentials: CredentialsT
    if mechanism == "OAUTHBEARER":
        assert settings.broker_sasl_oauth_token_file is not None  # checked by the settings
        credentials = OAuthCredentials(
            oauth_cb=FileTokenProvider(settings.broker_sasl_oauth_token_file), ssl_context=context
        )
    elif mechanism == "GSSAPI":
        credentials = GSSAPICredentials(
            kerberos_service_name=settings.broker_sasl_kerberos_service_name,
            kerberos_domain_name=settings.broker_sasl_kerberos_domain_name,
            ssl_context=context,
        )
    else:
        password = settings.broker_sasl_password
        credentials = SASLCredentials(
            username=settings.broker_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=mechanism,
            ssl_context=context,
        )
    return credentials


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client the CLIs build themselves.

    Faust's own mapping, so a CLI connects exactly as the worker does.
    """
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))


def bootstrap(broker_url: str) -> list[str]:
    """`kafka://h1:9092;h2:9092` (Faust's form) -> aiokafka's list of host:port."""
    servers: list[str] = []
    for part in broker_url.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            servers.append(part.split("://", 1)[-1])
    return servers
