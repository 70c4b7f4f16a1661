"""The state of one storage pool, its identity helpers and its LXD view."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas import subjects
from schemas.lxd.catalog import etag_of

POOL = subjects.STORAGE_POOL_AGGREGATE
#: Profiles (owned by the instance service) whose disks may use pools.
PROFILE = "profile"
DEFAULT_POOL = "default"
_NAMESPACE = uuid.UUID("0d7c2f5e-93a4-4b1c-8f0e-5a2d6b9c4e17")

#: Pool status as LXD reports it.
CREATED = "Created"
UNAVAILABLE = "Unavailable"


def default_pool_id(node: str) -> str:
    """The id of a node's ``default`` pool: the same for every process of that node."""
    return str(uuid.uuid5(_NAMESPACE, f"storage-pool/{node}/default"))


def deterministic_event_id(aggregate_id: str, step: str, version: int) -> str:
    """An event id fixed by what it does, for events a restarted process may attempt again."""
    return str(uuid.uuid5(_NAMESPACE, f"event/{aggregate_id}/{step}/{version}"))


@dataclass(frozen=True)
class PoolState:
    """One pool as the log describes it."""

    id: str
    name: str
    node: str
    driver: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.config, self.description)

    def payload(self) -> dict[str, Any]:
        """What every pool event carries: the whole pool."""
        return {
            "name": self.name,
            "node": self.node,
            "driver": self.driver,
            "description": self.description,
            "config": dict(self.config),
        }

    def dump(self) -> dict[str, Any]:
        return asdict(self)


def pool_dict(state: PoolState, status: str, used_by: list[str]) -> dict[str, Any]:
    """The LXD ``StoragePool`` object."""
    return {
        "name": state.name,
        "description": state.description,
        "driver": state.driver,
        "status": status,
        "config": dict(state.config),
        "locations": ["none"],
        "used_by": used_by,
    }
