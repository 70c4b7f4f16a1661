"""What the network handlers share, wired once per process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.catalog import ObjectResult
from schemas.envelope import Event
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.eventstore import EventStore
from services.common.names import NameRegistry
from services.common.projection import ProjectionRunner
from services.network.networks import aggregate as agg
from services.network.networks.host import HostNetworks
from services.network.networks.projection import NetworkProjection
from services.network.networks.state import NETWORK, NetworkState, network_dict


@dataclass
class Networks:
    store: EventStore
    runner: ProjectionRunner
    projection: NetworkProjection
    host: HostNetworks
    node: str
    names: NameRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.names = NameRegistry(self.store, NETWORK)

    async def fresh(self) -> int:
        return await self.runner.barrier()

    def meta(self, meta: RequestMeta) -> agg.Meta:
        return agg.Meta(meta.requestor, meta.correlation_id, meta.causation_id, self.node)

    def find(self, name: str) -> NetworkState | None:
        return self.projection.network(self.node, name)

    def network_or_404(self, name: str) -> NetworkState:
        state = self.find(name)
        if state is None:
            raise NotFound("Network not found")
        return state

    async def view(self, state: NetworkState) -> dict[str, Any]:
        healthy = await self.host.healthy(state.name)
        status = "Created" if healthy else "Unavailable"
        return network_dict(state, status, self.projection.used_by(state))

    async def result(self, state: NetworkState) -> dict[str, Any]:
        return ObjectResult(object=await self.view(state), etag=state.etag).model_dump()

    async def decide(
        self, name: str, command: Callable[[NetworkState], agg.Command]
    ) -> tuple[NetworkState | None, int]:
        """Decide on fresh state and append (retrying on concurrent writes): the new state
        (``None`` when deleted) and the sequence."""
        decided: list[NetworkState | None] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.fresh()
            state = self.network_or_404(name)
            events = agg.decide(state, command(state))
            decided[:] = [agg.evolve(state, events[-1]) if events else state]
            return events, self.projection.seq_of(state.id)

        seq = await decide_and_append(self.store, decision)
        await self.projection.wait_for(seq)
        new = decided[-1]
        return (None if new is None or new.deleted else new), seq
