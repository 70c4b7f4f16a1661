"""``/1.0/instances`` (and the legacy ``/1.0/containers``): LXD instances.

The catalog (list, get) is asked of any instance replica; everything that touches a host goes
to the node holding the instance, learnt from a get first (a create goes to ``?target=`` or to
this gateway's node). Creates, updates, renames and deletes are LXD operations recorded by the
node; PATCH is synchronous, as in LXD.

``?filter=`` is LXD's API filtering (``name eq web and not status eq Running``), applied here to
the objects the service lists: it only shapes the answer. As in LXD, string fields match a
case-insensitive regular expression and clauses fold left to right; unlike LXD (which never
matches them), booleans, numbers and lists compare by their text (``ephemeral eq true``,
``profiles eq web``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import context, responses
from gateway.state import state
from schemas import subjects
from schemas.catalog import ByName, OperationResult
from schemas.errors import BadRequest, ErrorCode, WarrenError
from schemas.instances import (
    CreateInstance,
    DeleteInstance,
    InstanceListQuery,
    InstanceResult,
    RenameInstance,
    StateQuery,
    UpdateInstance,
)
from schemas.messages import Reply, RequestMeta

EXTENSIONS: tuple[str, ...] = (
    "instances",  # /1.0/instances (the 5.0 client falls back to /1.0/containers without it)
    "container_full",  # recursion=2: objects with their state
    "instance_get_full",  # GET /1.0/instances/<name>?recursion=1: the same for one
    "api_filtering",  # ?filter=
    "instance_all_projects",  # ?all-projects=true
)

#: Both spellings of the collection: the legacy one answers the same.
PREFIXES = ("/1.0/instances", "/1.0/containers")
#: Top-level fields a PUT or PATCH may carry (the others in the body are ignored, as in LXD).
WRITABLE = ("architecture", "config", "devices", "ephemeral", "profiles", "description")
#: Node commands answer once they have recorded an operation (or, PATCH, applied a change).
COMMAND_TIMEOUT = 30.0
INSTANCE_TYPES = ("container", "virtual-machine")

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]
routes = web.RouteTableDef()


def route(table: web.RouteTableDef, method: str, suffix: str) -> Callable[[Handler], Handler]:
    """Register a handler under ``/1.0/instances<suffix>`` and ``/1.0/containers<suffix>``."""

    def register(handler: Handler) -> Handler:
        for prefix in PREFIXES:
            table.route(method, prefix + suffix)(handler)
        return handler

    return register


# -- helpers shared by the instance route modules -----------------------------------------


def collection(request: web.Request) -> str:
    """``instances`` or ``containers``: URLs answer in the spelling the client used."""
    return "containers" if request.path.startswith("/1.0/containers") else "instances"


def instance_url(request: web.Request, name: str, project: str) -> str:
    return context.url(collection(request), name, project)


def node_subject(verb: str, node: str) -> str:
    try:
        return subjects.instance_node(verb, node)
    except ValueError as exc:
        raise BadRequest(f"Invalid cluster member name {node!r}") from exc


def own_node(request: web.Request) -> str:
    """This gateway's node (the name ``GET /1.0`` reports as ``server_name``)."""
    return state(request).server.environment.server_name


#: (project, name) -> node, for the instances this gateway has located: instances do not move
#: by themselves, and a node that no longer holds one answers "Instance not found", after
#: which the location is looked up again.
_NODES: dict[tuple[str, str], str] = {}
_NODES_LIMIT = 65_536
#: What a node answers for an instance it does not hold (schemas: the aggregate's NotFound).
INSTANCE_NOT_FOUND = "Instance not found"


async def locate(request: web.Request, name: str) -> InstanceResult:
    """The instance (404 from the service when unknown), with the node it lives on."""
    meta = context.meta(request)
    meta.if_match = None  # the lookup is a query; If-Match belongs to the command
    found = await state(request).bus.request(
        subjects.INSTANCES_GET, ByName(name=name).model_dump(), meta
    )
    result = InstanceResult.model_validate(found)
    if len(_NODES) >= _NODES_LIMIT:
        _NODES.clear()
    _NODES[(meta.project, name)] = result.node
    return result


