"""``/1.0/images``: LXD images, owned by the image service.

Uploads and exports are byte streams over NATS (:mod:`schemas.bytestream`): the HTTP body
goes to the image service chunk by chunk as it arrives, and an export comes back the same
way, so a large image never sits in the gateway's memory.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, web

from gateway import context, responses
from gateway.routes.instances import matches, parse_filter
from gateway.state import GatewayState, state
from schemas import images as wire
from schemas import subjects
from schemas.bytestream import CHUNK_SIZE, StreamReceiver, abort_stream, send_stream
from schemas.catalog import ObjectResult, OperationResult
from schemas.errors import BadRequest, ErrorCode, WarrenError
from schemas.messages import Reply, RequestMeta

EXTENSIONS: tuple[str, ...] = ()

routes = web.RouteTableDef()
WRITABLE = ("auto_update", "properties", "public", "expires_at", "profiles")
_TRUE = ("1", "true", "yes", "on")
#: A stalled transfer gives up after this long (the service side has its own idle timeout).
TRANSFER_TIMEOUT = 120.0
#: An upload chunk is acknowledged as soon as it is queued for the spool file; no answer this
#: long means the receiving replica died with the chunk in flight (a dead replica found
#: before sending fails at once: NATS has no responders).
CHUNK_TIMEOUT = 20.0


def image_url(fingerprint: str, meta: RequestMeta) -> str:
    return context.url("images", fingerprint, meta.project)


async def ask(request: web.Request, subject: str, body: Any, meta: RequestMeta) -> Any:
    return await state(request).bus.request(subject, body.model_dump(mode="json"), meta)


@routes.get("/1.0/images")
async def list_images(request: web.Request) -> web.Response:
    """URLs or objects; ``?filter=`` (api_filtering) as for instances, on the image objects."""
    meta = context.meta(request)
    recursion = min(context.recursion(request), 1)
    clauses = parse_filter(request.query.get("filter", ""))
    ask_for = 1 if clauses else recursion  # fingerprints alone cannot be filtered
    result = await ask(request, subjects.IMAGES_LIST, wire.ListQuery(recursion=ask_for), meta)
    if ask_for == 0:
        return responses.sync([image_url(fp, meta) for fp in result])
    objects = [obj for obj in result if matches(obj, clauses)]
    if recursion == 0:
        return responses.sync([image_url(obj["fingerprint"], meta) for obj in objects])
    return responses.sync(objects)


@routes.get("/1.0/images/{fingerprint}")
async def get_image(request: web.Request) -> web.Response:
    meta = context.meta(request)
    ref = wire.ImageRef(fingerprint=request.match_info["fingerprint"])
    result = ObjectResult.model_validate(await ask(request, subjects.IMAGES_GET, ref, meta))
    return responses.sync(result.object, etag=result.etag)


async def _update(request: web.Request, mode: str) -> web.Response:
    meta = context.meta(request)
    data = await context.json_body(request)
    fields = [key for key in WRITABLE if key in data]
    update = {**data, "fingerprint": request.match_info["fingerprint"], "mode": mode}
    body = context.validate(wire.UpdateImage, {**update, "fields": fields})
    await ask(request, subjects.IMAGES_UPDATE, body, meta)
    return responses.empty()


@routes.put("/1.0/images/{fingerprint}")
async def put_image(request: web.Request) -> web.Response:
    return await _update(request, "put")


@routes.patch("/1.0/images/{fingerprint}")
async def patch_image(request: web.Request) -> web.Response:
    return await _update(request, "patch")


async def _operation_reply(request: web.Request, reply: Reply) -> web.Response:
    recorded = OperationResult.model_validate(reply.unwrap()).operation
    # Answer once this replica has read the operation, so the client's GET of it works.
    await state(request).reader.wait_for(reply.seq)
    return responses.operation(recorded)


@routes.delete("/1.0/images/{fingerprint}")
async def delete_image(request: web.Request) -> web.Response:
    meta = context.meta(request, correlation_id=str(uuid.uuid4()))
    ref = wire.ImageRef(fingerprint=request.match_info["fingerprint"])
    reply = await state(request).bus.request_reply(
        subjects.IMAGES_DELETE, ref.model_dump(), meta, timeout=TRANSFER_TIMEOUT
    )
    return await _operation_reply(request, reply)


# -- import ------------------------------------------------------------------------------


def _begin(request: web.Request, split: bool, operation_id: str) -> wire.UploadBegin:
    headers = request.headers
    properties = dict(parse_qsl(headers.get("X-LXD-properties", ""), keep_blank_values=True))
    return wire.UploadBegin(
        split=split,
        filename=headers.get("X-LXD-filename", ""),
        public=headers.get("X-LXD-public", "").lower() in _TRUE,
        properties=properties,
        fingerprint=headers.get("X-LXD-fingerprint") or None,
        operation_id=operation_id,
    )


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_SIZE):
        yield chunk


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_SIZE):
        yield chunk


async def _next_part(reader: MultipartReader, names: tuple[str, ...]) -> BodyPartReader:
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name not in names:
        raise BadRequest(f"Invalid multipart image: expected a {' or '.join(names)} part")
    return part


async def _send(
    st: GatewayState,
    upload_id: str,
    part: int,
    chunks: AsyncIterator[bytes],
    trailer: dict[str, str] | None = None,
) -> Reply:
    subject = subjects.stream(upload_id, part)
    return await send_stream(
        st.bus.nc, subject, chunks, chunk_timeout=CHUNK_TIMEOUT, trailer=trailer
    )


@routes.post("/1.0/images")
async def create_image(request: web.Request) -> web.Response:
    if request.content_type == "application/json":
        raise WarrenError(
            "Warren imports images from an upload only (a unified tarball as the body, or "
            "multipart metadata + rootfs as `lxc image import` sends them); image sources "
            "(remote, url, instance, snapshot) are not supported",
            ErrorCode.NOT_IMPLEMENTED,
        )
    st = state(request)
    op_id = str(uuid.uuid4())
    meta = context.meta(request, correlation_id=op_id)
    split = request.content_type == "multipart/form-data"
    try:
        reader = await request.multipart() if split else None
        first = await _next_part(reader, ("metadata",)) if reader is not None else None
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise BadRequest(f"Invalid multipart image: {exc}") from exc
    begin = _begin(request, split, op_id)
    ticket = wire.UploadTicket.model_validate(
        await st.bus.request(subjects.IMAGES_UPLOAD_BEGIN, begin.model_dump(), meta)
    )
    if reader is None or first is None:
        reply = await _send(st, ticket.upload_id, 0, _body_chunks(request))
        return await _operation_reply(request, reply)
    rootfs_subject = subjects.stream(ticket.upload_id, 1)
    try:
        (await _send(st, ticket.upload_id, 0, _part_chunks(first))).unwrap()
        rootfs = await _next_part(reader, ("rootfs", "rootfs.img"))
    except BaseException as exc:
        # The rootfs part will never come: let the service drop the upload now.
        await abort_stream(st.bus.nc, rootfs_subject)
        if isinstance(exc, ValueError):
            raise BadRequest(f"Invalid multipart image: {exc}") from exc
        raise
    trailer = {"filename": rootfs.filename or ""}
    try:
        reply = await _send(st, ticket.upload_id, 1, _part_chunks(rootfs), trailer)
    except ValueError as exc:
        raise BadRequest(f"Invalid multipart image: {exc}") from exc
    return await _operation_reply(request, reply)


# -- export ------------------------------------------------------------------------------


async def _receivers(st: GatewayState, export_id: str, count: int) -> list[StreamReceiver]:
    found = []
    for part in range(count):
        rx = StreamReceiver(st.bus.nc, subjects.stream(export_id, part), TRANSFER_TIMEOUT)
        found.append(await rx.start())
    return found


async def _pipe(rx: StreamReceiver, response: web.StreamResponse) -> None:
    async for chunk in rx:
        await response.write(chunk)
    await rx.finish(Reply())


@routes.get("/1.0/images/{fingerprint}/export")
async def export_image(request: web.Request) -> web.StreamResponse:
    st = state(request)
    meta = context.meta(request)
    export_id = str(uuid.uuid4())
    # Subscribed before asking: the service starts sending as soon as it answers.
    receivers = await _receivers(st, export_id, 2)
    try:
        body = wire.ExportBegin(fingerprint=request.match_info["fingerprint"], export_id=export_id)
        ticket = wire.ExportTicket.model_validate(
            await st.bus.request(subjects.IMAGES_EXPORT_BEGIN, body.model_dump(), meta)
        )
        if len(ticket.files) == 1:
            return await _export_unified(request, ticket.files[0], receivers[0])
        return await _export_split(request, ticket.files, receivers)
    finally:
        for rx in receivers:
            with contextlib.suppress(Exception):
                await rx.close()


async def _export_unified(
    request: web.Request, file: wire.ExportFile, rx: StreamReceiver
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename={_quoted(file.filename)}",
        }
    )
    response.content_length = file.size
    await response.prepare(request)
    await _pipe(rx, response)
    await response.write_eof()
    return response


async def _export_split(
    request: web.Request, files: list[wire.ExportFile], receivers: list[StreamReceiver]
) -> web.StreamResponse:
    boundary = uuid.uuid4().hex
    response = web.StreamResponse(
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    await response.prepare(request)
    for file, rx in zip(files, receivers, strict=False):
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{file.field}"; '
            f"filename={_quoted(file.filename)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        await response.write(head.encode())
        await _pipe(rx, response)
        await response.write(b"\r\n")
    await response.write(f"--{boundary}--\r\n".encode())
    await response.write_eof()
    return response


def _quoted(filename: str) -> str:
    """A file name as a quoted header parameter (quotes and backslashes escaped)."""
    printable = "".join(ch for ch in filename if ch.isprintable())
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'
