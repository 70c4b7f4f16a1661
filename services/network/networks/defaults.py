"""The network a node makes on its first start, as ``lxd init`` makes ``lxdbr0``.

From the log itself: its id is fixed by the node (uuid5) and its event id by what it does,
so a restart, or a crash between making the bridge and recording it, ends with one network.
Once made it is an ordinary network: deleting it is the user's choice, it is not made again.
"""

from __future__ import annotations

import logging

from schemas import networks as wire
from schemas import subjects
from schemas.errors import WarrenError
from services.common.eventstore import WrongSequence
from services.network.networks import aggregate as agg
from services.network.networks.context import Networks
from services.network.networks.handlers import create_command, create_network
from services.network.networks.state import NETWORK, default_network_id, deterministic_event_id

log = logging.getLogger(__name__)


async def ensure_default_network(n: Networks, name: str) -> None:
    """Make this node's default bridge (``auto`` IPv4 with NAT) unless the log ever had it."""
    network_id = default_network_id(n.node)
    if await n.store.last(subjects.event(NETWORK, network_id)) is not None:
        return
    body = wire.CreateNetwork(name=name, config={"ipv4.address": "auto", "ipv4.nat": "true"})
    meta = agg.Meta(requestor="warren", node=n.node)
    event_id = deterministic_event_id(network_id, "created", 1)
    try:
        command = await create_command(n, body, network_id, meta, True, event_id)
        _, state = await create_network(n, command)
    except WrongSequence:
        return  # another process recorded it first
    except WarrenError as exc:
        log.error("could not make the default network %s: %s", name, exc.message)
        return
    log.info("made the default network %s (%s)", name, state.config.get("ipv4.address"))
