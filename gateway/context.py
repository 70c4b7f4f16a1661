"""What a handler needs from the HTTP request: who asks, in which project, with which body."""

from __future__ import annotations

import json
import pwd
import socket
import struct
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ValidationError

from schemas.errors import BadRequest
from schemas.messages import RequestMeta

M = TypeVar("M", bound=BaseModel)

_UCRED = struct.Struct("3i")
DEFAULT_PROJECT = "default"


@lru_cache(maxsize=256)
def _username(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def requestor(request: web.Request) -> str:
    """The unix user at the other end of the socket (SO_PEERCRED), as LXD reports it."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return "unknown"
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return "unknown"
    _pid, uid, _gid = _UCRED.unpack(creds)
    return _username(uid)


def project(request: web.Request) -> str:
    """The ``?project=`` of the request (``default`` when absent or empty)."""
    return request.query.get("project") or DEFAULT_PROJECT


def all_projects(request: web.Request) -> bool:
    """``?all-projects=true`` (LXD accepts the usual spellings of true)."""
    return request.query.get("all-projects", "").lower() in ("1", "true", "yes", "on")


def recursion(request: web.Request) -> int:
    """``?recursion=``: 0 gives URLs, 1 (or more) objects; garbage counts as 0 as in LXD."""
    try:
        return max(int(request.query.get("recursion", "0")), 0)
    except ValueError:
        return 0


def if_match(request: web.Request) -> str | None:
    """The ``If-Match`` ETag without the quotes clients copy from the ``ETag`` header."""
    value = request.headers.get("If-Match")
    return value.strip().strip('"') or None if value else None


def meta(request: web.Request, correlation_id: str | None = None) -> RequestMeta:
    """The RequestMeta every command and query carries."""
    return RequestMeta(
        requestor=requestor(request),
        project=project(request),
        if_match=if_match(request),
        correlation_id=correlation_id,
    )


def url(collection: str, name: str, project_name: str = DEFAULT_PROJECT) -> str:
    """An object's URL as LXD spells it: ``/1.0/<collection>/<name>[?project=<p>]``."""
    path = f"/1.0/{collection}/{quote(name, safe='')}"
    if project_name != DEFAULT_PROJECT:
        path += f"?project={quote(project_name, safe='')}"
    return path


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 as LXD does for anything else."""
    data = await request.read()
    if not data.strip():
        raise BadRequest("EOF")
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(value).__name__}")
    # Go clients send unset maps as null: LXD reads that as "absent" (empty on PUT and
    # create, unchanged on PATCH), so a null field is dropped here.
    return {key: item for key, item in value.items() if item is not None}


async def body(request: web.Request, model: type[M]) -> tuple[M, dict[str, Any]]:
    """The body validated against ``model``, plus the raw object (PATCH needs its keys)."""
    data = await json_body(request)
    return validate(model, data), data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate plain data against a model, turning failures into one readable 400."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            parts.append(f"{where}: {err['msg']}")
        raise BadRequest("; ".join(parts)) from exc
