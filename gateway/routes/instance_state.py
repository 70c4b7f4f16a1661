"""``/1.0/instances/<name>/state``: an instance's live state, and start/stop/restart/freeze.

Both go to the instance's node: the state is read from the host, and a state change is an LXD
operation the node records and runs.
"""

from __future__ import annotations

from aiohttp import web

from gateway import context, responses
from gateway.routes.instances import node_command, operation_meta, operation_reply, route
from schemas import subjects
from schemas.instances import StateChange, StateQuery

EXTENSIONS: tuple[str, ...] = ()

routes = web.RouteTableDef()


@route(routes, "GET", "/{name}/state")
async def get_state(request: web.Request) -> web.Response:
    query = StateQuery(name=request.match_info["name"])
    reply = await node_command(request, subjects.INSTANCE_STATE, query, context.meta(request))
    return responses.sync(reply.unwrap())


@route(routes, "PUT", "/{name}/state")
async def put_state(request: web.Request) -> web.Response:
    data = await context.json_body(request)
    change = context.validate(StateChange, {**data, "name": request.match_info["name"]})
    meta = operation_meta(request)
    reply = await node_command(request, subjects.INSTANCE_STATE_PUT, change, meta)
    return await operation_reply(request, reply)
