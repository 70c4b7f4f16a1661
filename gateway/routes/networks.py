"""``/1.0/networks``: managed bridges (and the host's interfaces, unmanaged), their state and
leases, served by this node's network service (``network.<node>.<verb>``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import responses
from gateway.crud import Family
from gateway.state import state
from schemas import subjects
from schemas.catalog import ByName
from schemas.networks import CreateNetwork, UpdateNetwork

EXTENSIONS: tuple[str, ...] = (
    "network",
    "network_leases",
    "network_state",
    "instance_nic_network",
    # Not "network_hwaddr" nor "network_dhcp_gateway": the bridge.hwaddr and
    # ipv4.dhcp.gateway keys they add are refused as unknown.
)

#: Making a bridge starts dnsmasq and loads rules: give the node agent time on a busy host.
HOST_TIMEOUT = 60.0
QUERY_TIMEOUT = 10.0
_QUERY_VERBS = frozenset(
    {subjects.NETWORK_LIST, subjects.NETWORK_GET, subjects.NETWORK_STATE, subjects.NETWORK_LEASES}
)


async def ask(request: web.Request, verb: str, body: BaseModel, meta: Any) -> Any:
    """A request to this node's network service."""
    st = state(request)
    node = st.server.environment.server_name
    timeout = QUERY_TIMEOUT if verb in _QUERY_VERBS else HOST_TIMEOUT
    return await st.bus.request(
        subjects.network(verb, node), body.model_dump(mode="json"), meta, timeout
    )


@dataclass(frozen=True)
class NetworkFamily(Family):
    async def ask(self, request: web.Request, subject: str, body: BaseModel, meta: Any) -> Any:
        return await ask(request, subject, body, meta)


NETWORKS = NetworkFamily(
    collection="networks",
    create_subject=subjects.NETWORK_CREATE,
    update_subject=subjects.NETWORK_UPDATE,
    rename_subject=subjects.NETWORK_RENAME,
    delete_subject=subjects.NETWORK_DELETE,
    list_subject=subjects.NETWORK_LIST,
    get_subject=subjects.NETWORK_GET,
    create_model=CreateNetwork,
    update_model=UpdateNetwork,
    writable=("description", "config"),
    project_scoped=False,
)

routes = NETWORKS.routes()


@routes.get("/1.0/networks/{name}/state")
async def network_state(request: web.Request) -> web.Response:
    body = ByName(name=request.match_info["name"])
    return responses.sync(await ask(request, subjects.NETWORK_STATE, body, NETWORKS.meta(request)))


@routes.get("/1.0/networks/{name}/leases")
async def network_leases(request: web.Request) -> web.Response:
    body = ByName(name=request.match_info["name"])
    return responses.sync(await ask(request, subjects.NETWORK_LEASES, body, NETWORKS.meta(request)))
