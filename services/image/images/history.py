"""``warren_history`` of images and image aliases, served on :data:`subjects.IMAGE_HISTORY`.

Both are scoped by project id, as the projection keeps them: a request covers every project
that carried the request's project name (renamed and deleted ones too) and, for a project
without ``features.images``, the default project it takes its images from. An image's name is
its fingerprint; a unique prefix is enough, as in LXD. A past image's ``aliases`` is empty
(aliases are objects of their own, with their own history).
"""

from __future__ import annotations

from typing import Any

from schemas import subjects
from schemas.errors import BadRequest, NotFound
from services.common.endpoints import EndpointGroup
from services.common.history import HistoryEndpoints
from services.common.history_lookup import HistoryBook
from services.common.name_history import NameHistory
from services.image.images import alias as alias_agg
from services.image.images import image as image_agg
from services.image.images.context import ImageContext
from services.image.images.state import ALIAS, IMAGE, AliasState, ImageState, image_view


class ImageHistory(HistoryBook):
    """What the shared history needs to know of images and aliases."""

    evolvers = {IMAGE: image_agg.evolve, ALIAS: alias_agg.evolve}

    def __init__(self, ctx: ImageContext) -> None:
        self.ctx = ctx
        self.p = ctx.projection
        self.store = ctx.store

    @property
    def names(self) -> NameHistory:
        return self.p.names

    async def fresh(self) -> int:
        return await self.ctx.fresh()

    def seq_of(self, object_id: str) -> int:
        return self.p.seq_of(object_id)

    def project_scoped(self, kind: str) -> bool:
        return True

    def scopes(self, kind: str, project: str) -> list[str]:
        found = self.p.image_scopes(project)
        if not found:
            raise NotFound(f'Failed loading project "{project}": Project not found')
        return found

    def project_name(self, kind: str, scope: str) -> str | None:
        info = self.p.projects.get(scope)
        return str(info["name"]) if info is not None else None

    def resolve(self, kind: str, name: str, project: str) -> str:
        """A fingerprint prefix -> the one fingerprint any image of the scopes had."""
        scopes = self.scopes(kind, project)
        if kind != IMAGE or any(self.names.holders(kind, s, name) for s in scopes):
            return name
        found = {n for s in scopes for n in self.names.names(kind, s) if n.startswith(name)}
        if len(found) > 1:
            raise BadRequest("More than one image matches")
        return found.pop() if found else name

    def live(self, kind: str, name: str, project: str) -> str | None:
        try:
            home, _ = self.p.image_home(project)
        except NotFound:
            return None  # a deleted project: its objects are all gone
        if kind == ALIAS:
            alias = self.p.alias(home, name)
            return alias.id if alias is not None else None
        live = [s for s in self.p.images_in(home) if s.fingerprint == name]
        return live[0].id if live else None

    async def current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if kind == ALIAS:
            alias = self.p.aliases.get(object_id)
            return alias.view() if alias is not None and not alias.deleted else None
        image = self.p.images.get(object_id)
        return self.p.view(image) if image is not None and not image.deleted else None

    def past(self, kind: str, state: Any) -> dict[str, Any] | None:
        if isinstance(state, AliasState):
            return state.view()
        if isinstance(state, ImageState):
            return image_view(state, [])
        return None


def register(ctx: ImageContext, group: EndpointGroup) -> None:
    """Serve the image service's history subjects."""
    book = ImageHistory(ctx)
    HistoryEndpoints(book).register(group, subjects.IMAGE_HISTORY, subjects.IMAGE_HISTORY_LIST)
