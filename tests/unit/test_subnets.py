"""Subnet picking and LXD's ipv4 values (services/network/subnets.py): pure, no host."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_network

import pytest

from schemas.errors import BadRequest
from services.network import subnets

HOST_NETS = [IPv4Network("192.0.2.0/24"), IPv4Network("10.0.0.0/24"), IPv4Network("0.0.0.0/0")]


def test_pick_is_a_24_of_10_8() -> None:
    for seed in range(50):
        net = subnets.pick_ipv4([], random.Random(seed))
        assert net.prefixlen == 24
        assert net.subnet_of(IPv4Network("10.0.0.0/8"))


def test_pick_never_overlaps_taken() -> None:
    rng = random.Random(1)
    taken = [IPv4Network("192.0.2.0/24"), IPv4Network("10.0.0.0/16"), IPv4Network("10.7.0.0/20")]
    for _ in range(200):
        net = subnets.pick_ipv4(taken, rng)
        assert not any(net.overlaps(t) for t in taken)
        taken.append(net)  # what was picked is a Warren network now


def test_pick_finds_the_last_free_subnet() -> None:
    # All of 10/8 but one /24 is taken: random tries will miss, the search must not.
    free = IPv4Network("10.200.13.0/24")
    taken = list(IPv4Network("10.0.0.0/8").address_exclude(free))
    assert subnets.pick_ipv4(taken, random.Random(3)) == free


def test_pick_ignores_the_default_route_but_not_others() -> None:
    # A default route (0.0.0.0/0) is a route to everywhere, not an address in use.
    net = subnets.pick_ipv4([IPv4Network("10.0.0.0/9")], random.Random(5))
    assert not net.overlaps(IPv4Network("10.0.0.0/9"))


def test_pick_fails_when_10_8_is_full() -> None:
    with pytest.raises(BadRequest, match="No free IPv4 subnet"):
        subnets.pick_ipv4([IPv4Network("10.0.0.0/8")])


def test_host_interface() -> None:
    assert subnets.host_interface(IPv4Network("10.1.2.0/24")) == IPv4Interface("10.1.2.1/24")


@pytest.mark.parametrize("value", ["auto", "none", ""])
def test_parse_keywords(value: str) -> None:
    assert subnets.parse_ipv4_address(value) is None


def test_parse_address() -> None:
    assert subnets.parse_ipv4_address("10.1.2.1/24") == IPv4Interface("10.1.2.1/24")
    assert subnets.parse_ipv4_address("10.1.2.9/30") == IPv4Interface("10.1.2.9/30")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("bogus", "Invalid value"),
        ("10.1.2.1", "prefix"),
        ("10.1.2.1/31", "prefix"),
        ("10.1.2.1/32", "prefix"),
        ("10.1.2.0/24", "network or broadcast"),
        ("10.1.2.255/24", "network or broadcast"),
        ("300.1.2.1/24", "Invalid value"),
    ],
)
def test_parse_rejects(value: str, words: str) -> None:
    with pytest.raises(BadRequest, match=words) as info:
        subnets.parse_ipv4_address(value)
    assert '"ipv4.address"' in info.value.message


def test_dhcp_ranges() -> None:
    subnet = IPv4Network("10.0.0.0/24")
    got = subnets.parse_dhcp_ranges("10.0.0.10-10.0.0.50, 10.0.0.60-10.0.0.70", subnet)
    assert got == (
        (IPv4Address("10.0.0.10"), IPv4Address("10.0.0.50")),
        (IPv4Address("10.0.0.60"), IPv4Address("10.0.0.70")),
    )


@pytest.mark.parametrize(
    "value",
    ["10.0.0.10", "10.0.0.50-10.0.0.10", "10.0.0.10-10.0.1.5", "a-b", "10.0.0.10-", ""],
)
def test_dhcp_ranges_rejected(value: str) -> None:
    with pytest.raises(BadRequest, match=r"ipv4\.dhcp\.ranges"):
        subnets.parse_dhcp_ranges(value, IPv4Network("10.0.0.0/24"))


def test_overlaps() -> None:
    assert subnets.overlaps(IPv4Network("10.0.0.0/8"), IPv4Network("10.1.0.0/16"))
    assert not subnets.overlaps(IPv4Network("10.0.0.0/24"), IPv4Network("10.0.1.0/24"))
    assert not subnets.overlaps(IPv4Network("10.0.0.0/24"), ip_network("fd42::/64"))


def test_pick_ipv6() -> None:
    nets = {subnets.pick_ipv6(random.Random(seed)) for seed in range(20)}
    assert len(nets) == 20
    for net in nets:
        assert net.prefixlen == 64 and net.subnet_of(ip_network("fd42::/16"))
