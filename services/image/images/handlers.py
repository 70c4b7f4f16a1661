"""Bus endpoints of ``/1.0/images``: list, get, update and delete (upload and export have
their own modules). Each command is barrier -> decide -> append with expected sequence."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from schemas import images as wire
from schemas import subjects
from schemas.catalog import OperationResult
from schemas.envelope import Event
from schemas.errors import WarrenError
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.operations import RunningOperation
from services.image.images import alias as alias_agg
from services.image.images import image as agg
from services.image.images.context import ImageContext
from services.image.images.orphans import answer_while_running
from services.image.images.state import ImageState, blob_keys

log = logging.getLogger(__name__)


class ImageHandlers:
    """The image endpoints of one service process."""

    def __init__(self, ctx: ImageContext) -> None:
        self.c = ctx

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.IMAGES_LIST, wire.ListQuery, self.list)
        group.add(subjects.IMAGES_GET, wire.ImageRef, self.get)
        group.add(subjects.IMAGES_UPDATE, wire.UpdateImage, self.update)
        group.add(subjects.IMAGES_DELETE, wire.ImageRef, self.delete)

    async def list(self, body: wire.ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        project_id, _ = self.c.home(meta)
        found = self.c.projection.images_in(project_id)
        if body.recursion == 0:
            return [s.fingerprint for s in found], seq
        return [self.c.projection.view(s) for s in found], seq

    async def get(self, body: wire.ImageRef, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        project_id, _ = self.c.home(meta)
        return self.c.image_result(self.c.projection.resolve(project_id, body.fingerprint)), seq

    async def update(self, body: wire.UpdateImage, meta: RequestMeta) -> tuple[Any, int]:
        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            project_id, project = self.c.home(meta)
            state = self.c.projection.resolve(project_id, body.fingerprint)
            command = agg.UpdateImage(
                project=project,
                meta=meta,
                mode=body.mode,
                auto_update=body.auto_update,
                properties=body.properties,
                public=body.public,
                expires_at=body.expires_at,
                profiles=body.profiles,
                fields=tuple(body.fields),
                node=self.c.node,
            )
            return agg.decide(state, command), self.c.projection.seq_of(state.id)

        return None, await decide_and_append(self.c.store, decision)

    async def delete(self, body: wire.ImageRef, meta: RequestMeta) -> tuple[Any, int]:
        await self.c.fresh()
        project_id, project = self.c.home(meta)
        target = self.c.projection.resolve(project_id, body.fingerprint)

        async def work(op: RunningOperation) -> dict[str, Any] | None:
            await self.delete_image(target, project, meta)
            return None

        op = await self.c.operations.start(
            work,
            description="Deleting image",
            resources={"images": [f"/1.0/images/{target.fingerprint}"]},
            may_cancel=False,
            meta=meta,
            project=project,
            operation_id=meta.correlation_id,
        )
        await answer_while_running(self.c.nc, op)
        final = await op.wait()
        seq = await self.c.store.last_seq()
        return OperationResult(operation=final).model_dump(), seq

    async def delete_image(self, target: ImageState, project: str, meta: RequestMeta) -> None:
        """Remove the image's aliases, the image, then its blobs if no project holds them."""
        for alias in self.c.projection.aliases_of(target):
            await self._delete_alias(alias.id, project, meta)

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            state = self.c.projection.images.get(target.id)
            command = agg.DeleteImage(project=project, meta=meta, node=self.c.node)
            return agg.decide(state, command), self.c.projection.seq_of(target.id)

        await decide_and_append(self.c.store, decision)
        await self.c.fresh()
        if not self.c.projection.fingerprint_in_use(target.fingerprint):
            for key in blob_keys(target.fingerprint, target.split):
                with contextlib.suppress(WarrenError):
                    await self.c.blobs.delete(key)

    async def _delete_alias(self, alias_id: str, project: str, meta: RequestMeta) -> None:
        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            state = self.c.projection.aliases.get(alias_id)
            if state is None or state.deleted:
                return [], 0
            command = alias_agg.DeleteAlias(project=project, meta=meta, node=self.c.node)
            return alias_agg.decide(state, command), self.c.projection.seq_of(alias_id)

        await decide_and_append(self.c.store, decision)
        state = self.c.projection.aliases.get(alias_id)
        if state is not None:
            await self.c.alias_names.release(
                state.project_id, state.name, state.id, self.c.event_meta(meta)
            )
