"""What host-side handlers (exec, files, logs) get about one instance of this node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.messages import RequestMeta
from schemas.storage import VolumeIdMap
from services.instance.drivers import InstanceDriver


@dataclass(frozen=True)
class HostInstance:
    """One instance as the node sees it, its root filesystem mounted."""

    instance_id: str
    name: str  # the user-visible name
    project: str
    host_name: str  # the driver's name for it (spec.host_name_for(instance_id))
    rootfs: Path  # the mounted root filesystem, as the driver was given it
    #: None: privileged (container ids are host ids); else container id N is host_base + N.
    idmap: VolumeIdMap | None
    driver: InstanceDriver
    #: A directory of the node's own for this instance (exec record-output files live here).
    state_dir: Path
    #: The expanded config (profiles applied): ``environment.*`` and the like.
    config: dict[str, str] = field(default_factory=dict)


#: Finds an instance of this node by name in the request's project (NotFound otherwise) and
#: makes sure its root filesystem is mounted.
Locate = Callable[[RequestMeta, str], Awaitable[HostInstance]]

#: Records a host action in the log (an ``events.INSTANCE_*`` type, payload merged with the
#: instance's name); returns the stream sequence.
Record = Callable[[HostInstance, str, dict[str, Any], RequestMeta], Awaitable[int]]
