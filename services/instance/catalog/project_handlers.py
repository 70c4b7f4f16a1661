"""Bus endpoints of ``/1.0/projects``.

A project using its own profiles (``features.profiles=true``) gets a ``default`` profile on
creation, or when the feature is switched on; the profile goes when the project goes or the
feature is switched off. Renaming is an LXD operation (``POST /1.0/projects/<name>`` is
asynchronous in LXD 5.0): its reply is ``{"operation": <LXD operation object>}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from schemas import catalog as wire
from schemas import subjects
from schemas.envelope import Event
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.operations import RunningOperation
from services.common.revert import Reverter
from services.instance.catalog import defaults, limits
from services.instance.catalog import project as agg
from services.instance.catalog.context import Catalog
from services.instance.catalog.meta import CommandMeta
from services.instance.catalog.meta import new_id as new_aggregate_id
from services.instance.catalog.state import ProjectState, object_url


def _operation_id(correlation_id: str | None) -> str | None:
    """The gateway names the operation through the correlation id; keep it if it is a uuid."""
    try:
        return str(uuid.UUID(correlation_id)) if correlation_id else None
    except ValueError:
        return None


class ProjectHandlers:
    """The project endpoints of one service process."""

    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.PROJECTS_LIST, wire.ListQuery, self.list)
        group.add(subjects.PROJECTS_GET, wire.ByName, self.get)
        group.add(subjects.PROJECTS_CREATE, wire.CreateProject, self.create)
        group.add(subjects.PROJECTS_UPDATE, wire.UpdateProject, self.update)
        group.add(subjects.PROJECTS_RENAME, wire.RenameObject, self.rename)
        group.add(subjects.PROJECTS_DELETE, wire.ByName, self.delete)

    def _project(self, name: str, message: str = "Project not found") -> ProjectState:
        state = self.c.projection.project(name)
        if state is None:
            raise NotFound(message)
        return state

    async def _result(self, name: str) -> tuple[dict[str, Any], int]:
        seq = await self.c.fresh()
        state = self._project(name)
        view = self.c.projection.project_view(state)
        return wire.ObjectResult(object=view, etag=state.etag).model_dump(), seq

    async def _sync_default_profile(self, state: ProjectState, cmd: CommandMeta) -> None:
        """Make the project's own ``default`` profile exist exactly when it should."""
        if agg.has_profiles(state):
            await defaults.ensure_default_profile(self.c.store, state.id, state.name, cmd)
        else:
            await defaults.remove_default_profile(self.c.store, state.id, state.name, cmd)

    # -- queries -------------------------------------------------------------------------

    async def list(self, body: wire.ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        projects = sorted(
            (self.c.projection.projects[i] for i in self.c.projection.project_by_name.values()),
            key=lambda s: s.name,
        )
        if body.recursion == 0:
            return [p.name for p in projects], seq
        return [self.c.projection.project_view(p) for p in projects], seq

    async def get(self, body: wire.ByName, meta: RequestMeta) -> tuple[Any, int]:
        return await self._result(body.name)

    # -- commands ------------------------------------------------------------------------

    async def create(self, body: wire.CreateProject, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        new_id = new_aggregate_id()
        decided: list[Sequence[Event]] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                command = agg.CreateProject(
                    id=new_id,
                    name=body.name,
                    description=body.description,
                    config=body.config,
                    name_taken=self.c.projection.project(body.name) is not None,
                    meta=cmd_meta,
                )
                events = agg.decide(None, command)
                message = (
                    f'Failed creating project "{body.name}": Failed adding database record: '
                    'This "projects" entry already exists'
                )
                await self.c.claim_project_name(body.name, new_id, cmd_meta, message)
                revert.add(lambda: self.c.release_project_name(body.name, new_id, cmd_meta))
                decided[:] = [events]
                return events, 0

            await decide_and_append(self.c.store, decision)
            revert.success()
        await self._sync_default_profile(agg.from_event(decided[-1][-1]), cmd_meta)
        return await self._result(body.name)

    async def update(self, body: wire.UpdateProject, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        decided: list[Sequence[Event]] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            state = self._project(body.name)
            command = agg.UpdateProject(
                mode=body.mode,
                description=body.description,
                config=body.config,
                fields=tuple(body.fields),
                if_match=meta.if_match,
                empty=self.c.projection.project_is_empty(state),
                usage=limits.Usage.of(self.c.projection.instances.in_project(state.id)),
                meta=cmd_meta,
            )
            events = agg.decide(state, command)
            decided[:] = [events]
            return events, self.c.projection.seq_of(state.id)

        await decide_and_append(self.c.store, decision)
        await self._sync_default_profile(agg.from_event(decided[-1][-1]), cmd_meta)
        return await self._result(body.name)

    async def rename(self, body: wire.RenameObject, meta: RequestMeta) -> tuple[Any, int]:
        # Refuse bad requests synchronously; only a valid rename becomes an operation.
        await self.c.fresh()
        state = self._project(body.name, f'Failed loading project "{body.name}": Project not found')
        agg.decide(state, self._rename_command(state, body, self.c.meta(meta)))

        async def work(op: RunningOperation) -> None:
            op_meta = meta.model_copy(update={"correlation_id": op.id})
            await self._rename(body, op_meta)

        final = await self.c.operations.run(
            work,
            description="Renaming project",
            may_cancel=False,
            meta=meta,
            resources={"projects": [object_url("projects", body.name)]},
            operation_id=_operation_id(meta.correlation_id),
        )
        return wire.OperationResult(operation=final).model_dump(), await self.c.store.last_seq()

    def _rename_command(
        self, state: ProjectState, body: wire.RenameObject, cmd_meta: CommandMeta
    ) -> agg.RenameProject:
        return agg.RenameProject(
            new_name=body.new_name,
            name_taken=self.c.projection.project(body.new_name) is not None,
            empty=self.c.projection.project_is_empty(state),
            meta=cmd_meta,
        )

    async def _rename(self, body: wire.RenameObject, meta: RequestMeta) -> None:
        cmd_meta = self.c.meta(meta)
        owner: list[str] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                state = self._project(
                    body.name, f'Failed loading project "{body.name}": Project not found'
                )
                events = agg.decide(state, self._rename_command(state, body, cmd_meta))
                message = f'A project named "{body.new_name}" already exists'
                await self.c.claim_project_name(body.new_name, state.id, cmd_meta, message)
                if not owner:
                    revert.add(
                        lambda: self.c.release_project_name(body.new_name, state.id, cmd_meta)
                    )
                owner[:] = [state.id]
                return events, self.c.projection.seq_of(state.id)

            await decide_and_append(self.c.store, decision)
            revert.success()
        await self.c.release_project_name(body.name, owner[-1], cmd_meta)

    async def delete(self, body: wire.ByName, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        deleted: list[ProjectState] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            state = self._project(body.name, f'Fetch project "{body.name}": Project not found')
            command = agg.DeleteProject(
                empty=self.c.projection.project_is_empty(state), meta=cmd_meta
            )
            events = agg.decide(state, command)
            deleted[:] = [state]
            return events, self.c.projection.seq_of(state.id)

        seq = await decide_and_append(self.c.store, decision)
        state = deleted[-1]
        # After the project: a crash in between leaves an orphan that reconcile removes.
        await defaults.remove_default_profile(self.c.store, state.id, state.name, cmd_meta)
        await self.c.release_project_name(state.name, state.id, cmd_meta)
        return None, seq
