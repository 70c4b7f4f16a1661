"""What every instance handler shares: the catalog, the driver, the peers, per-instance locks,
and the translations between the log's instances, LXD's views and the driver's specs."""

from __future__ import annotations

import asyncio
import logging
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.envelope import Event
from schemas.errors import BadRequest, NotFound, Unavailable
from schemas.messages import RequestMeta
from schemas.networks import NicPlugged
from schemas.storage import MountedVolume, VolumeIdMap
from services.common.aggregate import decide_and_append
from services.common.names import NameRegistry
from services.instance.catalog.context import Catalog
from services.instance.catalog.meta import CommandMeta
from services.instance.catalog.state import ProjectState
from services.instance.drivers import InstanceDriver
from services.instance.drivers.spec import IdMap, InstanceSpec, Status
from services.instance.instances import aggregate as agg
from services.instance.instances import config as cfg
from services.instance.instances import nics
from services.instance.instances.host import HostInstance
from services.instance.instances.networking import NicPlumbing
from services.instance.instances.peers import Peers
from services.instance.instances.state import (
    FROZEN,
    INSTANCE,
    RUNNING,
    Expanded,
    InstanceState,
    expand,
)

log = logging.getLogger(__name__)

#: LXD's status codes.
STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 112}
#: Every unprivileged container shares this map (LXD's default, non-isolated).
DEFAULT_IDMAP = VolumeIdMap()


def host_architecture() -> str:
    """The host's architecture; LXD's names are the kernel's (x86_64, aarch64, ...)."""
    return platform.machine()


