"""``/1.0/networks/<name>/forwards``: listen addresses whose ports go to instances (DNAT), as
``lxc network forward`` drives them."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gateway import context, responses
from gateway.routes.networks import ask
from schemas import subjects
from schemas.catalog import ObjectResult
from schemas.networks import CreateForward, ForwardQuery, UpdateForward

EXTENSIONS: tuple[str, ...] = ("network_forward", "network_forward_ports")

routes = web.RouteTableDef()
_WRITABLE = ("description", "config", "ports")


def forward_url(network: str, listen: str) -> str:
    return f"/1.0/networks/{quote(network, safe='')}/forwards/{quote(listen, safe='')}"


@routes.get("/1.0/networks/{name}/forwards")
async def list_forwards(request: web.Request) -> web.Response:
    network = request.match_info["name"]
    recursion = min(context.recursion(request), 1)
    query = ForwardQuery(network=network, recursion=recursion)
    result = await ask(request, subjects.NETWORK_FORWARD_LIST, query, context.meta(request))
    if recursion == 0:
        return responses.sync([forward_url(network, listen) for listen in result])
    return responses.sync(result)


@routes.post("/1.0/networks/{name}/forwards")
async def create_forward(request: web.Request) -> web.Response:
    network = request.match_info["name"]
    data = await context.json_body(request)
    body = context.validate(CreateForward, {**data, "network": network})
    await ask(request, subjects.NETWORK_FORWARD_CREATE, body, context.meta(request))
    return responses.sync(None, location=forward_url(network, body.listen_address))


@routes.get("/1.0/networks/{name}/forwards/{listen}")
async def get_forward(request: web.Request) -> web.Response:
    info = request.match_info
    query = ForwardQuery(network=info["name"], listen_address=info["listen"])
    result = await ask(request, subjects.NETWORK_FORWARD_GET, query, context.meta(request))
    found = ObjectResult.model_validate(result)
    return responses.sync(found.object, etag=found.etag)


async def _update(request: web.Request, mode: str) -> web.Response:
    info = request.match_info
    data = await context.json_body(request)
    fields = [key for key in _WRITABLE if key in data]
    update = {
        **data,
        "network": info["name"],
        "listen_address": info["listen"],
        "mode": mode,
        "fields": fields,
    }
    body = context.validate(UpdateForward, update)
    await ask(request, subjects.NETWORK_FORWARD_UPDATE, body, context.meta(request))
    return responses.empty()


@routes.put("/1.0/networks/{name}/forwards/{listen}")
async def put_forward(request: web.Request) -> web.Response:
    return await _update(request, "put")


@routes.patch("/1.0/networks/{name}/forwards/{listen}")
async def patch_forward(request: web.Request) -> web.Response:
    return await _update(request, "patch")


@routes.delete("/1.0/networks/{name}/forwards/{listen}")
async def delete_forward(request: web.Request) -> web.Response:
    info = request.match_info
    query = ForwardQuery(network=info["name"], listen_address=info["listen"])
    await ask(request, subjects.NETWORK_FORWARD_DELETE, query, context.meta(request))
    return responses.empty()
