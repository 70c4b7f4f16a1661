"""The CRUD shape shared by LXD's named collections (profiles, projects, ...).

A family describes its subjects and body models once; the handlers here turn HTTP into
commands and queries and shape the replies exactly as LXD does: list (URLs or objects), create
(201 + Location, metadata null), get (ETag), PUT/PATCH (If-Match; metadata {}), rename
(201 + Location of the new name), delete (metadata {}).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import context, responses
from gateway.state import state
from schemas.catalog import ByName, ListQuery, ObjectResult, RenameObject
from schemas.lxd.catalog import RenamePost
from schemas.messages import RequestMeta


@dataclass(frozen=True)
class Family:
    """One named collection: where it lives, which subjects serve it, which bodies it takes."""

    collection: str  # "profiles"
    create_subject: str
    update_subject: str
    rename_subject: str
    delete_subject: str
    list_subject: str
    get_subject: str
    create_model: type[BaseModel]
    update_model: type[BaseModel]
    #: Top-level fields a PATCH may carry (the others in the body are ignored, as in LXD).
    writable: tuple[str, ...]
    #: Whether ``?project=`` scopes the collection (projects themselves are global).
    project_scoped: bool = True
    #: The project the objects of a request live in, when it may not be the request's own
    #: (profiles of a project without ``features.profiles`` are the default project's); the
    #: URLs the handlers answer with name it. Asked only after the service has answered.
    home: Callable[[web.Request, RequestMeta], Awaitable[str]] | None = None

    @property
    def base(self) -> str:
        return f"/1.0/{self.collection}"

    def meta(self, request: web.Request, correlation_id: str | None = None) -> RequestMeta:
        meta = context.meta(request, correlation_id)
        if not self.project_scoped:
            meta.project = context.DEFAULT_PROJECT
        return meta

    def url(self, name: str, project: str) -> str:
        return context.url(self.collection, name, project)

    async def home_of(self, request: web.Request, meta: RequestMeta) -> str:
        return meta.project if self.home is None else await self.home(request, meta)

    async def ask(
        self, request: web.Request, subject: str, body: BaseModel, meta: RequestMeta
    ) -> Any:
        return await state(request).bus.request(subject, body.model_dump(mode="json"), meta)

    # -- handlers -------------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        meta = self.meta(request)
        recursion = context.recursion(request)
        result = await self.ask(
            request, self.list_subject, ListQuery(recursion=min(recursion, 1)), meta
        )
        if recursion == 0:
            home = await self.home_of(request, meta)
            return responses.sync([self.url(name, home) for name in result])
        return responses.sync(result)

    async def create(self, request: web.Request) -> web.Response:
        meta = self.meta(request)
        body, _ = await context.body(request, self.create_model)
        await self.ask(request, self.create_subject, body, meta)
        location = self.url(body.name, await self.home_of(request, meta))  # type: ignore[attr-defined]
        return responses.sync(None, location=location)

    async def get(self, request: web.Request) -> web.Response:
        meta = self.meta(request)
        name = request.match_info["name"]
        result = ObjectResult.model_validate(
            await self.ask(request, self.get_subject, ByName(name=name), meta)
        )
        return responses.sync(result.object, etag=result.etag)

    async def put(self, request: web.Request) -> web.Response:
        return await self._update(request, "put")

    async def patch(self, request: web.Request) -> web.Response:
        return await self._update(request, "patch")

    async def _update(self, request: web.Request, mode: str) -> web.Response:
        meta = self.meta(request)
        data = await context.json_body(request)
        fields = [key for key in self.writable if key in data]
        update = {**data, "name": request.match_info["name"], "mode": mode, "fields": fields}
        body = context.validate(self.update_model, update)
        await self.ask(request, self.update_subject, body, meta)
        return responses.empty()

    async def rename(self, request: web.Request) -> web.Response:
        meta = self.meta(request)
        post, _ = await context.body(request, RenamePost)
        body = RenameObject(name=request.match_info["name"], new_name=post.name)
        await self.ask(request, self.rename_subject, body, meta)
        return responses.sync(None, location=self.url(post.name, await self.home_of(request, meta)))

    async def delete(self, request: web.Request) -> web.Response:
        meta = self.meta(request)
        name = request.match_info["name"]
        await self.ask(request, self.delete_subject, ByName(name=name), meta)
        return responses.empty()

    def routes(self, rename: bool = True) -> web.RouteTableDef:
        """The routes of the family (``rename=False`` when the family serves POST itself)."""
        table = web.RouteTableDef()
        item = self.base + "/{name}"
        table.get(self.base)(self.list)
        table.post(self.base)(self.create)
        table.get(item)(self.get)
        table.put(item)(self.put)
        table.patch(item)(self.patch)
        table.delete(item)(self.delete)
        if rename:
            table.post(item)(self.rename)
        return table
