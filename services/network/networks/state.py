"""The state of one managed network (with the nics on it) and its LXD view."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from schemas import subjects
from schemas.lxd.catalog import etag_of

NETWORK = subjects.NETWORK_AGGREGATE
_NAMESPACE = uuid.UUID("5b7e0c1a-2f43-4d8e-9a61-3c0f7d2e8b94")


def default_network_id(node: str) -> str:
    """The id of the network a node makes on its first start (the same in every process)."""
    return str(uuid.uuid5(_NAMESPACE, f"network/{node}/default"))


def deterministic_event_id(aggregate_id: str, step: str, version: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"event/{aggregate_id}/{step}/{version}"))


@dataclass(frozen=True)
class Nic:
    """An instance nic on the network: its DNS name and, optionally, its fixed address."""

    instance: str
    project: str
    device: str
    ipv4: str | None = None

    def url(self) -> str:
        url = f"/1.0/instances/{quote(self.instance, safe='')}"
        if self.project != "default":
            url += f"?project={quote(self.project, safe='')}"
        return url


@dataclass(frozen=True)
class NetworkState:
    """One network as the log describes it; ``nics`` by hwaddr."""

    id: str
    name: str
    node: str
    type: str = "bridge"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    nics: dict[str, Nic] = field(default_factory=dict)
    default: bool = False
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.config, self.description)

    def payload(self) -> dict[str, Any]:
        """What every network event carries: the whole network."""
        return {
            "name": self.name,
            "node": self.node,
            "type": self.type,
            "description": self.description,
            "config": dict(self.config),
            "nics": {hw: asdict(nic) for hw, nic in self.nics.items()},
            "default": self.default,
        }

    def dump(self) -> dict[str, Any]:
        return {**self.payload(), "id": self.id, "version": self.version, "deleted": self.deleted}

    @classmethod
    def undump(cls, raw: dict[str, Any]) -> NetworkState:
        nics = {hw: Nic(**nic) for hw, nic in raw.get("nics", {}).items()}
        return cls(**{**raw, "nics": nics})


def network_dict(state: NetworkState, status: str, used_by: list[str]) -> dict[str, Any]:
    """The LXD ``Network`` object of a managed network."""
    return {
        "name": state.name,
        "description": state.description,
        "type": state.type,
        "managed": True,
        "status": status,
        "config": dict(state.config),
        "used_by": used_by,
        "locations": ["none"],
    }


def unmanaged_dict(name: str, kind: str) -> dict[str, Any]:
    """The LXD ``Network`` object of a host interface Warren does not manage."""
    return {
        "name": name,
        "description": "",
        "type": kind,
        "managed": False,
        "status": "",
        "config": {},
        "used_by": [],
        "locations": [],
    }
