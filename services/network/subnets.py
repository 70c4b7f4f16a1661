"""IPv4 subnets of managed networks: parsing LXD's values and picking a free one.

``auto`` never probes the network or sends a packet: it picks a random 10.x.y.0/24 that
overlaps nothing the caller names as taken (host addresses, routes, other networks).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Network

from schemas.errors import BadRequest

POOL = IPv4Network("10.0.0.0/8")
MAX_PREFIX = 30


def pick_ipv4(taken: Iterable[IPv4Network], rng: random.Random | None = None) -> IPv4Network:
    """A free /24 of 10.0.0.0/8; ``BadRequest`` when there is none."""
    used = [n for n in taken if n.version == 4 and n.overlaps(POOL)]
    rng = rng or random.SystemRandom()
    for _ in range(256):
        candidate = IPv4Network((POOL.network_address + rng.randrange(1, 65535) * 256, 24))
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    for candidate in POOL.subnets(new_prefix=24):  # the random tries were unlucky: search
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    raise BadRequest("No free IPv4 subnet left in 10.0.0.0/8: give ipv4.address explicitly")


def pick_ipv6(rng: random.Random | None = None) -> IPv6Network:
    """A random ULA /64, fd42:xxxx:xxxx:xxxx::/64 (as LXD's ``auto`` makes)."""
    bits = (rng or random.SystemRandom()).getrandbits(48)
    return IPv6Network(((0xFD42 << 112) | (bits << 64), 64))


def overlaps(a: IPv4Network | IPv6Network, b: IPv4Network | IPv6Network) -> bool:
    """Do two networks share an address (never, across families)?"""
    return a.version == b.version and a.overlaps(b)  # type: ignore[arg-type]


def host_interface(subnet: IPv4Network) -> IPv4Interface:
    """The host's address on a subnet: its first usable one (10.1.2.1/24)."""
    return IPv4Interface((subnet.network_address + 1, subnet.prefixlen))


def parse_ipv4_address(value: str) -> IPv4Interface | None:
    """LXD's ``ipv4.address``: ``auto`` or ``none`` (None here), or the host address with its
    prefix; a 400 naming the key for anything else."""
    if value in ("", "none", "auto"):
        return None
    try:
        address = IPv4Interface(value)
    except ValueError:
        raise BadRequest(f'Invalid value for network "ipv4.address": {value!r}') from None
    network = address.network
    if "/" not in value or network.prefixlen > MAX_PREFIX:
        raise BadRequest(
            f'Invalid value for network "ipv4.address": {value!r} '
            f"(an address with a prefix of at most /{MAX_PREFIX}, like 10.1.2.1/24)"
        )
    if address.ip in (network.network_address, network.broadcast_address):
        raise BadRequest(
            f'Invalid value for network "ipv4.address": {value!r} is the subnet\'s '
            "network or broadcast address"
        )
    return address


def parse_dhcp_ranges(
    value: str, subnet: IPv4Network
) -> tuple[tuple[IPv4Address, IPv4Address], ...]:
    """``"10.0.0.10-10.0.0.50,10.0.0.60-10.0.0.70"`` -> the ranges, all inside ``subnet``."""
    ranges = []
    for part in value.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            start, end = IPv4Address(first.strip()), IPv4Address(last.strip())
        except ValueError:
            raise BadRequest(f'Invalid value for network "ipv4.dhcp.ranges": {value!r}') from None
        if not sep or start > end or start not in subnet or end not in subnet:
            raise BadRequest(
                f'Invalid value for network "ipv4.dhcp.ranges": {part.strip()!r} is not a '
                f"range inside {subnet}"
            )
        ranges.append((start, end))
    return tuple(ranges)
