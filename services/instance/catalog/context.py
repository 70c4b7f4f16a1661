"""What every catalog handler shares: the log, the fresh projection, the name registries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from schemas.errors import Conflict, NotFound
from schemas.messages import RequestMeta
from services.common.eventstore import EventStore
from services.common.names import NameRegistry, event_meta
from services.common.operations import OperationRecorder
from services.common.projection import ProjectionRunner
from services.instance.catalog.meta import PROFILE, PROJECT, CommandMeta
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.state import ProjectState

#: Projects are unique cluster-wide: their names share one scope.
GLOBAL_SCOPE = "global"


@dataclass
class Catalog:
    """The catalog's dependencies, wired once per process."""

    store: EventStore
    runner: ProjectionRunner
    projection: CatalogProjection
    operations: OperationRecorder
    node: str
    #: The start-up repair, running once the projection has caught up.
    reconcile_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.profile_names = NameRegistry(self.store, PROFILE)
        self.project_names = NameRegistry(self.store, PROJECT)

    async def fresh(self) -> int:
        """Bring the projection up to everything committed (read-your-writes); the seq."""
        return await self.runner.barrier()

    def meta(self, meta: RequestMeta) -> CommandMeta:
        return CommandMeta.of(meta, self.node)

    def project_or_404(self, name: str) -> ProjectState:
        """The request's project, with the message LXD gives for a missing one."""
        project = self.projection.project(name)
        if project is None:
            raise NotFound(f'Failed loading project "{name}": Project not found')
        return project

    async def claim_profile_name(
        self, project_id: str, name: str, owner: str, cmd: CommandMeta, message: str
    ) -> None:
        try:
            await self.profile_names.claim(
                project_id, name, owner, self.projection.profile_has_name, event_meta(cmd)
            )
        except Conflict as exc:
            raise Conflict(message) from exc

    async def release_profile_name(
        self, project_id: str, name: str, owner: str, cmd: CommandMeta
    ) -> None:
        await self.profile_names.release(project_id, name, owner, event_meta(cmd))

    async def claim_project_name(
        self, name: str, owner: str, cmd: CommandMeta, message: str
    ) -> None:
        try:
            await self.project_names.claim(
                GLOBAL_SCOPE, name, owner, self.projection.project_has_name, event_meta(cmd)
            )
        except Conflict as exc:
            raise Conflict(message) from exc

    async def release_project_name(self, name: str, owner: str, cmd: CommandMeta) -> None:
        await self.project_names.release(GLOBAL_SCOPE, name, owner, event_meta(cmd))
