"""Wiring of the network service (node-scoped): networks, nics, forwards, start-up repairs.

One process per node: host changes of a network are serialised in memory. On start it
follows the log to its end, makes every network of this node whole on the host (bridges,
nftables, dnsmasq: after a reboot or a crash the log is all it needs), removes leftovers
no network owns, makes the default network on the first start, and then checks the host
every few seconds (a killed dnsmasq comes back).
"""

from __future__ import annotations

import asyncio
import logging

from services.common.runtime import ServiceRuntime
from services.network.drivers import DRIVERS
from services.network.networks import history
from services.network.networks.context import Networks
from services.network.networks.defaults import ensure_default_network
from services.network.networks.forwards import ForwardHandlers
from services.network.networks.handlers import NetworkHandlers
from services.network.networks.host import HostNetworks
from services.network.networks.nics import NicHandlers
from services.network.networks.projection import NetworkProjection

log = logging.getLogger(__name__)

NAME = "network"
DRIVER = "bridge"


async def setup(runtime: ServiceRuntime) -> Networks:
    """Register the network endpoints on a connected runtime (``runtime.start()`` follows)."""
    assert runtime.store is not None
    settings = runtime.settings
    driver = DRIVERS[DRIVER](settings.warren_dir / "networks")
    projection = NetworkProjection()
    runner = runtime.add_projection(projection)
    host = HostNetworks(driver, projection, settings.node)
    networks = Networks(runtime.store, runner, projection, host, settings.node)
    NetworkHandlers(networks).register(runtime.endpoints)
    NicHandlers(networks).register(runtime.endpoints)
    ForwardHandlers(networks).register(runtime.endpoints)
    history.register(networks, runtime.endpoints)
    target = await runtime.store.last_seq()
    task = asyncio.create_task(_start_up(networks, target, settings.default_network))
    runtime.on_stop(lambda: _cancel(task))
    return networks


async def _start_up(networks: Networks, target: int, default_name: str) -> None:
    try:
        await networks.projection.wait_for(target, timeout=3600)
        await networks.host.reconcile()
        await ensure_default_network(networks, default_name)
        await networks.host.heal_forever()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("network start-up failed; it runs again at the next start")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
