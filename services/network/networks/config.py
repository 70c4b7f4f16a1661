"""A bridge network's config: LXD's keys, their checks, and the host spec they make.

Keys (as LXD spells them): ``ipv4.address`` (``auto``, ``none`` or the host's address with
the prefix, ``10.1.2.1/24``; ``auto`` is replaced by a picked subnet when the network is
created, as LXD does), ``ipv4.nat``, ``ipv4.dhcp``, ``ipv4.dhcp.ranges``, ``ipv6.address``
(``none`` unless given: Warren does not pick IPv6 subnets by default), ``ipv6.nat``,
``dns.domain`` (default ``lxd``), ``bridge.mtu``, and free-form ``user.*``.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

from schemas.errors import BadRequest
from services.network import subnets
from services.network.drivers.base import BridgeSpec, ForwardRule, StaticHost
from services.network.networks.state import NetworkState

USER_PREFIX = "user."
BOOLEAN_KEYS = frozenset({"ipv4.nat", "ipv4.dhcp", "ipv6.nat"})
KEYS = frozenset(
    {"ipv4.address", "ipv4.dhcp.ranges", "ipv6.address", "dns.domain", "bridge.mtu"} | BOOLEAN_KEYS
)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")
_DOMAIN_RE = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
DEFAULT_DOMAIN = "lxd"


def check_name(name: str) -> None:
    """A network's name is its bridge's interface name on the host."""
    if not name:
        raise BadRequest("No name provided")
    if not NAME_RE.match(name):
        raise BadRequest(
            f"Invalid network name {name!r}: 1 to 15 letters, digits, '-' or '_', "
            "starting with a letter (it names the bridge on the host)"
        )


def truthy(config: dict[str, str], key: str, default: bool = False) -> bool:
    value = config.get(key)
    return default if value is None else value.lower() in TRUE


def ipv4_of(config: dict[str, str]) -> IPv4Interface | None:
    return subnets.parse_ipv4_address(config.get("ipv4.address", "none"))


def ipv6_of(config: dict[str, str]) -> IPv6Interface | None:
    value = config.get("ipv6.address", "none")
    if value in ("", "none"):
        return None
    try:
        address = IPv6Interface(value)
    except ValueError:
        raise BadRequest(f'Invalid value for network "ipv6.address": {value!r}') from None
    if address.network.prefixlen == 128 or address.ip == address.network.network_address:
        raise BadRequest(f'Invalid value for network "ipv6.address": {value!r}')
    return address


def check_config(kind: str, config: dict[str, str]) -> None:
    """Refuse unknown keys and bad values, in LXD's words."""
    if kind != "bridge":
        raise BadRequest(f'Network type "{kind}" is not supported (only "bridge" is)')
    for key, value in sorted(config.items()):
        if key.startswith(USER_PREFIX):
            continue
        if key not in KEYS:
            raise BadRequest(f'Invalid network configuration key "{key}"')
        if key in BOOLEAN_KEYS and value.lower() not in TRUE + FALSE:
            raise BadRequest(f'Invalid value for network "{key}": {value!r} is not a boolean')
    ipv4 = ipv4_of(config)
    ranges = config.get("ipv4.dhcp.ranges", "")
    if ranges:
        if ipv4 is None:
            raise BadRequest('"ipv4.dhcp.ranges" needs "ipv4.address"')
        subnets.parse_dhcp_ranges(ranges, ipv4.network)
    ipv6_of(config)
    domain = config.get("dns.domain", DEFAULT_DOMAIN)
    if not _DOMAIN_RE.match(domain):
        raise BadRequest(f'Invalid value for network "dns.domain": {domain!r}')
    mtu = config.get("bridge.mtu")
    if mtu is not None and not (mtu.isdigit() and 576 <= int(mtu) <= 65535):
        raise BadRequest(f'Invalid value for network "bridge.mtu": {mtu!r} (576 to 65535)')


def completed(config: dict[str, str], taken: list[IPv4Network]) -> dict[str, str]:
    """A new network's config with LXD's defaults: ``ipv4.address`` ``auto`` (a free /24 is
    picked) and ``ipv4.nat`` on when the address was picked."""
    out = dict(config)
    if out.get("ipv4.address", "auto") == "auto":
        subnet = subnets.pick_ipv4(taken)
        out["ipv4.address"] = str(subnets.host_interface(subnet))
        out.setdefault("ipv4.nat", "true")
    return out


def check_overlap(name: str, config: dict[str, str], taken: list[IPv4Network]) -> None:
    """A network's subnet must not overlap another network's or anything on the host."""
    ipv4 = ipv4_of(config)
    if ipv4 is None:
        return
    for other in taken:
        if ipv4.network.overlaps(other):
            raise BadRequest(
                f"Network {name!r}: subnet {ipv4.network} overlaps {other}, which is in use"
            )


def bridge_spec(state: NetworkState, forwards: tuple[ForwardRule, ...] = ()) -> BridgeSpec:
    """What the host must have for ``state``."""
    config = state.config
    ipv4 = ipv4_of(config)
    ranges = config.get("ipv4.dhcp.ranges", "")
    hosts = tuple(
        StaticHost(hwaddr, nic.instance, IPv4Interface(nic.ipv4).ip if nic.ipv4 else None)
        for hwaddr, nic in sorted(state.nics.items())
    )
    return BridgeSpec(
        name=state.name,
        ipv4=ipv4,
        ipv4_nat=truthy(config, "ipv4.nat"),
        ipv4_dhcp=truthy(config, "ipv4.dhcp", True),
        ipv4_dhcp_ranges=(
            subnets.parse_dhcp_ranges(ranges, ipv4.network) if ranges and ipv4 else ()
        ),
        ipv6=ipv6_of(config),
        ipv6_nat=truthy(config, "ipv6.nat"),
        dns_domain=config.get("dns.domain", DEFAULT_DOMAIN),
        mtu=int(config["bridge.mtu"]) if config.get("bridge.mtu") else None,
        hosts=hosts,
        forwards=forwards,
    )
