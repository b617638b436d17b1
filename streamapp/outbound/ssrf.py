"""SSRF guard: refuse to connect to internal addresses, checked on the resolved IP at connect time."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from streamapp.errors import StreamappError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services live on link-local (169.254.169.254) or these.
_METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))


class BlockedDestination(StreamappError):
    status = 422
    reason = "blocked_destination"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def wrapped(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address it carries (IPv4-mapped, 6to4, Teredo, NAT64).

    A 6to4 address `2002:7f00:1::` reaches 127.0.0.1 through a relay; judging only
    the outer IPv6 address would let it pass as external.
    """
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in _NAT64:  # a NAT64 gateway forwards to the IPv4 address in the last 32 bits
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_internal(address: IPAddress) -> bool:
    """Anything not globally routable (`is_global`: also carrier-grade NAT 100.64.0.0/10) or wrapping it."""
    return any(
        not inner.is_global
        or inner.is_multicast  # 224.0.0.0/4 counts as global to ipaddress
        or any(inner in net for net in _METADATA)
        for inner in wrapped(address)
    )


def check_address(host: str, allow: Sequence[IPNetwork]) -> None:
    address = ipaddress.ip_address(host)
    if is_internal(address) and not any(address in net for net in allow):
        raise BlockedDestination(f"refusing to deliver to internal address {address}")


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that checks every address a host resolves to, right before connecting.

    Checking the URL text is not enough: a public name can resolve to 127.0.0.1
    (or change its answer between a check and the connect). IP literals pass
    through here too, so `http://[::1]/` and `http://10.0.0.1/` are caught.
    """

    def __init__(self, allow: Sequence[IPNetwork], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allow = list(allow)

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        results: list[ResolveResult] = await super()._resolve_host(host, port, traces=traces)
        for result in results:
            check_address(result["host"], self._allow)
        return results


def parse_networks(values: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(value, strict=False) for value in values]
