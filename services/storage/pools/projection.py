"""The pools read model: every pool of every node, by id and by (node, name); which
profiles' disks use which pool; and which instance owns which container volume, under which
name and project. All of it is folded from the log (pool, profile, instance and project
events), so a pool's ``used_by`` and the volume listing need no request to the instance
service. For history, it keeps every pool that carried each name on each node.

An instance's volume is named after its host name (from its id, fixed at creation), so
renames cost nothing on the host; LXD clients see it under the instance's current name,
which only the instance and project events say.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from schemas import events, subjects
from schemas.envelope import Event, StoredEvent
from services.common.name_history import NameHistory
from services.common.projection import Projection
from services.storage.pools import aggregate
from services.storage.pools.state import POOL, PROFILE, PoolState

#: Instances and projects (owned by the instance service): who owns a container volume.
INSTANCE = subjects.INSTANCE_AGGREGATE
PROJECT = "project"
DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class InstanceRef:
    """What the storage service knows of one instance: enough to name its volume."""

    id: str
    name: str
    host_name: str
    pool: str
    node: str
    project_id: str
    #: The project's name as the instance's last event gave it (used while the project's
    #: own events say nothing, e.g. a log that starts after the project was created).
    project: str = DEFAULT_PROJECT


@dataclass(frozen=True)
class VolumeOwner:
    """The instance a container volume belongs to, as LXD names it."""

    name: str
    project: str


def instance_url(name: str, project: str) -> str:
    """``/1.0/instances/<name>[?project=<p>]``."""
    url = f"/1.0/instances/{quote(name, safe='')}"
    if project != DEFAULT_PROJECT:
        url += f"?project={quote(project, safe='')}"
    return url


class PoolProjection(Projection):
    """Pools folded from the log with the aggregate's own ``evolve``."""

    name = "storage-pools"
    snapshot_version = 4
    aggregates = frozenset({POOL, PROFILE, INSTANCE, PROJECT})

    def __init__(self) -> None:
        super().__init__()
        self.load(None)

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if event.aggregate == PROFILE:
            self._profile(event)
            return
        if event.aggregate == INSTANCE:
            self._instance(event)
            return
        if event.aggregate == PROJECT:
            self._project(event)
            return
        old = self.pools.get(event.aggregate_id)
        new = aggregate.evolve(old, event)
        if new is not None:
            self._index(old, new)
            self.names.saw(POOL, new.node, new.name, new.id, stored.seq, new.deleted)
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

    def _instance(self, event: Event) -> None:
        """Every instance event carries the whole instance: keep what names its volume."""
        old = self.instances.get(event.aggregate_id)
        if event.type == events.INSTANCE_DELETED:
            if old is not None:
                self._drop(old)
            return
        p = event.payload
        if not p.get("name") or not p.get("host_name"):
            return  # not a state-carrying event (none such today): nothing to learn
        new = InstanceRef(
            id=event.aggregate_id,
            name=str(p["name"]),
            host_name=str(p["host_name"]),
            pool=str(p.get("pool", "")),
            node=str(p.get("node", "")),
            project_id=str(p.get("project_id", "")),
            project=event.project,
        )
        if old is not None:
            self._drop(old)
        self._add(new)

    def _add(self, ref: InstanceRef) -> None:
        self.instances[ref.id] = ref
        self.by_host[ref.host_name] = ref.id

    def _drop(self, ref: InstanceRef) -> None:
        del self.instances[ref.id]
        if self.by_host.get(ref.host_name) == ref.id:
            del self.by_host[ref.host_name]

    def _project(self, event: Event) -> None:
        if event.type == events.PROJECT_DELETED:
            self.projects.pop(event.aggregate_id, None)
            return
        name = event.payload.get("name")
        if name:
            self.projects[event.aggregate_id] = str(name)

    def dump(self) -> Any:
        return {
            "pools": [s.dump() for s in self.pools.values()],
            "seqs": self.seqs,
            "profile_disks": self.profile_disks,
            "instances": [asdict(r) for r in self.instances.values()],
            "projects": self.projects,
            "names": self.names.dump(),
        }

    def load(self, state: Any) -> None:
        self.pools: dict[str, PoolState] = {}
        self.seqs: dict[str, int] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        #: profile id -> [its URL, the pools its disks use]
        self.profile_disks: dict[str, list[Any]] = {}
        #: instance id -> what names its volume; host name -> instance id
        self.instances: dict[str, InstanceRef] = {}
        self.by_host: dict[str, str] = {}
        #: project id -> its current name
        self.projects: dict[str, str] = {}
        #: Every pool that carried each name, by node (for history).
        self.names = NameHistory()
        if not state:
            return
        self.profile_disks = {k: list(v) for k, v in state["profile_disks"].items()}
        for raw in state["pools"]:
            self._index(None, PoolState(**raw))
        self.seqs = {k: int(v) for k, v in state["seqs"].items()}
        for raw in state["instances"]:
            self._add(InstanceRef(**raw))
        self.projects = {k: str(v) for k, v in state["projects"].items()}
        self.names.load(state.get("names"))

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

    def volume_owner(self, pool: PoolState, host_name: str) -> VolumeOwner | None:
        """The live instance whose volume ``host_name`` in ``pool`` is, by its current name
        and project; ``None`` for a volume no instance of the log owns there (a leftover)."""
        instance_id = self.by_host.get(host_name)
        if instance_id is None:
            return None
        ref = self.instances[instance_id]
        if ref.pool != pool.name or ref.node != pool.node:
            return None
        return VolumeOwner(ref.name, self.projects.get(ref.project_id, ref.project))
