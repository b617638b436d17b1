"""The delivery core's pure parts: signatures, schedule, SSRF classification and connect-time guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from streamapp.outbound import signing
from streamapp.outbound.schedule import DEFAULT_SCHEDULE, MAX_RETRY_AFTER, next_delay, retry_after_seconds
from streamapp.outbound.ssrf import (
    BlockedDestination,
    GuardedConnector,
    check_address,
    is_internal,
    parse_networks,
)


def test_signature_matches_the_standard_webhooks_definition() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    expected = base64.b64encode(
        hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, hashlib.sha256).digest()
    ).decode()
    assert sig == f"v1,{expected}"
    # The published test vector of the Standard Webhooks spec.
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_ours_and_rejects_tampering() -> None:
    secret = signing.new_secret()
    body = b'{"a":1}'
    headers = signing.headers(secret, "id-1", body)
    signing.verify(secret, headers, body)
    signing.verify(secret, {k.upper(): v for k, v in headers.items()}, body)  # header case
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, headers, b'{"a":2}')
    with pytest.raises(signing.InvalidSignature):
        signing.verify(signing.new_secret(), headers, body)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, {**headers, "webhook-id": "id-2"}, body)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, headers, body, now=float(headers["webhook-timestamp"]) + 3600)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, {"webhook-id": "x"}, body)
    # Several signatures (key rotation): any one matching is enough.
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    signing.verify(secret, rotated, body)


def test_schedule_with_jitter_and_retry_after() -> None:
    rng = random.Random(1)
    delays = [next_delay(DEFAULT_SCHEDULE, n, rng=rng) for n in range(len(DEFAULT_SCHEDULE))]
    for delay, nominal in zip(delays, DEFAULT_SCHEDULE, strict=True):
        assert delay is not None
        assert nominal * 0.8 <= delay <= nominal * 1.2
    assert next_delay(DEFAULT_SCHEDULE, len(DEFAULT_SCHEDULE)) is None
    assert next_delay([0, 5], 1, retry_after=60) == 60  # the receiver asked for longer
    delay = next_delay([0, 500], 1, retry_after=1)
    assert delay is not None
    assert delay >= 400  # never shorter than our own schedule


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("garbage") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    "header", ["99999999999999999999", "9" * 5000, "86401", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_retry_after_overflow(header: str) -> None:
    """Finding 11: `Retry-After: 99999999999999999999` overflowed the next attempt's timedelta, so
    the attempt was never recorded and the delivery re-claimed forever. Clamped to 24 h."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    seconds = retry_after_seconds(header, now)
    assert seconds == MAX_RETRY_AFTER == 86_400
    delay = next_delay([0, 5], 1, retry_after=seconds)
    assert delay is not None
    assert now + timedelta(seconds=delay) == now + timedelta(days=1)  # what _attempt computes


@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",  # carrier-grade NAT
        "100.127.255.254",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "198.18.0.1",  # benchmarking
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
    ],
)
def test_ssrf_guard_lets_cgnat_and_6to4_pass(address: str) -> None:
    """Finding 15: 100.64.0.0/10 and 6to4 / Teredo wrapping internal addresses passed as external."""
    assert is_internal(ipaddress.ip_address(address))
    with pytest.raises(BlockedDestination):
        check_address(address, [])


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.100.100.200", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:10.0.0.1", True),
        ("0.0.0.0", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal


def test_allow_list() -> None:
    allow = parse_networks(["127.0.0.1/32"])
    check_address("127.0.0.1", allow)
    with pytest.raises(BlockedDestination):
        check_address("127.0.0.2", allow)
    check_address("93.184.216.34", [])


class FakeResolver(aiohttp.abc.AbstractResolver):
    """internal.test resolves to a private address: what a DNS rebinding attack looks like."""

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[Any]:
        return [
            {
                "hostname": host,
                "host": "10.9.8.7",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def test_guard_checks_the_resolved_address_at_connect_time() -> None:
    connector = GuardedConnector([], resolver=FakeResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(BlockedDestination, match=r"10\.9\.8\.7"):
            await session.get("http://internal.test/")
