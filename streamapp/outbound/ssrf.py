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


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in net for net in _METADATA)
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
