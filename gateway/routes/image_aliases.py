"""``/1.0/images/aliases``: LXD image aliases, owned by the image service.

Registered before ``/1.0/images/{fingerprint}`` so ``aliases`` is never read as a
fingerprint.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import context, responses
from gateway.state import state
from schemas import images as wire
from schemas import subjects
from schemas.catalog import ObjectResult
from schemas.lxd.images import ImageAliasesEntryPost, ImageAliasesPost
from schemas.messages import RequestMeta

EXTENSIONS: tuple[str, ...] = ()

routes = web.RouteTableDef()
BASE = "/1.0/images/aliases"
ITEM = BASE + "/{name}"


def alias_url(name: str, meta: RequestMeta) -> str:
    return context.url("images/aliases", name, meta.project)


async def ask(request: web.Request, subject: str, body: Any, meta: RequestMeta) -> Any:
    return await state(request).bus.request(subject, body.model_dump(mode="json"), meta)


@routes.get(BASE)
async def list_aliases(request: web.Request) -> web.Response:
    meta = context.meta(request)
    recursion = context.recursion(request)
    query = wire.ListQuery(recursion=min(recursion, 1))
    result = await ask(request, subjects.IMAGE_ALIASES_LIST, query, meta)
    if recursion == 0:
        return responses.sync([alias_url(name, meta) for name in result])
    return responses.sync(result)


@routes.post(BASE)
async def create_alias(request: web.Request) -> web.Response:
    meta = context.meta(request)
    post, _ = await context.body(request, ImageAliasesPost)
    body = wire.CreateAlias.model_validate(post.model_dump())
    await ask(request, subjects.IMAGE_ALIASES_CREATE, body, meta)
    return responses.sync(None, location=alias_url(post.name, meta))


@routes.get(ITEM)
async def get_alias(request: web.Request) -> web.Response:
    meta = context.meta(request)
    ref = wire.AliasRef(name=request.match_info["name"])
    result = ObjectResult.model_validate(await ask(request, subjects.IMAGE_ALIASES_GET, ref, meta))
    return responses.sync(result.object, etag=result.etag)


async def _update(request: web.Request, mode: str) -> web.Response:
    meta = context.meta(request)
    data = await context.json_body(request)
    fields = [key for key in ("target", "description") if key in data]
    update = {**data, "name": request.match_info["name"], "mode": mode, "fields": fields}
    body = context.validate(wire.UpdateAlias, update)
    await ask(request, subjects.IMAGE_ALIASES_UPDATE, body, meta)
    return responses.empty()


@routes.put(ITEM)
async def put_alias(request: web.Request) -> web.Response:
    return await _update(request, "put")


@routes.patch(ITEM)
async def patch_alias(request: web.Request) -> web.Response:
    return await _update(request, "patch")


@routes.post(ITEM)
async def rename_alias(request: web.Request) -> web.Response:
    meta = context.meta(request)
    post, _ = await context.body(request, ImageAliasesEntryPost)
    body = wire.RenameAlias(name=request.match_info["name"], new_name=post.name)
    await ask(request, subjects.IMAGE_ALIASES_RENAME, body, meta)
    return responses.sync(None, location=alias_url(post.name, meta))


@routes.delete(ITEM)
async def delete_alias(request: web.Request) -> web.Response:
    meta = context.meta(request)
    ref = wire.AliasRef(name=request.match_info["name"])
    await ask(request, subjects.IMAGE_ALIASES_DELETE, ref, meta)
    return responses.empty()
