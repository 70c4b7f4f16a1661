"""The network driver interface: what the network service asks of the host.

A driver owns, per managed network, everything on the host that makes it: the bridge (named
as the network, at most 15 characters), its addresses and MTU, the firewall rules (in
Warren's own nftables table, never anything else on the host), and a dnsmasq for DHCP and
DNS. Every call is idempotent and converges the host on what it is given, so the service can
call :meth:`NetworkDriver.ensure` after a crash, a reboot or a killed dnsmasq alike.
Host-level failures become ``DriverError`` (nothing like ``NetlinkError`` leaks out); a
multi-step change that fails undoes what it did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class DriverCapabilities:
    """What a network driver can do (orchestration branches on these, never on names)."""

    dhcp: bool = True
    dns: bool = True
    nat: bool = True
    forwards: bool = True


@dataclass(frozen=True)
class StaticHost:
    """A nic on the network: DNS name (the instance name) and, optionally, a fixed IPv4."""

    hwaddr: str
    name: str
    ipv4: IPv4Address | None = None


@dataclass(frozen=True)
class ForwardRule:
    """Traffic to ``listen``:``listen_port`` goes to ``target``:``target_port`` (DNAT)."""

    listen: IPv4Address
    protocol: str  # "tcp" | "udp"
    listen_port: int
    target: IPv4Address
    target_port: int


@dataclass(frozen=True)
class BridgeSpec:
    """Everything a managed bridge network is on the host."""

    name: str
    ipv4: IPv4Interface | None = None  # the host's address and the subnet, 10.x.y.1/24
    ipv4_nat: bool = False
    ipv4_dhcp: bool = True
    #: Empty: the whole subnet but the host's own address.
    ipv4_dhcp_ranges: tuple[tuple[IPv4Address, IPv4Address], ...] = ()
    ipv6: IPv6Interface | None = None
    ipv6_nat: bool = False
    dns_domain: str = "lxd"
    mtu: int | None = None
    hosts: tuple[StaticHost, ...] = ()
    forwards: tuple[ForwardRule, ...] = ()


@dataclass(frozen=True)
class Lease:
    """One DHCP lease or static entry, as ``/1.0/networks/<n>/leases`` shows it."""

    hostname: str
    hwaddr: str
    address: str
    type: str  # "dynamic" | "static"


@dataclass(frozen=True)
class InterfaceState:
    """An interface as ``/1.0/networks/<n>/state`` shows it (LXD's ``NetworkState``)."""

    name: str
    type: str  # "broadcast" | "loopback" | ...
    state: str  # "up" | "down"
    hwaddr: str
    mtu: int
    addresses: tuple[dict[str, str], ...] = ()  # {"family", "address", "netmask", "scope"}
    counters: dict[str, int] = field(default_factory=dict)  # bytes/packets received/sent
    kind: str = ""  # "bridge", "physical", "loopback", ... (LXD's network "type")

    def lxd(self) -> dict[str, Any]:
        return {
            "addresses": [dict(a) for a in self.addresses],
            "counters": dict(self.counters),
            "hwaddr": self.hwaddr,
            "mtu": self.mtu,
            "state": self.state,
            "type": self.type,
        }


class NetworkDriver(ABC):
    """One backend (``bridge``); ``root`` is where it keeps its files ($WARREN_DIR/networks)."""

    name: ClassVar[str]
    capabilities: ClassVar[DriverCapabilities]

    def __init__(self, root: Path) -> None:
        self.root = root

    @abstractmethod
    async def ensure(self, spec: BridgeSpec) -> None:
        """Make the host match ``spec`` (create, repair, or change in place; restart dnsmasq
        if it is dead or its configuration changed; reload it when only hosts changed)."""

    @abstractmethod
    async def set_hosts(self, name: str, hosts: tuple[StaticHost, ...]) -> bool:
        """Give the running network ``name`` exactly ``hosts`` as its static entries, the rest
        as the last :meth:`ensure` left it; False, with nothing done, when its bridge is not
        up (the caller ensures the whole network instead)."""

    @abstractmethod
    async def remove(self, name: str) -> None:
        """Remove the bridge, its rules, its dnsmasq and files completely (idempotent)."""

    @abstractmethod
    async def healthy(self, name: str) -> bool:
        """Is everything of ``name`` in place (the bridge up, dnsmasq running, rules there)?"""

    @abstractmethod
    async def managed(self) -> list[str]:
        """The networks this driver has made on this host (to find leftovers)."""

    @abstractmethod
    async def state(self, name: str) -> InterfaceState:
        """The state of a host interface (managed or not); NotFound if there is none."""

    @abstractmethod
    async def interfaces(self) -> list[InterfaceState]:
        """The host's interfaces (what LXD lists as unmanaged networks)."""

    @abstractmethod
    async def leases(self, name: str) -> list[Lease]:
        """dnsmasq's current leases and the static entries of a managed network."""

    @abstractmethod
    async def taken_ipv4(self) -> list[str]:
        """The IPv4 networks (CIDR) the host's interfaces and routes use (Warren's bridges
        included): what ``auto`` must not pick and a new network must not overlap."""
