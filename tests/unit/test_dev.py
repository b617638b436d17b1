"""`streamapp dev`'s credentials and banner (streamapp/dev.py)."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from streamapp.dev import banner, offers, prepare_credentials, simulator_options
from streamapp.pipelines.carts import pipeline as carts
from streamapp.settings import Settings

# The core's dev runner with the one pipeline that adds to it (streamapp/rpc/carts/dev.py).
PIPELINES = [carts]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare_credentials() writes to os.environ: set and unset through monkeypatch, so
    # whatever it writes is undone after each test.
    for name in ("STREAMAPP_CARTS_JWT_SECRET", "STREAMAPP_ADMIN_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_dev_secrets_are_kept_private_and_stable(tmp_path: Path) -> None:
    first = prepare_credentials(tmp_path, PIPELINES, mint_admin=False)
    secret = os.environ["STREAMAPP_CARTS_JWT_SECRET"]
    assert first.admin_token is None
    assert stat.S_IMODE((tmp_path / "dev-secrets.json").stat().st_mode) == 0o600
    del os.environ["STREAMAPP_CARTS_JWT_SECRET"]
    again = prepare_credentials(tmp_path, PIPELINES, mint_admin=True)
    # A restart keeps the secret and the user (tokens printed before stay valid).
    assert os.environ["STREAMAPP_CARTS_JWT_SECRET"] == secret
    assert again.kept["carts_user"] == first.kept["carts_user"]
    assert again.admin_token is not None
    assert os.environ["STREAMAPP_ADMIN_TOKEN"] == again.admin_token


def test_a_secret_the_user_set_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAPP_CARTS_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("STREAMAPP_ADMIN_TOKEN", "mine")
    credentials = prepare_credentials(tmp_path, PIPELINES, mint_admin=True)
    assert os.environ["STREAMAPP_CARTS_JWT_SECRET"] == "x" * 40
    assert credentials.admin_token == "mine"


def test_banner_names_every_address(tmp_path: Path) -> None:
    credentials = prepare_credentials(tmp_path, PIPELINES, mint_admin=False)
    settings = Settings(data_dir=tmp_path, web_port=7000, ingest_port=7001, carts_grpc_port=7002)
    offered = offers(settings, credentials, PIPELINES)
    (carts_token,) = (offer.environment["STREAMAPP_DEV_CARTS_TOKEN"] for offer in offered)
    text = banner(
        settings,
        credentials,
        offered,
        ingest=True,
        standins="http://127.0.0.1:7003",
        log_file=tmp_path / "streamapp.log",
        simulate=True,
    )
    for expected in (
        "http://127.0.0.1:7000/",
        "http://127.0.0.1:7000/docs",
        "http://127.0.0.1:7001/salesforce/webhook",
        "127.0.0.1:7002",
        carts_token,
        "http://127.0.0.1:7003/",
        str(tmp_path.resolve()),
        "Ctrl-C",
        "admin routes are open in dev",
    ):
        assert expected in text, expected


def test_simulator_options_pass_through() -> None:
    args = argparse.Namespace(rate=60.0, calm=False, systems=["carts", "tasks"], seed=4)
    assert simulator_options(args) == ["--rate", "60", "--systems", "carts,tasks", "--seed", "4"]
    none = argparse.Namespace(rate=None, calm=True, systems=None, seed=None)
    assert simulator_options(none) == ["--calm"]
