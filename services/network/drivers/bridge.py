"""The ``bridge`` network driver: a Linux bridge, its nftables table and its dnsmasq.

``ensure`` converges: bridge (made, MTU, up), addresses, rules, dnsmasq, each step
idempotent; a network that did not exist before and fails half-way is removed again. The
networks it made are the directories under ``root`` (one per network).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from schemas.errors import WarrenError
from services.common.revert import Reverter
from services.network.drivers import netlink, nft
from services.network.drivers.base import (
    BridgeSpec,
    DriverCapabilities,
    InterfaceState,
    Lease,
    NetworkDriver,
    StaticHost,
)
from services.network.drivers.dnsmasq import Dnsmasq
from services.network.drivers.errors import DriverError

T = TypeVar("T")


class BridgeDriver(NetworkDriver):
    """Managed Linux bridges with NAT, forwards, DHCP and DNS."""

    name: ClassVar[str] = "bridge"
    capabilities: ClassVar[DriverCapabilities] = DriverCapabilities()

    def _dnsmasq(self, name: str) -> Dnsmasq:
        return Dnsmasq(self.root / name, name)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(work, *args)
        except WarrenError:
            raise
        except OSError as exc:
            raise DriverError(f"network host call failed: {exc}") from None

    async def ensure(self, spec: BridgeSpec) -> None:
        directory = self.root / spec.name
        dnsmasq = self._dnsmasq(spec.name)
        async with Reverter() as revert:
            # Only what this call made is undone: a network that existed stays as it was.
            if not directory.is_dir():
                await self._run(functools.partial(directory.mkdir, parents=True))
                revert.add(lambda: self._run(dnsmasq.remove))
            if await self._run(netlink.ensure_bridge, spec.name, spec.mtu):
                revert.add(lambda: self._run(netlink.delete, spec.name))
            wanted = [a for a in (spec.ipv4, spec.ipv6) if a is not None]
            await self._run(netlink.set_addresses, spec.name, wanted)
            if not await self._run(nft.present, spec.name):
                revert.add(lambda: self._run(nft.remove, spec.name))
            await self._run(nft.apply, spec)
            await self._run(dnsmasq.ensure, spec)
            revert.success()

    async def set_hosts(self, name: str, hosts: tuple[StaticHost, ...]) -> bool:
        return await self._run(self._set_hosts, name, hosts)

    def _set_hosts(self, name: str, hosts: tuple[StaticHost, ...]) -> bool:
        # dnsmasq watches its hosts directory: writing the files is the whole change.
        if not netlink.is_up(name):
            return False
        self._dnsmasq(name).write_hosts(hosts)
        return True

    async def remove(self, name: str) -> None:
        await self._run(self._remove, name)

    def _remove(self, name: str) -> None:
        self._dnsmasq(name).remove()
        nft.remove(name)
        netlink.delete(name)

    async def healthy(self, name: str) -> bool:
        return await self._run(self._healthy, name)

    def _healthy(self, name: str) -> bool:
        if not netlink.exists(name) or not nft.present(name):
            return False
        state = netlink.state(name)
        if state.state != "up":
            return False
        has_ipv4 = any(a["family"] == "inet" and a["scope"] == "global" for a in state.addresses)
        return not has_ipv4 or self._dnsmasq(name).pid() is not None

    async def managed(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    async def state(self, name: str) -> InterfaceState:
        return await self._run(netlink.state, name)

    async def interfaces(self) -> list[InterfaceState]:
        return await self._run(netlink.interfaces)

    async def leases(self, name: str) -> list[Lease]:
        return await self._run(self._dnsmasq(name).leases)

    async def taken_ipv4(self) -> list[str]:
        return await self._run(netlink.taken_ipv4)
