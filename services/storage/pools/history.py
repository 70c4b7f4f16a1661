"""``warren_history`` of this node's storage pools, served on ``storage.<node>.history``.

Pools are not in a project: their names are scoped by node, so a request covers the pools
that carried the name on this node (LXD cannot rename a pool, but a name can be reused after
a delete). Volumes are no aggregate of their own: they have no history here. A past state's
``used_by`` is empty (what uses a pool is not in the pool's own events).
"""

from __future__ import annotations

from typing import Any

from schemas import subjects
from services.common.endpoints import EndpointGroup
from services.common.history import HistoryEndpoints
from services.common.history_lookup import HistoryBook
from services.common.name_history import NameHistory
from services.storage.pools import aggregate
from services.storage.pools.handlers import Pools
from services.storage.pools.state import POOL, PoolState, pool_dict


class PoolHistory(HistoryBook):
    """What the shared history needs to know of storage pools."""

    evolvers = {POOL: aggregate.evolve}

    def __init__(self, pools: Pools) -> None:
        self.p = pools
        self.store = pools.store

    @property
    def names(self) -> NameHistory:
        return self.p.projection.names

    async def fresh(self) -> int:
        return await self.p.fresh()

    def seq_of(self, object_id: str) -> int:
        return self.p.projection.seq_of(object_id)

    def scopes(self, kind: str, project: str) -> list[str]:
        return [self.p.node]

    def live(self, kind: str, name: str, project: str) -> str | None:
        state = self.p.projection.pool(self.p.node, name)
        return state.id if state is not None else None

    async def current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        state = self.p.projection.pools.get(object_id)
        if state is None or state.deleted:
            return None
        return await self.p.view(state)

    def past(self, kind: str, state: Any) -> dict[str, Any]:
        assert isinstance(state, PoolState)
        view = pool_dict(state, "", [])
        del view["status"]  # the host's, not the log's
        return view


def register(pools: Pools, group: EndpointGroup) -> None:
    """Serve the history subjects of this node's storage service."""
    history = subjects.storage(subjects.STORAGE_HISTORY, pools.node)
    listing = subjects.storage(subjects.STORAGE_HISTORY_LIST, pools.node)
    HistoryEndpoints(PoolHistory(pools)).register(group, history, listing)
