"""``/1.0/history/<kind>/<name>``: Warren's ``warren_history`` API extension.

The full history of one object from the event log (who did what, when), and the object as it
was at ``?at=<stream sequence>`` or ``?at=<RFC 3339 time>`` (now when absent). The service
owning the kind answers from the log (the instance service for profiles, projects and
instances; this node's network and storage services for networks and pools; the image
service for images and aliases); a deleted object's history stays reachable by its name, in
its project's current or former name (a deleted project too). Every object that carried the
name is listed; ``?id=<object id>`` picks one. ``/1.0/history/<kind>`` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from gateway import context, responses
from gateway.state import state
from schemas import subjects
from schemas.catalog import HistoryListQuery, HistoryQuery, HistoryResult
from schemas.errors import BadRequest, NotFound
from schemas.messages import RequestMeta

EXTENSIONS: tuple[str, ...] = ("warren_history",)


@dataclass(frozen=True)
class KindRoute:
    """Where the history of one kind is asked: (one object, the names), as subjects or, for
    a node-scoped service, as verbs of ``on_node(verb, node)``."""

    history: str
    listing: str
    on_node: Callable[[str, str], str] | None = None
    #: Whether objects of the kind live in a project (else ``?project=`` is ignored).
    in_project: bool = True

    def subjects(self, node: str) -> tuple[str, str]:
        if self.on_node is None:
            return self.history, self.listing
        return self.on_node(self.history, node), self.on_node(self.listing, node)


_CATALOG = KindRoute(subjects.HISTORY, subjects.HISTORY_LIST)
_IMAGES = KindRoute(subjects.IMAGE_HISTORY, subjects.IMAGE_HISTORY_LIST)

#: Which service keeps the history of which kind of object.
KINDS: dict[str, KindRoute] = {
    "profile": _CATALOG,
    "project": KindRoute(subjects.HISTORY, subjects.HISTORY_LIST, in_project=False),
    "instance": _CATALOG,
    "network": KindRoute(
        subjects.NETWORK_HISTORY, subjects.NETWORK_HISTORY_LIST, subjects.network, False
    ),
    "storage-pool": KindRoute(
        subjects.STORAGE_HISTORY, subjects.STORAGE_HISTORY_LIST, subjects.storage, False
    ),
    "image": _IMAGES,
    "image-alias": _IMAGES,
}

routes = web.RouteTableDef()


def parse_at(raw: str | None) -> tuple[int | None, str | None]:
    """``at`` as a stream sequence (digits) or an RFC 3339 time (normalised to UTC ISO)."""
    if raw is None or raw == "":
        return None, None
    if raw.isdigit():
        return int(raw), None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"at: {raw!r} is neither a sequence number nor an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise BadRequest(f"at: {raw!r} needs a time zone (e.g. Z)")
    return None, when.isoformat()


@routes.get("/1.0/history")
async def history_kinds(request: web.Request) -> web.Response:
    """The kinds of object whose history can be asked for."""
    return responses.sync([f"/1.0/history/{kind}" for kind in KINDS])


def _subjects(request: web.Request, kind: str) -> tuple[str, str]:
    found = KINDS.get(kind)
    if found is None:
        raise NotFound(f"no history for kind {kind!r} (known: {', '.join(KINDS)})")
    return found.subjects(state(request).server.environment.server_name)


def _meta(request: web.Request, kind: str) -> RequestMeta:
    meta = context.meta(request)
    if not KINDS[kind].in_project:
        meta.project = context.DEFAULT_PROJECT  # projects, networks, pools: not in one
    return meta


@routes.get("/1.0/history/{kind}")
async def history_names(request: web.Request) -> web.Response:
    """Every name objects of the kind carried in the project: URLs, or with ``recursion=1``
    each name with the objects that carried it."""
    kind = request.match_info["kind"]
    subject = _subjects(request, kind)[1]
    query = HistoryListQuery(kind=kind, recursion=context.recursion(request))
    result = await state(request).bus.request(subject, query.model_dump(), _meta(request, kind))
    return responses.sync(result)


@routes.get("/1.0/history/{kind}/{name}")
async def history_get(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    subject = _subjects(request, kind)[0]
    at_seq, at_time = parse_at(request.query.get("at"))
    query = HistoryQuery(
        kind=kind,
        name=request.match_info["name"],
        object_id=request.query.get("id") or None,
        at_seq=at_seq,
        at_time=at_time,
    )
    result = await state(request).bus.request(subject, query.model_dump(), _meta(request, kind))
    return responses.sync(HistoryResult.model_validate(result).model_dump())
