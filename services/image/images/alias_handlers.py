"""Bus endpoints of ``/1.0/images/aliases``: names are claimed through the log
(:class:`~services.common.names.NameRegistry`), so two creators cannot both win."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from schemas import images as wire
from schemas import subjects
from schemas.envelope import Event
from schemas.errors import Conflict, NotFound
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.revert import Reverter
from services.image.images import alias as agg
from services.image.images.context import ImageContext
from services.image.images.state import AliasState

EXISTS = "Alias already exists"


class AliasHandlers:
    """The alias endpoints of one service process."""

    def __init__(self, ctx: ImageContext) -> None:
        self.c = ctx

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.IMAGE_ALIASES_LIST, wire.ListQuery, self.list)
        group.add(subjects.IMAGE_ALIASES_GET, wire.AliasRef, self.get)
        group.add(subjects.IMAGE_ALIASES_CREATE, wire.CreateAlias, self.create)
        group.add(subjects.IMAGE_ALIASES_UPDATE, wire.UpdateAlias, self.update)
        group.add(subjects.IMAGE_ALIASES_RENAME, wire.RenameAlias, self.rename)
        group.add(subjects.IMAGE_ALIASES_DELETE, wire.AliasRef, self.delete)

    def _alias(self, project_id: str, name: str) -> AliasState:
        state = self.c.projection.alias(project_id, name)
        if state is None:
            raise NotFound("Image alias not found")
        return state

    def _target(self, project_id: str, target: str) -> str:
        """The full fingerprint of an alias target (a prefix is resolved, as LXD does)."""
        if not target:
            raise NotFound("Image not found")
        return self.c.projection.resolve(project_id, target).fingerprint

    async def _claim(self, project_id: str, name: str, owner: str, meta: RequestMeta) -> None:
        try:
            await self.c.alias_names.claim(
                project_id, name, owner, self.c.projection.alias_has_name, self.c.event_meta(meta)
            )
        except Conflict as exc:
            raise Conflict(EXISTS) from exc

    async def list(self, body: wire.ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        project_id, _ = self.c.home(meta)
        found = self.c.projection.aliases_in(project_id)
        if body.recursion == 0:
            return [a.name for a in found], seq
        return [a.view() for a in found], seq

    async def get(self, body: wire.AliasRef, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        project_id, _ = self.c.home(meta)
        return self.c.alias_result(self._alias(project_id, body.name)), seq

    async def create(self, body: wire.CreateAlias, meta: RequestMeta) -> tuple[Any, int]:
        new_id = str(uuid.uuid4())
        made: list[AliasState] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                project_id, project = self.c.home(meta)
                agg.check_name(body.name)
                state = AliasState(
                    id=new_id,
                    project_id=project_id,
                    name=body.name,
                    target=self._target(project_id, body.target),
                    description=body.description,
                )
                taken = self.c.projection.alias(project_id, body.name) is not None
                command = agg.CreateAlias(state, project, meta, taken, self.c.node)
                events = agg.decide(None, command)
                await self._claim(project_id, body.name, new_id, meta)
                if not made:
                    revert.add(
                        lambda: self.c.alias_names.release(
                            project_id, body.name, new_id, self.c.event_meta(meta)
                        )
                    )
                made[:] = [state]
                return events, 0

            seq = await decide_and_append(self.c.store, decision)
            revert.success()
        return self.c.alias_result(made[-1]), seq

    async def update(self, body: wire.UpdateAlias, meta: RequestMeta) -> tuple[Any, int]:
        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            project_id, project = self.c.home(meta)
            state = self._alias(project_id, body.name)
            target = body.target
            if body.mode == "put" or "target" in body.fields:
                target = self._target(project_id, body.target)
            command = agg.UpdateAlias(
                project=project,
                meta=meta,
                mode=body.mode,
                target=target,
                description=body.description,
                fields=tuple(body.fields),
                node=self.c.node,
            )
            return agg.decide(state, command), self.c.projection.seq_of(state.id)

        return None, await decide_and_append(self.c.store, decision)

    async def rename(self, body: wire.RenameAlias, meta: RequestMeta) -> tuple[Any, int]:
        renamed: list[AliasState] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                project_id, project = self.c.home(meta)
                state = self._alias(project_id, body.name)
                taken = self.c.projection.alias(project_id, body.new_name) is not None
                command = agg.RenameAlias(project, meta, body.new_name, taken, self.c.node)
                events = agg.decide(state, command)
                await self._claim(project_id, body.new_name, state.id, meta)
                if not renamed:
                    revert.add(
                        lambda: self.c.alias_names.release(
                            project_id, body.new_name, state.id, self.c.event_meta(meta)
                        )
                    )
                renamed[:] = [state]
                return events, self.c.projection.seq_of(state.id)

            seq = await decide_and_append(self.c.store, decision)
            revert.success()
        old = renamed[-1]
        await self.c.alias_names.release(old.project_id, old.name, old.id, self.c.event_meta(meta))
        return None, seq

    async def delete(self, body: wire.AliasRef, meta: RequestMeta) -> tuple[Any, int]:
        deleted: list[AliasState] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            project_id, project = self.c.home(meta)
            state = self._alias(project_id, body.name)
            deleted[:] = [state]
            command = agg.DeleteAlias(project=project, meta=meta, node=self.c.node)
            return agg.decide(state, command), self.c.projection.seq_of(state.id)

        seq = await decide_and_append(self.c.store, decision)
        old = deleted[-1]
        await self.c.alias_names.release(old.project_id, old.name, old.id, self.c.event_meta(meta))
        return None, seq
