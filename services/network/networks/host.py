"""This node's networks on the host: what the log says, applied through the driver.

One lock per network name serialises host changes. ``heal`` runs every few seconds and
brings back what went missing behind Warren's back (a killed dnsmasq, a deleted bridge, a
flushed table): the log says what should exist, so nothing but the log is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace
from ipaddress import IPv4Network

from schemas.errors import WarrenError
from services.network.drivers.base import BridgeSpec, NetworkDriver
from services.network.networks import config as cfg
from services.network.networks.forward_state import rules
from services.network.networks.projection import NetworkProjection
from services.network.networks.state import NetworkState

log = logging.getLogger(__name__)

#: How often the host is checked against the log.
HEAL_EVERY = 2.0


class HostNetworks:
    """The driver, the per-network locks, and the translation from log state to host spec."""

    def __init__(self, driver: NetworkDriver, projection: NetworkProjection, node: str) -> None:
        self.driver = driver
        self.projection = projection
        self.node = node
        self._locks: dict[str, asyncio.Lock] = {}
        #: Whether each network was whole when last checked, applied or healed.
        self._whole: dict[str, bool] = {}

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def spec(self, state: NetworkState) -> BridgeSpec:
        """What the host must have for ``state`` (its forwards as the projection has them)."""
        forwards = tuple(
            rule for fwd in self.projection.forwards_of(state.id) for rule in rules(fwd)
        )
        return cfg.bridge_spec(state, forwards)

    async def apply(self, state: NetworkState) -> None:
        """Make the host match ``state``."""
        await self._ensure(self.spec(state))

    async def _ensure(self, spec: BridgeSpec) -> None:
        self._whole.pop(spec.name, None)
        await self.driver.ensure(spec)
        self._whole[spec.name] = True

    async def remove(self, name: str) -> None:
        """Remove the network from the host."""
        self._whole.pop(name, None)
        await self.driver.remove(name)

    async def healthy(self, name: str) -> bool:
        """Whether the network was whole when last seen: by the last change or by
        :meth:`heal`, at most ``HEAL_EVERY`` s ago (asking the host forks ``nft``)."""
        whole = self._whole.get(name)
        if whole is None:
            whole = self._whole[name] = await self.driver.healthy(name)
        return whole

    async def apply_hosts(self, before: NetworkState, after: NetworkState) -> None:
        """Take the host from ``before`` to ``after``, which differ at most in their nics: only
        the static hosts are written while the bridge is up (an instance start waits for
        this; rules and dnsmasq are checked by :meth:`heal`), else everything is applied."""
        old, new = self.spec(before), self.spec(after)
        if replace(old, hosts=new.hosts) == new and await self.driver.set_hosts(
            new.name, new.hosts
        ):
            return
        await self._ensure(new)

    async def taken(self, except_name: str | None = None) -> list[IPv4Network]:
        """Subnets in use: the host's (its own bridges aside) and every network's of the log."""
        own: set[IPv4Network] = set()
        logged: list[IPv4Network] = []
        for state in self.projection.networks.values():
            ipv4 = None if state.deleted else cfg.ipv4_of(state.config)
            if ipv4 is not None and state.node == self.node:
                own.add(ipv4.network)
            if ipv4 is not None and state.name != except_name:
                logged.append(ipv4.network)
        host = [IPv4Network(n, strict=False) for n in await self.driver.taken_ipv4()]
        return logged + [n for n in host if n not in own]

    async def reconcile(self) -> None:
        """Every network of this node made or repaired; leftovers no network owns removed."""
        wanted = {s.name: s for s in self.projection.networks_on(self.node)}
        for name in sorted(set(await self.driver.managed()) - set(wanted)):
            async with self.lock(name):
                log.info("reconcile: removing leftover network %s", name)
                await self._quietly(self.remove(name), name)
        for name, state in sorted(wanted.items()):
            async with self.lock(name):
                await self._quietly(self.apply(state), name)

    async def heal(self) -> None:
        """Repair the networks whose host side is not whole."""
        for state in self.projection.networks_on(self.node):
            lock = self.lock(state.name)
            if lock.locked():
                continue  # being changed right now
            async with lock:
                current = self.projection.network(self.node, state.name)
                if current is None:
                    continue
                self._whole[current.name] = await self.driver.healthy(current.name)
                if self._whole[current.name]:
                    continue
                log.warning("network %s is not whole on the host: repairing", current.name)
                await self._quietly(self.apply(current), current.name)

    async def heal_forever(self) -> None:
        while True:
            await asyncio.sleep(HEAL_EVERY)
            try:
                await self.heal()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("healing the networks failed; trying again")

    @staticmethod
    async def _quietly(work: Awaitable[None], name: str) -> None:
        try:
            await work
        except WarrenError as exc:
            log.error("network %s: %s", name, exc.message)
