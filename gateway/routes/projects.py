"""``/1.0/projects``: LXD projects, owned by the instance service.

Renaming a project is asynchronous in LXD (202 + operation) and the ``lxc`` client waits on
that operation: the service records it in the log under the id the gateway chose (the
request's correlation id), so every gateway replica can serve it.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway import context, responses
from gateway.crud import Family
from gateway.state import state
from schemas import subjects
from schemas.catalog import (
    ByName,
    CreateProject,
    ObjectResult,
    OperationResult,
    RenameObject,
    UpdateProject,
)
from schemas.lxd.catalog import RenamePost
from schemas.lxd.units import parse_size

EXTENSIONS: tuple[str, ...] = ("projects", "project_usage")

PROJECTS = Family(
    collection="projects",
    create_subject=subjects.PROJECTS_CREATE,
    update_subject=subjects.PROJECTS_UPDATE,
    rename_subject=subjects.PROJECTS_RENAME,
    delete_subject=subjects.PROJECTS_DELETE,
    list_subject=subjects.PROJECTS_LIST,
    get_subject=subjects.PROJECTS_GET,
    create_model=CreateProject,
    update_model=UpdateProject,
    writable=("description", "config"),
    project_scoped=False,
)

routes = PROJECTS.routes(rename=False)


@routes.post("/1.0/projects/{name}")
async def rename(request: web.Request) -> web.Response:
    st = state(request)
    op_id = str(uuid.uuid4())
    meta = PROJECTS.meta(request, correlation_id=op_id)
    post, _ = await context.body(request, RenamePost)
    body = RenameObject(name=request.match_info["name"], new_name=post.name)
    reply = await st.bus.request_reply(subjects.PROJECTS_RENAME, body.model_dump(), meta)
    recorded = OperationResult.model_validate(reply.unwrap()).operation
    # Answer once this replica has read the operation, so a GET of it right after works.
    await st.reader.wait_for(reply.seq)
    return responses.operation(recorded)


# LXD's project state reports these resources, each with a limit (-1: none) and a usage.
_RESOURCES = (
    "containers",
    "cpu",
    "disk",
    "instances",
    "memory",
    "networks",
    "processes",
    "virtual-machines",
)
def parse_limit(value: str | None) -> int:
    """A ``limits.*`` value as a number (sizes in bytes); -1 when unset or unparsable."""
    if not value:
        return -1
    size = parse_size(value)
    return -1 if size is None else size


def project_state(project: dict[str, Any]) -> dict[str, Any]:
    """Limits from the project's ``limits.*`` config; usage counted from what uses it."""
    config = project.get("config") or {}
    used_by = [u.split("?", 1)[0] for u in project.get("used_by") or []]
    instances = sum(1 for u in used_by if u.startswith(("/1.0/instances/", "/1.0/containers/")))
    vms = sum(1 for u in used_by if u.startswith("/1.0/virtual-machines/"))
    networks = sum(1 for u in used_by if u.startswith("/1.0/networks/"))
    usage = {
        "containers": instances,
        "instances": instances + vms,
        "virtual-machines": vms,
        "networks": networks,
    }
    return {
        "resources": {
            name: {"Limit": parse_limit(config.get(f"limits.{name}")), "Usage": usage.get(name, 0)}
            for name in _RESOURCES
        }
    }


@routes.get("/1.0/projects/{name}/state")
async def state_get(request: web.Request) -> web.Response:
    meta = PROJECTS.meta(request)
    body = ByName(name=request.match_info["name"])
    result = await state(request).bus.request(subjects.PROJECTS_GET, body.model_dump(), meta)
    return responses.sync(project_state(ObjectResult.model_validate(result).object))
