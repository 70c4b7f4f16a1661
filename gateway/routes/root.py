"""``/`` (the API versions) and ``/1.0`` (the server and its environment)."""

from __future__ import annotations

from aiohttp import web

from gateway import context, responses
from gateway.state import state
from schemas.lxd.catalog import etag_of

EXTENSIONS: tuple[str, ...] = ()
#: Distinct ``?project=`` values whose /1.0 body is kept pre-rendered.
RENDER_CACHE_LIMIT = 256

routes = web.RouteTableDef()

_VERSIONS = responses.sync_body(["/1.0"])


@routes.get("/")
async def api_versions(request: web.Request) -> web.Response:
    return responses.raw(_VERSIONS)


@routes.get("/1.0")
async def server_get(request: web.Request) -> web.Response:
    """Server info; like LXD, it echoes ``?project=`` without checking that it exists."""
    st = state(request)
    project = context.project(request)
    cached = st.rendered.get(project)
    if cached is None:
        server = st.server.model_copy(deep=True)
        server.environment.project = project
        cached = (responses.sync_body(server.model_dump()), etag_of(server.config))
        if len(st.rendered) >= RENDER_CACHE_LIMIT:
            st.rendered.clear()
        st.rendered[project] = cached
    body, etag = cached
    return responses.raw(body, etag=etag)
