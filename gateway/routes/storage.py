"""``/1.0/storage-pools``: storage pools and their volumes, served by this node's storage
service (node-scoped subjects ``storage.<node>.<verb>``; a single-node cluster asks its own
node, named like the gateway's ``server_name``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel

from gateway import context, responses
from gateway.crud import Family
from gateway.state import state
from schemas import subjects
from schemas.catalog import ByName
from schemas.lxd.storage import StoragePoolResources, StorageVolumeState
from schemas.storage import CreatePool, UpdatePool, VolumeQuery

EXTENSIONS: tuple[str, ...] = (
    # Pools in full, volumes read-only (creating one is 501): the 5.0 client asks for this
    # extension before any pool or volume call, `lxc storage list/show/create/delete` too.
    "storage",
    # Only a pool's resources (GET /1.0/resources is not served): `lxc storage info` needs it.
    "resources",
    "entity_description",
    # GET .../volumes/container/<name>/state (`lxc storage volume info` also wants
    # storage_api_volume_snapshots, which is not advertised: no volume snapshots yet).
    "storage_volume_state",
)

#: Creating a btrfs pool formats a filesystem, deleting one unmounts it: give the node agent
#: time on a busy machine. Queries keep the usual bound so a stopped service fails fast.
HOST_TIMEOUT = 120.0
QUERY_TIMEOUT = 10.0
_HOST_VERBS = frozenset({subjects.STORAGE_POOL_CREATE, subjects.STORAGE_POOL_DELETE})


@dataclass(frozen=True)
class NodeFamily(Family):
    """A family whose subjects are verbs of the node-scoped storage service."""

    async def ask(self, request: web.Request, subject: str, body: BaseModel, meta: Any) -> Any:
        return await ask(request, subject, body, meta)


async def ask(request: web.Request, verb: str, body: BaseModel, meta: Any) -> Any:
    st = state(request)
    node = st.server.environment.server_name
    timeout = HOST_TIMEOUT if verb in _HOST_VERBS else QUERY_TIMEOUT
    return await st.bus.request(
        subjects.storage(verb, node), body.model_dump(mode="json"), meta, timeout
    )


POOLS = NodeFamily(
    collection="storage-pools",
    create_subject=subjects.STORAGE_POOL_CREATE,
    update_subject=subjects.STORAGE_POOL_UPDATE,
    rename_subject="",  # LXD 5.0 cannot rename a pool
    delete_subject=subjects.STORAGE_POOL_DELETE,
    list_subject=subjects.STORAGE_POOL_LIST,
    get_subject=subjects.STORAGE_POOL_GET,
    create_model=CreatePool,
    update_model=UpdatePool,
    writable=("description", "config"),
    project_scoped=False,
)

routes = POOLS.routes(rename=False)


@routes.get("/1.0/storage-pools/{name}/resources")
async def resources(request: web.Request) -> web.Response:
    meta = POOLS.meta(request)
    result = await ask(
        request, subjects.STORAGE_POOL_RESOURCES, ByName(name=request.match_info["name"]), meta
    )
    return responses.sync(StoragePoolResources.model_validate(result).model_dump())


def volume_url(pool: str, key: str, project: str) -> str:
    """``/1.0/storage-pools/<pool>/volumes/<type>/<name>`` from a ``type/name`` key."""
    volume_type, _, name = key.partition("/")
    url = f"/1.0/storage-pools/{quote(pool, safe='')}/volumes/{volume_type}/{quote(name, safe='')}"
    if project != context.DEFAULT_PROJECT:
        url += f"?project={quote(project, safe='')}"
    return url


@routes.get("/1.0/storage-pools/{name}/volumes")
@routes.get("/1.0/storage-pools/{name}/volumes/{type}")
async def volumes(request: web.Request) -> web.Response:
    meta = context.meta(request)
    pool = request.match_info["name"]
    recursion = min(context.recursion(request), 1)
    query = VolumeQuery(pool=pool, type=request.match_info.get("type"), recursion=recursion)
    result = await ask(request, subjects.STORAGE_VOLUME_LIST, query, meta)
    if recursion == 0:
        return responses.sync([volume_url(pool, key, meta.project) for key in result])
    return responses.sync(result)


@routes.get("/1.0/storage-pools/{name}/volumes/{type}/{volume}")
async def volume(request: web.Request) -> web.Response:
    meta = context.meta(request)
    info = request.match_info
    query = VolumeQuery(pool=info["name"], type=info["type"], name=info["volume"], recursion=1)
    return responses.sync(await ask(request, subjects.STORAGE_VOLUME_GET, query, meta))


@routes.get("/1.0/storage-pools/{name}/volumes/{type}/{volume}/state")
async def volume_state(request: web.Request) -> web.Response:
    """What an instance volume holds of its own (``usage.used``; ``usage.total`` 0: no quota)."""
    meta = context.meta(request)
    info = request.match_info
    query = VolumeQuery(pool=info["name"], type=info["type"], name=info["volume"])
    result = await ask(request, subjects.STORAGE_VOLUME_STATE, query, meta)
    return responses.sync(StorageVolumeState.model_validate(result).model_dump())