def dump(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json", by_alias=True)


async def node_command(
    request: web.Request,
    verb: str,
    body: BaseModel,
    meta: RequestMeta,
    node: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> Reply:
    """Send ``body`` to the node of the instance named in the URL (or to ``node``)."""
    bus = state(request).bus
    if node is not None:
        return await bus.request_reply(node_subject(verb, node), dump(body), meta, timeout)
    name = request.match_info["name"]
    known = _NODES.get((meta.project, name))
    if known is not None:
        reply = await bus.request_reply(node_subject(verb, known), dump(body), meta, timeout)
        moved = reply.error is not None and reply.error.message == INSTANCE_NOT_FOUND
        if not moved:
            return reply
        _NODES.pop((meta.project, name), None)
    node = (await locate(request, name)).node
    return await bus.request_reply(node_subject(verb, node), dump(body), meta, timeout)


def operation_meta(request: web.Request) -> RequestMeta:
    """Metadata of a command that becomes an LXD operation: its id is the correlation id."""
    return context.meta(request, correlation_id=str(uuid.uuid4()))


async def operation_reply(request: web.Request, reply: Reply) -> web.Response:
    """202 with the operation the node recorded, once this replica has read it."""
    recorded = OperationResult.model_validate(reply.unwrap()).operation
    await state(request).reader.wait_for(reply.seq)
    return responses.operation(recorded)


# -- api filtering ------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """One ``[not] <field> <eq|ne> <value>`` of a filter, and how it joins the ones before."""

    logical: str  # "and" / "or": how this clause combines with the result so far
    negate: bool
    field: str
    operator: str  # "eq" / "ne"
    value: str


def parse_filter(text: str) -> list[Clause]:
    """Parse LXD's filter syntax; a malformed filter is a 400."""
    parts = text.split()
    clauses: list[Clause] = []
    index, logical = 0, "and"
    while index < len(parts):
        negate = parts[index].lower() == "not"
        if negate:
            index += 1
            if index >= len(parts):
                raise BadRequest("Invalid filter: incomplete not clause")
        field = parts[index]
        if index + 1 >= len(parts):
            raise BadRequest("Invalid filter: clause has no operator")
        operator = parts[index + 1].lower()
        if operator not in ("eq", "ne"):
            raise BadRequest(f"Invalid filter: unknown operator {parts[index + 1]!r}")
        if index + 2 >= len(parts):
            raise BadRequest("Invalid filter: clause has no value")
        index += 2
        value = parts[index]
        if value.startswith('"'):
            if len(value) > 1 and value.endswith('"'):
                value = value[1:-1]
            else:  # a quoted value with spaces: join words up to the closing quote
                words = [value[1:]]
                while True:
                    index += 1
                    if index >= len(parts):
                        raise BadRequest("Invalid filter: unterminated quote")
                    words.append(parts[index])
                    if parts[index].endswith('"'):
                        break
                value = " ".join(words)[:-1]
        index += 1
        clauses.append(Clause(logical, negate, field, operator, value))
        if index < len(parts):
            logical = parts[index].lower()
            if logical not in ("and", "or"):
                raise BadRequest(f"Invalid filter: {parts[index]!r} is not and/or")
            index += 1
            if index >= len(parts):
                raise BadRequest("Invalid filter: unterminated compound clause")
    return clauses


def value_of(obj: Any, field: str) -> Any:
    """The value a dotted field names: ``status``, ``config.user.x``, ``devices.eth0.type``.

    Map keys may themselves hold dots (``config`` keys do), so the longest key wins. A key
    missing from a map of strings (config) reads as ``""``, as in LXD; anything else missing
    is ``None`` and matches nothing.
    """
    if not isinstance(obj, dict):
        return None
    if field in obj:
        return obj[field]
    head, dot, rest = field.partition(".")
    if dot and head in obj:
        return value_of(obj[head], rest)
    if all(isinstance(v, str) for v in obj.values()):
        return ""
    return None


def _compare(value: Any, wanted: str) -> bool:
    if isinstance(value, str):
        # LXD: a case-insensitive regular expression, anchored unless it anchors itself.
        pattern = wanted if ("^" in wanted or "$" in wanted) else f"^{wanted}$"
        try:
            return re.search(pattern, value, re.IGNORECASE) is not None
        except re.error:
            return value.lower() == wanted.lower()
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    if isinstance(value, int | float):
        return str(value) == wanted
    if isinstance(value, list):
        return any(_compare(item, wanted) for item in value)
    return False


def matches(obj: dict[str, Any], clauses: list[Clause]) -> bool:
    """Clauses fold left to right, as LXD evaluates them (no precedence)."""
    result = True
    for clause in clauses:
        hit = _compare(value_of(obj, clause.field), clause.value)
        if clause.operator == "ne":
            hit = not hit
        if clause.negate:
            hit = not hit
        result = (result and hit) if clause.logical == "and" else (result or hit)
    return result


# -- handlers -----------------------------------------------------------------------------


def _instance_type(request: web.Request) -> str:
    kind = request.query.get("instance-type", "")
    if kind and kind not in INSTANCE_TYPES:
        raise BadRequest(f"Invalid instance type {kind!r}")
    return kind


@route(routes, "GET", "")
async def list_instances(request: web.Request) -> web.Response:
    meta = context.meta(request)
    recursion = min(context.recursion(request), 2)
    every = context.all_projects(request)
    clauses = parse_filter(request.query.get("filter", ""))
    kind = _instance_type(request)
    ask = recursion
    if ask == 0 and (clauses or kind or every):
        ask = 1  # names alone can neither be filtered nor say their project
    if any(c.field.split(".")[0] == "state" for c in clauses):
        ask = 2
    query = InstanceListQuery(recursion=ask, all_projects=every)
    result = await state(request).bus.request(subjects.INSTANCES_LIST, query.model_dump(), meta)
    if ask == 0:
        return responses.sync([instance_url(request, name, meta.project) for name in result])
    objects = [
        obj for obj in result if (not kind or obj.get("type") == kind) and matches(obj, clauses)
    ]
    if recursion == 0:
        urls = [
            instance_url(request, obj["name"], obj.get("project") or meta.project)
            for obj in objects
        ]
        return responses.sync(urls)
    if recursion < ask:  # state was only fetched to filter on it
        objects = [
            {k: v for k, v in obj.items() if k not in ("state", "snapshots", "backups")}
            for obj in objects
        ]
    return responses.sync(objects)


@route(routes, "POST", "")
async def create_instance(request: web.Request) -> web.Response:
    body, _ = await context.body(request, CreateInstance)
    node = request.query.get("target") or own_node(request)
    meta = operation_meta(request)
    reply = await node_command(request, subjects.INSTANCE_CREATE, body, meta, node=node)
    return await operation_reply(request, reply)


@route(routes, "GET", "/{name}")
async def get_instance(request: web.Request) -> web.Response:
    """The instance; ``?recursion=1`` adds its live state (LXD's ``InstanceFull``, which is
    what ``lxc info`` reads)."""
    found = await locate(request, request.match_info["name"])
    if context.recursion(request) == 0:
        return responses.sync(found.object, etag=found.etag)
    query = StateQuery(name=found.object.get("name") or request.match_info["name"])
    reply = await node_command(
        request, subjects.INSTANCE_STATE, query, context.meta(request), node=found.node
    )
    # Warren keeps no snapshots or backups yet: none to list (null, as LXD 5.0 writes it).
    full = {"snapshots": None, "backups": None, **found.object, "state": reply.unwrap()}
    return responses.sync(full, etag=found.etag)


async def _update_body(request: web.Request, mode: str) -> UpdateInstance:
    data = await context.json_body(request)
    fields = [key for key in WRITABLE if key in data]
    update = {**data, "name": request.match_info["name"], "mode": mode, "fields": fields}
    return context.validate(UpdateInstance, update)


@route(routes, "PUT", "/{name}")
async def put_instance(request: web.Request) -> web.Response:
    body = await _update_body(request, "put")
    reply = await node_command(request, subjects.INSTANCE_UPDATE, body, operation_meta(request))
    return await operation_reply(request, reply)


@route(routes, "PATCH", "/{name}")
async def patch_instance(request: web.Request) -> web.Response:
    body = await _update_body(request, "patch")
    reply = await node_command(request, subjects.INSTANCE_PATCH, body, context.meta(request))
    reply.unwrap()
    if reply.seq:
        await state(request).reader.wait_for(reply.seq)
    return responses.empty()


@route(routes, "POST", "/{name}")
async def rename_instance(request: web.Request) -> web.Response:
    data = await context.json_body(request)
    if data.get("migration"):
        raise WarrenError(
            "Migrating instances is not implemented yet (only renames are)",
            ErrorCode.NOT_IMPLEMENTED,
        )
    if data.get("pool") or data.get("project") or data.get("target"):
        raise WarrenError(
            "Moving instances to another pool, project or cluster member is not implemented",
            ErrorCode.NOT_IMPLEMENTED,
        )
    new_name = data.get("name")
    if not new_name:
        raise BadRequest("No name provided")
    body = context.validate(
        RenameInstance, {"name": request.match_info["name"], "new_name": new_name}
    )
    reply = await node_command(request, subjects.INSTANCE_RENAME, body, operation_meta(request))
    return await operation_reply(request, reply)


@route(routes, "DELETE", "/{name}")
async def delete_instance(request: web.Request) -> web.Response:
    body = DeleteInstance(name=request.match_info["name"])
    reply = await node_command(request, subjects.INSTANCE_DELETE, body, operation_meta(request))
    return await operation_reply(request, reply)
