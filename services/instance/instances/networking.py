"""The instance side of networks: checking that a nic's network exists, plugging nics into
their networks before a start (the network service's DHCP host entries), unplugging them.

Nothing here runs for an instance without ``network`` nics: such instances never wait on the
network service, which may be absent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from schemas.errors import BadRequest, Unavailable, WarrenError
from schemas.networks import NicPlug, NicPlugged
from services.instance.instances.nics import Nic, networks
from services.instance.instances.peers import Peers

log = logging.getLogger(__name__)
T = TypeVar("T")
#: After the network service failed to answer, calls fail at once for this long, so that a
#: reconcile over many instances does not wait out each one's timeout.
DOWN_BACKOFF_S = 10.0


class NicPlumbing:
    """Asks this node's network service about the networks instance nics use."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers
        #: Network -> what plugging a nic into it said last (its bridge and MTU).
        self.known: dict[str, NicPlugged] = {}
        self._down_until = 0.0
        self._down_message = ""

    async def _ask(self, *calls: Awaitable[T]) -> list[T]:
        if time.monotonic() < self._down_until:
            for call in calls:
                getattr(call, "close", lambda: None)()  # never awaited: no warning
            raise Unavailable(self._down_message)
        try:
            return list(await asyncio.gather(*calls))
        except Unavailable as exc:
            self._down_until = time.monotonic() + DOWN_BACKOFF_S
            self._down_message = exc.message
            raise

    async def missing_networks(self, names: Iterable[str]) -> set[str]:
        """Which of the named networks do not exist (each asked once, all at once); profiles
        check their nics with it too."""
        wanted = sorted(set(names))
        if not wanted:
            return set()
        found = await self._ask(*(self.peers.network(name) for name in wanted))
        return {name for name, network in zip(wanted, found, strict=True) if network is None}

    async def check_networks(self, nics: list[Nic], already: set[str] = frozenset()) -> None:
        """Refuse nics naming a network that does not exist (``already`` is known good)."""
        missing = await self.missing_networks(networks(nics) - set(already))
        for name in sorted(missing):
            device = next(nic.device for nic in nics if nic.network == name)
            raise BadRequest(
                f'Invalid devices: Device validation failed for "{device}": '
                f'Failed loading network "{name}": Network not found'
            )

    async def plug(self, instance: str, project: str, nics: list[Nic]) -> dict[str, NicPlugged]:
        """Plug every network nic at once; network -> its reply (a refusal is a BadRequest)."""
        wanted = [nic for nic in nics if nic.network]
        if not wanted:
            return {}
        replies = await self._ask(
            *(
                self.peers.nic_plug(
                    NicPlug(
                        network=nic.network or "",
                        project=project,
                        instance=instance,
                        device=nic.device,
                        hwaddr=nic.hwaddr,
                        ipv4_address=nic.ipv4_address,
                    )
                )
                for nic in wanted
            )
        )
        plugged = {nic.network or "": reply for nic, reply in zip(wanted, replies, strict=True)}
        self.known.update(plugged)
        return plugged

    async def unplug(self, nics: list[Nic]) -> None:
        """Unplug network nics; a failure is logged (the network service's entry is only a
        DHCP reservation, and unplugging again later is harmless)."""
        wanted = [nic for nic in nics if nic.network]
        results = await asyncio.gather(
            *(self.peers.nic_unplug(nic.network or "", nic.hwaddr) for nic in wanted),
            return_exceptions=True,
        )
        for nic, result in zip(wanted, results, strict=True):
            if isinstance(result, WarrenError):
                log.warning("nic %s not unplugged from %s: %s", nic.device, nic.network, result)
            elif isinstance(result, BaseException):
                raise result
