"""``/1.0/instances/<name>/logs`` and ``/console``: an instance's log files and console log.

The node holding the instance reads them off its host. The interactive console (a websocket
on ``POST .../console``) is not served yet: it answers 501.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gateway import context, responses
from gateway.routes.instances import collection, node_command, route
from schemas import subjects
from schemas.errors import ErrorCode, WarrenError
from schemas.instances import LogContent, LogDelete, LogQuery

EXTENSIONS: tuple[str, ...] = (
    # The console log (GET/DELETE .../console). Attaching (POST .../console) is not served
    # yet (501), but the 5.0 client asks for this extension before reading the log too
    # (client/lxd_instances.go, GetInstanceConsoleLog): without it `lxc console --show-log`
    # would fail, while `lxc console` fails either way.
    "console",
)

routes = web.RouteTableDef()
CONSOLE = "console"


def _log_url(request: web.Request, name: str, file: str) -> str:
    # As LXD 5.0 writes them: no ?project= on log URLs.
    return f"/1.0/{collection(request)}/{quote(name, safe='')}/logs/{quote(file, safe='')}"


def _file_response(content: bytes, filename: str) -> web.Response:
    """A file body as LXD sends one (octet-stream, inline)."""
    return web.Response(
        body=content,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f"inline;filename={quote(filename, safe='')}"},
    )


async def _read(request: web.Request, file: str | None) -> object:
    query = LogQuery(name=request.match_info["name"], file=file)
    reply = await node_command(request, subjects.INSTANCE_LOGS, query, context.meta(request))
    return reply.unwrap()


async def _delete(request: web.Request, file: str) -> web.Response:
    body = LogDelete(name=request.match_info["name"], file=file)
    reply = await node_command(request, subjects.INSTANCE_LOG_DELETE, body, context.meta(request))
    reply.unwrap()
    return responses.empty()


@route(routes, "GET", "/{name}/logs")
async def list_logs(request: web.Request) -> web.Response:
    names = await _read(request, None)
    if not isinstance(names, list):
        raise WarrenError(f"the node listed log files as {type(names).__name__}")
    name = request.match_info["name"]
    return responses.sync([_log_url(request, name, str(file)) for file in names])


@route(routes, "GET", "/{name}/logs/{file}")
async def get_log(request: web.Request) -> web.Response:
    file = request.match_info["file"]
    content = LogContent.model_validate(await _read(request, file))
    return _file_response(content.content, file)


@route(routes, "DELETE", "/{name}/logs/{file}")
async def delete_log(request: web.Request) -> web.Response:
    return await _delete(request, request.match_info["file"])


@route(routes, "GET", "/{name}/console")
async def get_console_log(request: web.Request) -> web.Response:
    content = LogContent.model_validate(await _read(request, CONSOLE))
    return _file_response(content.content, "console.log")


@route(routes, "DELETE", "/{name}/console")
async def clear_console_log(request: web.Request) -> web.Response:
    return await _delete(request, CONSOLE)


@route(routes, "POST", "/{name}/console")
async def attach_console(request: web.Request) -> web.Response:
    raise WarrenError(
        "Attaching to the console is not implemented yet; `lxc console --show-log` (GET "
        f"/1.0/instances/{request.match_info['name']}/console) shows its log",
        ErrorCode.NOT_IMPLEMENTED,
    )
