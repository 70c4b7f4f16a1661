"""``/1.0/history/<kind>/<name>``: Warren's ``warren_history`` API extension.

The full history of one object from the event log (who did what, when), and the object as it
was at ``?at=<stream sequence>`` or ``?at=<RFC 3339 time>`` (now when absent). The service
owning the kind answers from the log; a deleted object's history stays reachable by its name.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway import context, responses
from gateway.state import state
from schemas import subjects
from schemas.catalog import HistoryQuery, HistoryResult
from schemas.errors import BadRequest, NotFound

EXTENSIONS: tuple[str, ...] = ("warren_history",)

#: Which service keeps the history of which kind of object.
KIND_SUBJECTS: dict[str, str] = {
    "profile": subjects.HISTORY,
    "project": subjects.HISTORY,
    "instance": subjects.HISTORY,
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
    return responses.sync([f"/1.0/history/{kind}" for kind in KIND_SUBJECTS])


@routes.get("/1.0/history/{kind}/{name}")
async def history_get(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    subject = KIND_SUBJECTS.get(kind)
    if subject is None:
        raise NotFound(f"no history for kind {kind!r} (known: {', '.join(KIND_SUBJECTS)})")
    at_seq, at_time = parse_at(request.query.get("at"))
    query = HistoryQuery(kind=kind, name=request.match_info["name"], at_seq=at_seq, at_time=at_time)
    meta = context.meta(request)
    if kind == "project":
        meta.project = context.DEFAULT_PROJECT
    result = await state(request).bus.request(subject, query.model_dump(), meta)
    return responses.sync(HistoryResult.model_validate(result).model_dump())
