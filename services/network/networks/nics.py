"""``nic-plug`` / ``nic-unplug``: instance nics joining and leaving a network.

Each nic's hwaddr, its instance's name (its DNS name) and its fixed address, if any, are
recorded on the network (so a restarted host gets them back from the log), then given to
dnsmasq (its hosts files: nothing else on the host changes). A plug that changes nothing
appends nothing, so starting an instance again is cheap.
"""

from __future__ import annotations

from typing import Any

from schemas import networks as wire
from schemas import subjects
from schemas.errors import BadRequest, NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.network.networks import aggregate as agg
from services.network.networks.context import Networks
from services.network.networks.state import Nic


class NicHandlers:
    def __init__(self, networks: Networks) -> None:
        self.n = networks

    def register(self, group: EndpointGroup) -> None:
        node = self.n.node
        group.add(subjects.network(subjects.NETWORK_NIC_PLUG, node), wire.NicPlug, self.plug)
        group.add(subjects.network(subjects.NETWORK_NIC_UNPLUG, node), wire.NicUnplug, self.unplug)

    async def plug(self, body: wire.NicPlug, meta: RequestMeta) -> tuple[Any, int]:
        hwaddr = body.hwaddr.lower()
        nic = Nic(body.instance, body.project, body.device, body.ipv4_address or None)
        async with self.n.host.lock(body.network):
            await self.n.fresh()
            before = self.n.find(body.network)
            if before is None:
                raise BadRequest(f'Network "{body.network}" not found')
            state, seq = await self.n.decide(
                body.network, lambda _s: agg.Plug(hwaddr, nic, self.n.meta(meta))
            )
            assert state is not None
            await self.n.host.apply_hosts(before, state)
        mtu = state.config.get("bridge.mtu")
        return wire.NicPlugged(bridge=state.name, mtu=int(mtu) if mtu else None).model_dump(), seq

    async def unplug(self, body: wire.NicUnplug, meta: RequestMeta) -> tuple[Any, int]:
        async with self.n.host.lock(body.network):
            before = self.n.find(body.network)  # what the host has: changes apply under the lock
            try:
                state, seq = await self.n.decide(
                    body.network, lambda _s: agg.Unplug(body.hwaddr.lower(), self.n.meta(meta))
                )
            except NotFound:
                return None, await self.n.fresh()  # the network went first: nothing to do
            if state is not None and before is not None:
                await self.n.host.apply_hosts(before, state)
        return None, seq
