"""The networks read model: every network of every node, their forwards, which profiles'
nics use which network, and (for history) every network that carried each name on each node,
all folded from the log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from schemas import events
from schemas.envelope import Event, StoredEvent
from services.common.name_history import NameHistory
from services.common.projection import Projection
from services.network.networks import aggregate
from services.network.networks.forward_state import FORWARD, ForwardState, evolve_forward
from services.network.networks.state import NETWORK, NetworkState

PROFILE = "profile"


class NetworkProjection(Projection):
    """Networks (with their nics), forwards, and the profiles whose nics name a network."""

    name = "networks"
    snapshot_version = 2
    aggregates = frozenset({NETWORK, FORWARD, PROFILE})

    def __init__(self) -> None:
        super().__init__()
        self.load(None)

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if event.aggregate == PROFILE:
            self._profile(event)
        elif event.aggregate == FORWARD:
            forward = evolve_forward(self.forwards.get(event.aggregate_id), event)
            if forward is not None:
                self.forwards[forward.id] = forward
        else:
            old = self.networks.get(event.aggregate_id)
            new = aggregate.evolve(old, event)
            if new is not None:
                self._index(old, new)
                self.names.saw(NETWORK, new.node, new.name, new.id, stored.seq, new.deleted)
        self.seqs[event.aggregate_id] = stored.seq

    def _index(self, old: NetworkState | None, new: NetworkState) -> None:
        self.networks[new.id] = new
        if old is not None and self.by_name.get((old.node, old.name)) == old.id:
            del self.by_name[(old.node, old.name)]
        if not new.deleted:
            self.by_name[(new.node, new.name)] = new.id

    def _profile(self, event: Event) -> None:
        if event.type == events.PROFILE_DELETED:
            self.profile_nics.pop(event.aggregate_id, None)
            return
        devices = event.payload.get("devices") or {}
        names = sorted(
            {d["network"] for d in devices.values() if d.get("type") == "nic" and d.get("network")}
        )
        url = f"/1.0/profiles/{quote(str(event.payload.get('name', '')), safe='')}"
        if event.project != "default":
            url += f"?project={quote(event.project, safe='')}"
        self.profile_nics[event.aggregate_id] = [url, names]

    def dump(self) -> Any:
        return {
            "networks": [s.dump() for s in self.networks.values()],
            "forwards": [asdict(f) for f in self.forwards.values()],
            "seqs": self.seqs,
            "profile_nics": self.profile_nics,
            "names": self.names.dump(),
        }

    def load(self, state: Any) -> None:
        self.networks: dict[str, NetworkState] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.forwards: dict[str, ForwardState] = {}
        self.seqs: dict[str, int] = {}
        #: profile id -> [its URL, the networks its nics use]
        self.profile_nics: dict[str, list[Any]] = {}
        #: Every network that carried each name, by node (for history).
        self.names = NameHistory()
        if not state:
            return
        for raw in state["networks"]:
            self._index(None, NetworkState.undump(raw))
        for raw in state["forwards"]:
            forward = ForwardState.undump(raw)
            self.forwards[forward.id] = forward
        self.seqs = {k: int(v) for k, v in state["seqs"].items()}
        self.profile_nics = {k: list(v) for k, v in state["profile_nics"].items()}
        self.names.load(state.get("names"))

    # -- lookups -------------------------------------------------------------------------

    def seq_of(self, aggregate_id: str) -> int:
        return self.seqs.get(aggregate_id, 0)

    def network(self, node: str, name: str) -> NetworkState | None:
        network_id = self.by_name.get((node, name))
        return self.networks[network_id] if network_id else None

    def networks_on(self, node: str) -> list[NetworkState]:
        found = [self.networks[i] for (n, _), i in self.by_name.items() if n == node]
        return sorted(found, key=lambda s: s.name)

    def has_name(self, network_id: str, name: str) -> bool:
        state = self.networks.get(network_id)
        return state is not None and not state.deleted and state.name == name

    def forwards_of(self, network_id: str) -> list[ForwardState]:
        found = [f for f in self.forwards.values() if f.network_id == network_id and not f.deleted]
        return sorted(found, key=lambda f: f.listen_address)

    def used_by(self, state: NetworkState) -> list[str]:
        """Profiles whose nics name the network, then the instances plugged into it."""
        profiles = sorted(url for url, names in self.profile_nics.values() if state.name in names)
        instances = sorted({nic.url() for nic in state.nics.values()})
        return profiles + instances
