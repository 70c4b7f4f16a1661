"""``warren_history`` of this node's networks, served on ``network.<node>.history``.

Networks are not in a project: their names are scoped by node, so a request covers the
networks that carried the name on this node. A past state's ``used_by`` lists the instances
plugged in then (their nics are in the network's own events); which profiles named it is not.
"""

from __future__ import annotations

from typing import Any

from schemas import subjects
from services.common.endpoints import EndpointGroup
from services.common.history import HistoryEndpoints
from services.common.history_lookup import HistoryBook
from services.common.name_history import NameHistory
from services.network.networks import aggregate
from services.network.networks.context import Networks
from services.network.networks.state import NETWORK, NetworkState, network_dict


class NetworkHistory(HistoryBook):
    """What the shared history needs to know of networks."""

    evolvers = {NETWORK: aggregate.evolve}

    def __init__(self, networks: Networks) -> None:
        self.n = networks
        self.store = networks.store

    @property
    def names(self) -> NameHistory:
        return self.n.projection.names

    async def fresh(self) -> int:
        return await self.n.fresh()

    def seq_of(self, object_id: str) -> int:
        return self.n.projection.seq_of(object_id)

    def scopes(self, kind: str, project: str) -> list[str]:
        return [self.n.node]

    def live(self, kind: str, name: str, project: str) -> str | None:
        state = self.n.find(name)
        return state.id if state is not None else None

    async def current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        state = self.n.projection.networks.get(object_id)
        if state is None or state.deleted:
            return None
        return await self.n.view(state)

    def past(self, kind: str, state: Any) -> dict[str, Any]:
        assert isinstance(state, NetworkState)
        view = network_dict(state, "", sorted({nic.url() for nic in state.nics.values()}))
        del view["status"]  # the host's, not the log's
        return view


def register(networks: Networks, group: EndpointGroup) -> None:
    """Serve the history subjects of this node's network service."""
    history = subjects.network(subjects.NETWORK_HISTORY, networks.node)
    listing = subjects.network(subjects.NETWORK_HISTORY_LIST, networks.node)
    HistoryEndpoints(NetworkHistory(networks)).register(group, history, listing)
