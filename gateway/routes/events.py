"""``/1.0/events``: the LXD event websocket (operation, lifecycle and logging events)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiohttp import WSMsgType, web

from gateway import context, logevents
from gateway.state import state
from schemas import subjects
from schemas.catalog import ByName
from schemas.errors import BadRequest
from schemas.lxd.event import EVENT_TYPES
from schemas.messages import RequestMeta

EXTENSIONS: tuple[str, ...] = (
    "event_lifecycle",
    "event_location",
    "event_project",
    "event_lifecycle_requestor_address",
)

routes = web.RouteTableDef()


def event_types(request: web.Request) -> list[str]:
    """``?type=a,b`` (all types when absent), refusing unknown ones as LXD does."""
    raw = request.query.get("type", "")
    if not raw:
        return list(EVENT_TYPES)
    types = raw.split(",")
    for kind in types:
        if kind not in EVENT_TYPES:
            raise BadRequest(f"{kind!r} isn't a supported event type")
    return types


async def listen_project(request: web.Request) -> str | None:
    """The project to filter on, or None for ``all-projects``; unknown projects are 404."""
    project = request.query.get("project", "")
    if context.all_projects(request):
        if project:
            raise BadRequest("Cannot specify a project when requesting all projects")
        return None
    if project and project != context.DEFAULT_PROJECT:
        meta = RequestMeta(requestor=context.requestor(request))
        body = ByName(name=project).model_dump()
        await state(request).bus.request(subjects.PROJECTS_GET, body, meta)
    return project or context.DEFAULT_PROJECT


@routes.get("/1.0/events")
async def events(request: web.Request) -> web.StreamResponse:
    types = event_types(request)
    project = await listen_project(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    hub = state(request).hub
    listener = hub.subscribe(types, project)
    listener_id = str(uuid.uuid4())
    local = str(request.transport.get_extra_info("sockname") or "") if request.transport else ""
    logevents.listener_started(hub, listener_id, local)

    async def pump() -> None:
        while True:
            text = await listener.queue.get()
            if text is None:  # dropped by the hub: the client was too slow
                await ws.close(message=b"too slow")
                return
            await ws.send_str(text)

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:  # clients send nothing; this notices the close
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.unsubscribe(listener)
        logevents.listener_stopped(hub, listener_id, local)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    return ws
