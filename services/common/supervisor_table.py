"""What the supervisor runs: the declarative table of Warren's processes, and replica counts.

Each entry names a module started as ``python -m <module>`` (or, for tests, an explicit argv),
its scope (``cluster``: any replica anywhere may serve; ``node``: runs on every node), whether
it may run as several replicas, its role (a plain ``service`` or the ``gateway``, which gets a
unix socket) and how the supervisor tells that a fresh process is ready.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter, model_validator

#: What the runtime (services.common.runtime.run_service) logs once a service serves requests.
SERVICE_READY_PATTERN = r"\bready on node\b"


class ReadyProbe(BaseModel):
    """How to tell a started process is ready: a line in its log, its socket, or nothing."""

    kind: Literal["log", "socket", "none"] = "log"
    pattern: str = SERVICE_READY_PATTERN


class ServiceSpec(BaseModel):
    """One kind of process in the table."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    module: str | None = None
    argv: list[str] | None = None
    scope: Literal["cluster", "node"] = "cluster"
    replicable: bool | None = None
    role: Literal["service", "gateway"] = "service"
    ready: ReadyProbe = Field(default_factory=ReadyProbe)

    @model_validator(mode="after")
    def _check(self) -> ServiceSpec:
        if (self.module is None) == (self.argv is None):
            raise ValueError(f"{self.name}: give exactly one of module or argv")
        if self.replicable is None:
            # Cluster-scoped services share work through queue groups, so copies are safe.
            self.replicable = self.scope == "cluster"
        if self.role == "gateway" and self.ready.kind == "log":
            self.ready = ReadyProbe(kind="socket")
        return self

    def command(self, python: str) -> list[str]:
        """The argv that starts one copy."""
        if self.argv is not None:
            return list(self.argv)
        assert self.module is not None
        return [python, "-m", self.module]


#: The real table. Order matters: services start before the gateway that fronts them.
SERVICES: list[ServiceSpec] = [
    # Node agent, but it also owns the cluster-scoped catalog (projects, profiles) served in
    # queue group "instance", and its per-node endpoints use queue groups too: copies on one
    # node share the work, so replicas are allowed.
    ServiceSpec(name="instance", module="services.instance", scope="node", replicable=True),
    # Node agent owning this node's storage pools: one process per node (it serialises host
    # changes of a pool in memory), so no replicas.
    ServiceSpec(name="storage", module="services.storage", scope="node"),
    # Node agent owning this node's networks (bridges, nftables, dnsmasq): one per node, as
    # it serialises host changes of a network in memory.
    ServiceSpec(name="network", module="services.network", scope="node"),
    # Images and aliases: cluster-scoped, any replica serves (queue group "image").
    ServiceSpec(name="image", module="services.image", scope="cluster"),
    ServiceSpec(name="gateway", module="gateway", scope="cluster", role="gateway"),
]

_TABLE = TypeAdapter(list[ServiceSpec])


def load_table(path: Path | None) -> list[ServiceSpec]:
    """The real table, or one read from a JSON file (a list of entries; used by tests)."""
    if path is None:
        return list(SERVICES)
    table = _TABLE.validate_python(json.loads(Path(path).read_text()))
    names = [spec.name for spec in table]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate names in service table {path}")
    if "nats" in names:
        raise ValueError("'nats' is the supervisor's own nats-server, not a table entry")
    return table


def parse_replicas(text: str | None) -> dict[str, int]:
    """Parse ``instance=2,gateway=2`` (empty or None: no overrides)."""
    result: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, count = item.partition("=")
        name = name.strip()
        if not sep or not name or not count.strip().isdigit():
            raise ValueError(f"bad replicas item {item!r}: expected <service>=<count>")
        result[name] = int(count)
    return result


def replica_counts(table: list[ServiceSpec], overrides: dict[str, int]) -> dict[str, int]:
    """How many copies of each table entry to run; refuse what the table does not allow."""
    by_name = {spec.name: spec for spec in table}
    for name, count in overrides.items():
        spec = by_name.get(name)
        if spec is None:
            raise ValueError(f"unknown service {name!r} (known: {', '.join(by_name)})")
        if count < 1:
            raise ValueError(f"{name}: at least one replica is needed")
        if count > 1 and not spec.replicable:
            raise ValueError(f"{name} is {spec.scope}-scoped and cannot run as replicas")
    return {spec.name: overrides.get(spec.name, 1) for spec in table}


def label(name: str, replica: int) -> str:
    """Process label used for logs and status: ``instance``, ``instance-2``, ..."""
    return name if replica == 0 else f"{name}-{replica + 1}"


def gateway_socket(default_socket: Path, warren_dir: Path, replica: int) -> Path:
    """Replica 0 of the gateway owns the API socket; further replicas get their own.

    A unix socket path has one listener, so extra gateway replicas listen on
    ``$WARREN_DIR/gateway-<n>.socket`` (n = 2, 3, ...) rather than sharing ``unix.socket``.
    """
    if replica == 0:
        return default_socket
    return warren_dir / f"gateway-{replica + 1}.socket"
