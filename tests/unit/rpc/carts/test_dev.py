"""What the carts pipeline adds to `streamapp dev` (streamapp/rpc/carts/dev.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamapp.config.carts import CartsSettings
from streamapp.dev import prepare_credentials
from streamapp.pipelines.carts import pipeline
from streamapp.preflight import server_ports
from streamapp.rpc.carts.auth import TokenVerifier
from streamapp.rpc.carts.dev import mint_carts_token, offer
from streamapp.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare_credentials() writes to os.environ: undone after each test through monkeypatch.
    monkeypatch.setenv("STREAMAPP_CARTS_JWT_SECRET", "")
    monkeypatch.delenv("STREAMAPP_CARTS_JWT_SECRET")


def test_the_minted_carts_token_is_taken_by_the_server(tmp_path: Path) -> None:
    credentials = prepare_credentials(tmp_path, [pipeline], mint_admin=False)
    user = credentials.kept["carts_user"]
    settings = CartsSettings(data_dir=tmp_path)
    caller = TokenVerifier(settings).verify(mint_carts_token(settings, user))
    assert str(caller.user_uuid) == user
    assert caller.admin
    # With an audience and issuer configured, the token names them.
    strict = CartsSettings(data_dir=tmp_path, carts_jwt_audience="shop", carts_jwt_issuer="dev")
    assert TokenVerifier(strict).verify(mint_carts_token(strict, user)).admin


def test_the_offer_hands_the_token_and_the_address_on(tmp_path: Path) -> None:
    credentials = prepare_credentials(tmp_path, [pipeline], mint_admin=False)
    settings = Settings(data_dir=tmp_path, carts_grpc_port=7002)
    offered = offer(settings, credentials.kept)
    token = offered.environment["STREAMAPP_DEV_CARTS_TOKEN"]
    assert TokenVerifier(settings.of(CartsSettings)).verify(token).admin
    assert offered.env["STREAMAPP_DEV_CARTS_TOKEN"] == token
    assert offered.env["STREAMAPP_DEV_GRPC"] == "127.0.0.1:7002"
    assert offered.simulator == ["--grpc", "127.0.0.1:7002"]
    assert ("carts gRPC", "127.0.0.1:7002") in offered.rows


def test_a_worker_checks_the_grpc_port_too(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, web_port=7000, carts_grpc_port=7002)
    worker = server_ports(settings, ingest=False, worker=True, pipelines=[pipeline])
    assert ("STREAMAPP_CARTS_GRPC_PORT", "127.0.0.1", 7002) in worker
    assert server_ports(settings, ingest=True, worker=False, pipelines=[pipeline]) == [
        ("STREAMAPP_INGEST_PORT", settings.web_bind, settings.ingest_port)
    ]
