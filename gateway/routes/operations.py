"""``/1.0/operations``: list, get, wait and cancel, served from the log-fed operations view."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import context, responses
from gateway.operations import Record
from gateway.state import state
from schemas import subjects
from schemas.errors import BadRequest, NotFound
from schemas.lxd.operation import StatusCode

EXTENSIONS: tuple[str, ...] = ("operation_description",)

routes = web.RouteTableDef()


def _url(op_id: str) -> str:
    return f"/1.0/operations/{op_id}"


async def _record(request: web.Request) -> Record:
    st = state(request)
    await st.reader.wait_ready()
    record = st.operations.get(request.match_info["id"])
    if record is None:
        raise NotFound("Operation not found")
    return record


def group(records: list[Record], recursion: int) -> dict[str, list[Any]]:
    """LXD's listing: operations grouped by lower-cased status, as URLs or objects."""
    grouped: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: str(r.op.get("created_at", ""))):
        key = str(record.op.get("status", "")).lower()
        grouped.setdefault(key, []).append(record.op if recursion else _url(record.op["id"]))
    return grouped


@routes.get("/1.0/operations")
async def operations_list(request: web.Request) -> web.Response:
    st = state(request)
    await st.reader.wait_ready()
    project = None if context.all_projects(request) else context.project(request)
    records = st.operations.list(project)
    return responses.sync(group(records, context.recursion(request)))


@routes.get("/1.0/operations/{id}")
async def operation_get(request: web.Request) -> web.Response:
    return responses.sync((await _record(request)).op)


def wait_timeout(request: web.Request) -> float | None:
    """``?timeout=`` in seconds; -1 (the default) waits until the operation ends."""
    raw = request.query.get("timeout", "-1")
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid timeout {raw!r}") from exc
    return None if value < 0 else value


@routes.get("/1.0/operations/{id}/wait")
async def operation_wait(request: web.Request) -> web.Response:
    """Return when the operation ends, or its current state when the timeout passes."""
    record = await _record(request)
    timeout = wait_timeout(request)
    record = await state(request).operations.wait_final(record.op["id"], timeout) or record
    return responses.sync(record.op)


@routes.delete("/1.0/operations/{id}")
async def operation_cancel(request: web.Request) -> web.Response:
    """Ask the service running the operation to cancel it (400 when it cannot, as LXD)."""
    st = state(request)
    record = await _record(request)
    op = record.op
    if int(op.get("status_code", 0)) != StatusCode.RUNNING:
        raise BadRequest("Only running operations can be cancelled")
    if not op.get("may_cancel"):
        raise BadRequest("This operation can't be cancelled")
    meta = context.meta(request, correlation_id=op["id"])
    reply = await st.bus.request_reply(subjects.operation_cancel(op["id"]), {}, meta)
    reply.unwrap()
    if reply.seq:
        await st.reader.wait_for(reply.seq)
    return responses.empty()
