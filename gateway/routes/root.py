"""``/`` (the API versions) and ``/1.0`` (the server and its environment).

What ``GET /1.0`` says is computed once at start-up. ``api_extensions`` is the union of what
each route module declares it implements (its ``EXTENSIONS`` tuple), so the list grows with
the API and never claims more than exists.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from aiohttp import web

from gateway import context, responses
from gateway.state import state
from schemas.lxd.catalog import etag_of
from schemas.lxd.server import Server, ServerEnvironment

EXTENSIONS: tuple[str, ...] = ()
#: Distinct ``?project=`` values whose /1.0 body is kept pre-rendered.
RENDER_CACHE_LIMIT = 256

#: Extensions not tied to one route family: envelope-level behaviour of the whole API.
CORE_EXTENSIONS: tuple[str, ...] = (
    "etag",  # ETag on GET, If-Match on PUT/PATCH
    "patch",  # PATCH on writable objects
    "api_os",  # os_name / os_version in the environment
)

#: LXD reports these personalities of a 64-bit kernel as the architectures it can run.
_PERSONALITIES = {"x86_64": ["x86_64", "i686"], "aarch64": ["aarch64", "armv7l"]}


def warren_version() -> str:
    try:
        return metadata.version("warren")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    for path in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
        break
    return values


def _lxc_version() -> str:
    try:
        import lxc  # python3-lxc; optional for the gateway, which only reports the version

        return str(getattr(lxc, "version", ""))
    except Exception:
        return ""


def extensions(families: Iterable[tuple[str, ...]]) -> list[str]:
    """Core extensions then each family's, without duplicates, in a stable order."""
    seen: dict[str, None] = dict.fromkeys(CORE_EXTENSIONS)
    for family in families:
        seen.update(dict.fromkeys(family))
    return list(seen)


def server_info(server_name: str, api_extensions: list[str]) -> Server:
    """The ``GET /1.0`` object (``environment.project`` is filled per request)."""
    uname = platform.uname()
    release = _os_release()
    env = ServerEnvironment(
        architectures=_PERSONALITIES.get(uname.machine, [uname.machine]),
        driver="lxc",
        driver_version=_lxc_version(),
        firewall="nftables",
        kernel=uname.system,
        kernel_architecture=uname.machine,
        kernel_version=uname.release,
        os_name=release.get("NAME", ""),
        os_version=release.get("VERSION_ID", ""),
        server="warren",
        server_name=server_name,
        server_pid=os.getpid(),
        server_version=warren_version(),
    )
    return Server(
        api_extensions=api_extensions,
        auth="trusted",  # the unix socket is only reachable by root and the socket's group
        public=False,
        auth_methods=[],
        environment=env,
    )


routes = web.RouteTableDef()

_VERSIONS = responses.sync_body(["/1.0"])


@routes.get("/")
async def api_versions(request: web.Request) -> web.Response:
    return responses.raw(_VERSIONS)


@routes.get("/1.0")
async def server_get(request: web.Request) -> web.Response:
    """Server info; like LXD, it echoes ``?project=`` without checking that it exists."""
    st = state(request)
    project = context.project(request)
    cached = st.rendered.get(project)
    if cached is None:
        server = st.server.model_copy(deep=True)
        server.environment.project = project
        cached = (responses.sync_body(server.model_dump()), etag_of(server.config))
        if len(st.rendered) >= RENDER_CACHE_LIMIT:
            st.rendered.clear()
        st.rendered[project] = cached
    body, etag = cached
    return responses.raw(body, etag=etag)
