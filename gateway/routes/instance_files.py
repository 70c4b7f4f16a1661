"""``/1.0/instances/<name>/files?path=``: read, write and delete paths inside an instance.

File contents cross the bus as byte streams (:mod:`schemas.bytestream`), so a large file never
sits in the gateway's memory. What a path is travels in LXD's ``X-LXD-*`` headers both ways:
``uid``, ``gid``, ``mode`` (octal, ``0644``), ``type`` (``file``, ``directory``, ``symlink``) and,
on writes, ``write`` (``overwrite`` or ``append``).
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import context, responses
from gateway.routes.instances import locate, node_command, route
from gateway.state import state
from schemas import subjects
from schemas.bytestream import CHUNK_SIZE, StreamReceiver, send_stream
from schemas.errors import BadRequest, Unavailable
from schemas.instances import FileDelete, FileGet, FileInfo, FilePut, FilePutTicket
from schemas.messages import Reply

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "file_delete",  # DELETE .../files
    "file_append",  # X-LXD-write: append
    "file_symlinks",  # X-LXD-type: symlink, both ways
    "directory_manipulation",  # directories: listing and creating
)

routes = web.RouteTableDef()
FILE_TYPES = ("file", "directory", "symlink")
WRITE_MODES = ("overwrite", "append")
#: A stalled transfer gives up after this long.
TRANSFER_TIMEOUT = 120.0
#: A chunk is acknowledged once queued for the instance's file: no answer this long means the
#: node died with the chunk in flight.
CHUNK_TIMEOUT = 60.0


def _path(request: web.Request) -> str:
    """``?path=``: relative paths are from the instance's root (``lxc file pull c1/etc/x``
    sends ``etc/x``), so the node always gets an absolute one."""
    path = request.query.get("path", "")
    if not path:
        raise BadRequest("Missing path argument")
    return path if path.startswith("/") else "/" + path


def _int_header(request: web.Request, name: str) -> int | None:
    """An ``X-LXD-*`` number as LXD reads it: missing, negative or garbled means unset."""
    raw = request.headers.get(name, "").strip()
    if not raw:
        return None
    try:
        # Go's ParseInt(s, 0): "0644" is octal, "0x1a4" hex, "420" decimal.
        if len(raw) > 1 and raw[0] == "0" and raw.isdigit():
            value = int(raw, 8)
        else:
            value = int(raw, 0)
    except ValueError:
        return None
    return value if value >= 0 else None


def lxd_headers(info: FileInfo) -> dict[str, str]:
    return {
        "X-LXD-uid": str(info.uid),
        "X-LXD-gid": str(info.gid),
        "X-LXD-mode": f"{info.mode:04o}",
        "X-LXD-type": info.type,
    }


@route(routes, "GET", "/{name}/files")
async def get_file(request: web.Request) -> web.StreamResponse:
    st = state(request)
    path = _path(request)
    found = await locate(request, request.match_info["name"])
    stream_id = str(uuid.uuid4())
    # Subscribed before asking: the node starts sending as soon as it answers.
    rx = await StreamReceiver(st.bus.nc, subjects.stream(stream_id, 0), TRANSFER_TIMEOUT).start()
    try:
        body = FileGet(name=request.match_info["name"], path=path, stream_id=stream_id)
        reply = await node_command(
            request, subjects.INSTANCE_FILE_GET, body, context.meta(request), node=found.node
        )
        info = FileInfo.model_validate(reply.unwrap())
        headers = lxd_headers(info)
        if info.type == "directory":
            response = responses.sync(info.entries)
            response.headers.update(headers)
            return response
        filename = "".join(ch for ch in posixpath.basename(path) if ch.isprintable()) or "file"
        headers["Content-Disposition"] = f"inline;filename={filename}"
        if info.type == "symlink":
            return web.Response(
                body=info.target.encode(), headers=headers, content_type="application/octet-stream"
            )
        return await _stream_file(request, rx, headers)
    finally:
        await rx.close()


async def _stream_file(
    request: web.Request, rx: StreamReceiver, headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**headers, "Content-Type": "application/octet-stream"})
    await response.prepare(request)
    try:
        async for chunk in rx:
            await response.write(chunk)
        await rx.finish(Reply())
        await response.write_eof()
    except Exception as exc:
        # Headers are out: all that is left is cutting the connection, so the client sees a
        # short body rather than a wrong one; the node learns it from its next frame.
        log.warning("file transfer from %s failed: %s", request.match_info["name"], exc)
        with contextlib.suppress(Exception):
            await rx.fail(Unavailable("the client of the transfer went away"))
        if request.transport is not None:
            request.transport.close()
    return response


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_SIZE):
        yield chunk


def _symlink_target(data: bytes) -> str:
    """A symlink's body is its target (``lxc file push`` of a link sends it so)."""
    try:
        target = data.decode()
    except UnicodeDecodeError as exc:
        raise BadRequest("A symlink target must be UTF-8") from exc
    if not target:
        raise BadRequest("Missing symlink target")
    return target


@route(routes, "POST", "/{name}/files")
async def put_file(request: web.Request) -> web.Response:
    st = state(request)
    path = _path(request)
    kind = request.headers.get("X-LXD-type", "") or "file"
    if kind not in FILE_TYPES:
        raise BadRequest(f"Bad file type: {kind}")
    write = request.headers.get("X-LXD-write", "") or "overwrite"
    if write not in WRITE_MODES:
        raise BadRequest(f"Bad file write mode: {write}")
    target = _symlink_target(await request.read()) if kind == "symlink" else ""
    body = FilePut(
        name=request.match_info["name"],
        path=path,
        type=kind,  # type: ignore[arg-type]
        uid=_int_header(request, "X-LXD-uid"),
        gid=_int_header(request, "X-LXD-gid"),
        mode=_int_header(request, "X-LXD-mode"),
        write=write,  # type: ignore[arg-type]
        target=target,
        stream_id=str(uuid.uuid4()) if kind == "file" else "",
    )
    reply = await node_command(request, subjects.INSTANCE_FILE_PUT, body, context.meta(request))
    if kind != "file":
        reply.unwrap()
        return responses.empty()
    ticket = FilePutTicket.model_validate(reply.unwrap())
    outcome = await send_stream(
        st.bus.nc,
        subjects.stream(ticket.stream_id, 0),
        _body_chunks(request),
        chunk_timeout=CHUNK_TIMEOUT,
        final_timeout=TRANSFER_TIMEOUT,
    )
    outcome.unwrap()
    return responses.empty()


@route(routes, "DELETE", "/{name}/files")
async def delete_file(request: web.Request) -> web.Response:
    body = FileDelete(name=request.match_info["name"], path=_path(request))
    reply = await node_command(request, subjects.INSTANCE_FILE_DELETE, body, context.meta(request))
    reply.unwrap()
    return responses.empty()