@dataclass
class Instances:
    """The instance handlers' dependencies, wired once per process."""

    catalog: Catalog
    driver: InstanceDriver
    peers: Peers
    state_root: Path  # $WARREN_DIR/instances: per-instance node state (exec output records)
    node: str
    names: NameRegistry = field(init=False)
    net: NicPlumbing = field(init=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    #: Host name -> rootfs path of the volumes this process mounted (paths never change).
    _rootfs: dict[str, str] = field(default_factory=dict, repr=False)
    #: Host names whose state directory this process has made.
    _state_dirs: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.names = NameRegistry(self.catalog.store, INSTANCE)
        self.net = NicPlumbing(self.peers)

    @property
    def projection(self) -> Any:
        return self.catalog.projection

    async def fresh(self) -> int:
        return await self.catalog.fresh()

    def lock(self, instance_id: str) -> asyncio.Lock:
        """Serialises host changes of one instance within this process."""
        return self._locks.setdefault(instance_id, asyncio.Lock())

    def meta(self, meta: RequestMeta) -> CommandMeta:
        return CommandMeta.of(meta, self.node)

    # -- lookups ---------------------------------------------------------------------------

    def project_or_404(self, meta: RequestMeta) -> ProjectState:
        return self.catalog.project_or_404(meta.project)

    def get(self, meta: RequestMeta, name: str) -> InstanceState:
        project = self.project_or_404(meta)
        state = self.projection.instances.get(project.id, name)
        if state is None:
            raise NotFound("Instance not found")
        return state

    def project_name(self, state: InstanceState) -> str:
        project = self.projection.project_by_id(state.project_id)
        return project.name if project is not None else "default"

    def profile_layers(
        self, project: ProjectState, names: Sequence[str]
    ) -> list[tuple[dict[str, str], dict[str, dict[str, str]]]]:
        """Config and devices of the named profiles, in order; a missing one is refused."""
        home = self.projection.profile_home(project)
        layers = []
        for name in names:
            profile = self.projection.profile(home.id, name)
            if profile is None:
                raise BadRequest(f'Requested profile "{name}" doesn\'t exist')
            layers.append((profile.config, profile.devices))
        return layers

    def expanded(self, state: InstanceState) -> Expanded:
        project = self.projection.project_by_id(state.project_id)
        home = self.projection.profile_home(project) if project else None
        layers = []
        for name in state.profiles:
            profile = self.projection.profile(home.id, name) if home else None
            if profile is not None:  # a profile deleted behind the instance adds nothing
                layers.append((profile.config, profile.devices))
        return expand(state.config, state.devices, layers)

    # -- views -----------------------------------------------------------------------------

    async def live_statuses(self) -> dict[str, Status]:
        """Host name -> status of this node's running or frozen instances."""
        return await self.driver.statuses()

    async def live_status(self, state: InstanceState) -> Status:
        """The host's status of one instance of this node (stopped if the host lacks it)."""
        try:
            return await self.driver.status(state.host_name)
        except NotFound:
            return Status.STOPPED

    def status_of(self, state: InstanceState, live: dict[str, Status] | None) -> str:
        """Live from the host for this node's instances; the log's last word for others."""
        if live is None or state.node != self.node:
            return {RUNNING: "Running", FROZEN: "Frozen"}.get(state.power, "Stopped")
        status = live.get(state.host_name)
        return status.value if status is not None else "Stopped"

    def view(self, state: InstanceState, status: str) -> dict[str, Any]:
        """The LXD ``Instance`` object."""
        expanded = self.expanded(state)
        return {
            "name": state.name,
            **state.writable(),
            "stateful": False,
            "created_at": state.created_at,
            "last_used_at": state.last_used_at,
            "expanded_config": expanded.config,
            "expanded_devices": expanded.devices,
            "status": status,
            "status_code": STATUS_CODES.get(status, 112),
            "location": "none",
            "type": state.type,
            "project": self.project_name(state),
        }

    # -- host ------------------------------------------------------------------------------

    def idmap(self, expanded: Expanded) -> VolumeIdMap | None:
        return None if cfg.privileged(expanded.config) else DEFAULT_IDMAP

    def nics(self, state: InstanceState) -> list[nics.Nic]:
        """The instance's nics, resolved from its expanded devices."""
        expanded = self.expanded(state)
        return nics.resolve(state.id, expanded.config, expanded.devices)

    async def plug(self, state: InstanceState) -> dict[str, NicPlugged]:
        """Plug the instance's network nics (nothing to ask when it has none)."""
        return await self.net.plug(state.name, self.project_name(state), self.nics(state))

    def spec(
        self,
        state: InstanceState,
        mounted: MountedVolume,
        plugged: dict[str, NicPlugged] | None = None,
    ) -> InstanceSpec:
        """What the driver is given for an instance whose volume is mounted (``plugged``:
        what plugging its nics said; else what this process heard last)."""
        expanded = self.expanded(state)
        idmap = self.idmap(expanded)
        driver_idmap = None
        if idmap is not None:
            driver_idmap = IdMap(
                host_uid=idmap.host_base, host_gid=idmap.host_base, count=idmap.count
            )
        try:
            return InstanceSpec(
                name=state.host_name,
                rootfs=Path(mounted.path),
                privileged=idmap is None,
                idmap=driver_idmap,
                rootfs_idmapped_mount=mounted.rootfs_shift == "lxc-idmap",
                limits=cfg.limits_of(expanded.config),
                environment=cfg.environment(expanded.config),
                hostname=state.name,
                nics=nics.specs(
                    nics.resolve(state.id, expanded.config, expanded.devices),
                    {**self.net.known, **(plugged or {})},
                ),
            )
        except ValueError as exc:  # pydantic's: what the driver cannot be given
            raise BadRequest(f"Instance {state.name} cannot be defined: {exc}") from None

    async def mount(self, state: InstanceState) -> MountedVolume:
        mounted = await self.peers.mount_volume(state.pool, state.host_name)
        self._rootfs[state.host_name] = mounted.path
        return mounted

    async def create_volume(self, state: InstanceState) -> MountedVolume:
        """Clone the instance's volume from its image, mounted."""
        idmap = self.idmap(self.expanded(state))
        mounted = await self.peers.create_volume(state.pool, state.host_name, state.image, idmap)
        self._rootfs[state.host_name] = mounted.path
        return mounted

    def state_dir(self, state: InstanceState) -> Path:
        return self.state_root / state.host_name

    async def remove_state_dir(self, state: InstanceState) -> None:
        self._state_dirs.discard(state.host_name)
        await asyncio.to_thread(shutil.rmtree, self.state_dir(state), True)

    async def host(self, meta: RequestMeta, name: str) -> HostInstance:
        """The :class:`HostInstance` of an instance of this node, its volume mounted."""
        await self.fresh()
        return await self.host_of(self.get(meta, name))

    async def host_of(self, state: InstanceState, mount: bool = True) -> HostInstance:
        """Like :meth:`host` for a state in hand; a running instance's volume is mounted, so
        ``mount=False`` skips asking storage when this process mounted it before."""
        if state.node != self.node:
            raise BadRequest(f"Instance {state.name} lives on node {state.node}, not {self.node}")
        known = self._rootfs.get(state.host_name)
        rootfs = Path(known) if known and not mount else Path((await self.mount(state)).path)
        expanded = self.expanded(state)
        directory = self.state_dir(state)
        if state.host_name not in self._state_dirs:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            self._state_dirs.add(state.host_name)
        return HostInstance(
            instance_id=state.id,
            name=state.name,
            project=self.project_name(state),
            host_name=state.host_name,
            rootfs=rootfs,
            idmap=self.idmap(expanded),
            driver=self.driver,
            state_dir=directory,
            config=expanded.config,
        )

    # -- the log ---------------------------------------------------------------------------

    async def decide(
        self, instance_id: str, command: agg.Command, optimistic: bool = False
    ) -> InstanceState:
        """Decide on fresh state and append, retrying on concurrent writes; the new state.

        ``optimistic``: the first decision is on the projection as it is (no barrier round
        trip); a concurrent write makes the append fail, and the retry is on fresh state.
        """
        decided: list[InstanceState] = []
        attempts = 0

        async def decision() -> tuple[Sequence[Event], int]:
            nonlocal attempts
            attempts += 1
            if not (optimistic and attempts == 1):
                await self.fresh()
            current = self.projection.instances.by_id.get(instance_id)
            events = agg.decide(current, command)
            decided[:] = [agg.from_event(events[-1])] if events else []
            return events, self.projection.seq_of(instance_id)

        seq = await decide_and_append(self.catalog.store, decision)
        try:
            await self.projection.wait_for(seq)
        except Unavailable:
            # Committed all the same: the caller must not undo host work for this (the next
            # read's barrier catches the projection up).
            log.warning("projection slow to show seq %d; carrying on", seq)
        return decided[-1]

    async def record(
        self, host: HostInstance, event_type: str, extra: dict[str, Any], meta: RequestMeta
    ) -> int:
        """Record an action on an instance (exec, file transfer) for the audit trail:
        optimistically, as callers have just read the instance on fresh state."""
        command = agg.RecordAction(host.project, event_type, extra, self.meta(meta))
        await self.decide(host.instance_id, command, optimistic=True)
        return self.projection.seq_of(host.instance_id)
