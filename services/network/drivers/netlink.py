"""Bridges, addresses and interface figures through pyroute2 (blocking: call from a thread).

pyroute2's ``NetlinkError`` never leaves this module: it becomes ``DriverError`` (or
``NotFound`` for a missing interface).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Interface, IPv6Interface, ip_interface, ip_network
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from schemas.errors import NotFound
from services.network.drivers.base import InterfaceState
from services.network.drivers.errors import DriverError

_SCOPES = {0: "global", 253: "link", 254: "local"}
_IFF_UP = 0x1
_ARPHRD_LOOPBACK = 772


@contextmanager
def _ipr(what: str) -> Iterator[IPRoute]:
    try:
        with IPRoute() as ipr:
            yield ipr
    except NetlinkError as exc:
        raise DriverError(f"{what}: {exc}") from None


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def exists(name: str) -> bool:
    with _ipr(f"looking up {name}") as ipr:
        return _index(ipr, name) is not None


def is_up(name: str) -> bool:
    """Whether the link exists and is administratively up (one sysfs read, no link dump)."""
    try:
        flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & _IFF_UP)


def ensure_bridge(name: str, mtu: int | None) -> bool:
    """The bridge exists, with ``mtu`` if given, and is up; True if it was made now."""
    with _ipr(f"making bridge {name}") as ipr:
        index = _index(ipr, name)
        made = index is None
        if made:
            ipr.link("add", ifname=name, kind="bridge")
            index = _index(ipr, name)
        assert index is not None
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        ipr.link("set", index=index, state="up")
        return made


def set_addresses(name: str, wanted: list[IPv4Interface | IPv6Interface]) -> None:
    """Exactly ``wanted`` as the interface's global addresses (link-local ones are kept)."""
    with _ipr(f"setting the addresses of {name}") as ipr:
        index = _index(ipr, name)
        if index is None:
            raise NotFound(f"interface {name} not found")
        have = {}
        for msg in ipr.get_addr(index=index):
            if msg["scope"] == 0:
                have[ip_interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")] = msg
        for address in set(have) - set(wanted):
            ipr.addr(
                "del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen
            )
        for address in set(wanted) - set(have):
            ipr.addr(
                "add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen
            )


def delete(name: str) -> None:
    with _ipr(f"deleting {name}") as ipr:
        index = _index(ipr, name)
        if index is not None:
            ipr.link("del", index=index)


def _state(ipr: IPRoute, link: Any) -> InterfaceState:
    index = link["index"]
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info else None
    loopback = link["ifi_type"] == _ARPHRD_LOOPBACK
    addresses = []
    for msg in ipr.get_addr(index=index):
        family = "inet" if msg["family"] == socket.AF_INET else "inet6"
        addresses.append(
            {
                "family": family,
                "address": str(msg.get_attr("IFA_ADDRESS")),
                "netmask": str(msg["prefixlen"]),
                "scope": _SCOPES.get(msg["scope"], "global"),
            }
        )
    stats = link.get_attr("IFLA_STATS64") or {}
    counters = {
        "bytes_received": int(stats.get("rx_bytes", 0)),
        "bytes_sent": int(stats.get("tx_bytes", 0)),
        "packets_received": int(stats.get("rx_packets", 0)),
        "packets_sent": int(stats.get("tx_packets", 0)),
    }
    return InterfaceState(
        name=str(link.get_attr("IFLA_IFNAME")),
        type="loopback" if loopback else "broadcast",
        state="up" if link["flags"] & _IFF_UP else "down",
        hwaddr=str(link.get_attr("IFLA_ADDRESS") or ""),
        mtu=int(link.get_attr("IFLA_MTU") or 0),
        addresses=tuple(addresses),
        counters=counters,
        kind="loopback" if loopback else (kind or "physical"),
    )


def state(name: str) -> InterfaceState:
    with _ipr(f"reading {name}") as ipr:
        index = _index(ipr, name)
        if index is None:
            raise NotFound("Network not found")
        return _state(ipr, ipr.get_links(index)[0])


def interfaces() -> list[InterfaceState]:
    with _ipr("listing interfaces") as ipr:
        return [_state(ipr, link) for link in ipr.get_links()]


def taken_ipv4() -> list[str]:
    """The IPv4 networks of every address and (non-default, non-host) route of the host."""
    found: set[str] = set()
    with _ipr("listing addresses and routes") as ipr:
        for msg in ipr.get_addr(family=socket.AF_INET):
            found.add(
                str(ip_network(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False))
            )
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            dst, length = route.get_attr("RTA_DST"), route["dst_len"]
            if dst and 0 < length < 32:
                found.add(str(ip_network(f"{dst}/{length}", strict=False)))
    return sorted(found)
