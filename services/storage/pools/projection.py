"""The pools read model: every pool of every node, by id and by (node, name), and which
profiles' disks use which pool (folded from the profile events in the log, so a pool's
``used_by`` needs no request to the instance service)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from schemas import events
from schemas.envelope import Event, StoredEvent
from services.common.projection import Projection
from services.storage.pools import aggregate
from services.storage.pools.state import POOL, PROFILE, PoolState


class PoolProjection(Projection):
    """Pools folded from the log with the aggregate's own ``evolve``."""

    name = "storage-pools"
    snapshot_version = 2
    aggregates = frozenset({POOL, PROFILE})

    def __init__(self) -> None:
        super().__init__()
        self.load(None)

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if event.aggregate == PROFILE:
            self._profile(event)
            return
        old = self.pools.get(event.aggregate_id)
        new = aggregate.evolve(old, event)
        if new is not None:
            self._index(old, new)
        self.seqs[event.aggregate_id] = stored.seq

    def _index(self, old: PoolState | None, new: PoolState) -> None:
        self.pools[new.id] = new
        if old is not None and not old.deleted and self.by_name.get((old.node, old.name)) == old.id:
            del self.by_name[(old.node, old.name)]
        if not new.deleted:
            self.by_name[(new.node, new.name)] = new.id

    def _profile(self, event: Event) -> None:
        if event.type == events.PROFILE_DELETED:
            self.profile_disks.pop(event.aggregate_id, None)
            return
        devices = event.payload.get("devices") or {}
        pools = sorted(
            {d["pool"] for d in devices.values() if d.get("type") == "disk" and d.get("pool")}
        )
        url = f"/1.0/profiles/{quote(str(event.payload.get('name', '')), safe='')}"
        if event.project != "default":
            url += f"?project={quote(event.project, safe='')}"
        self.profile_disks[event.aggregate_id] = [url, pools]

    def dump(self) -> Any:
        return {
            "pools": [s.dump() for s in self.pools.values()],
            "seqs": self.seqs,
            "profile_disks": self.profile_disks,
        }

    def load(self, state: Any) -> None:
        self.pools: dict[str, PoolState] = {}
        self.seqs: dict[str, int] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        #: profile id -> [its URL, the pools its disks use]
        self.profile_disks: dict[str, list[Any]] = {}
        if not state:
            return
        self.profile_disks = {k: list(v) for k, v in state["profile_disks"].items()}
        for raw in state["pools"]:
            self._index(None, PoolState(**raw))
        self.seqs = {k: int(v) for k, v in state["seqs"].items()}

    # -- lookups -------------------------------------------------------------------------

    def seq_of(self, pool_id: str) -> int:
        return self.seqs.get(pool_id, 0)

    def pool(self, node: str, name: str) -> PoolState | None:
        pool_id = self.by_name.get((node, name))
        return self.pools[pool_id] if pool_id else None

    def pools_on(self, node: str) -> list[PoolState]:
        found = [self.pools[i] for (n, _), i in self.by_name.items() if n == node]
        return sorted(found, key=lambda s: s.name)

    def profiles_using(self, pool: str) -> list[str]:
        """URLs of the profiles with a disk on ``pool`` (pool names are per node, and so far
        profiles do not say which node's pool they mean)."""
        return sorted(url for url, pools in self.profile_disks.values() if pool in pools)

    def has_name(self, pool_id: str, name: str) -> bool:
        state = self.pools.get(pool_id)
        return state is not None and not state.deleted and state.name == name
