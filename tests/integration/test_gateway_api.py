"""The gateway's own surface over its unix socket: server info and LXD error shapes."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp
import pytest
from gateway_harness import GatewayHarness

from schemas import codec, subjects
from schemas.client import Bus
from schemas.errors import NotFound
from schemas.messages import Reply, Request

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def gw(nats_server):
    harness = await GatewayHarness(nats_server.url).start(wait_ready=False)
    yield harness
    await harness.stop()


ERROR_KEYS = {"type", "status", "status_code", "operation", "error_code", "error", "metadata"}


def assert_lxd_error(status: int, data: dict, expected: int) -> None:
    assert status == expected, data
    assert set(data) == ERROR_KEYS
    assert data["type"] == "error" and data["error_code"] == expected
    assert isinstance(data["error"], str) and data["error"]


async def test_root_lists_the_api_versions(gw) -> None:
    status, _, data = await gw.request("GET", "/")
    assert status == 200
    assert data == {
        "type": "sync",
        "status": "Success",
        "status_code": 200,
        "operation": "",
        "error_code": 0,
        "error": "",
        "metadata": ["/1.0"],
    }


async def test_server_info_describes_warren_like_lxd_does(gw) -> None:
    status, headers, data = await gw.request("GET", "/1.0")
    assert status == 200 and headers.get("ETag")
    server = data["metadata"]
    assert server["api_status"] == "stable" and server["api_version"] == "1.0"
    assert server["auth"] == "trusted" and server["public"] is False
    assert server["config"] == {}
    env = server["environment"]
    assert env["server"] == "warren" and env["server_name"] == "test"
    assert env["project"] == "default"
    assert env["kernel"] == os.uname().sysname and env["kernel_version"] == os.uname().release
    assert env["architectures"] and env["os_name"]
    exts = server["api_extensions"]
    # What the lxc 5.0 client needs for profiles, projects, operations and monitor ...
    assert {"etag", "patch", "projects", "profile_usedby", "event_lifecycle"} <= set(exts)
    # ... Warren's own extension, and nothing Warren does not do yet.
    assert "warren_history" in exts
    assert "clustering" not in exts
    # Their config keys (bridge.hwaddr, ipv4.dhcp.gateway) are refused as unknown.
    assert not {"network_hwaddr", "network_dhcp_gateway"} & set(exts)
    assert len(exts) == len(set(exts))


async def test_server_info_echoes_the_project(gw) -> None:
    meta = await gw.get("/1.0?project=elsewhere")
    assert meta["environment"]["project"] == "elsewhere"
    assert (await gw.get("/1.0"))["environment"]["project"] == "default"


async def test_socket_is_group_accessible_only(gw) -> None:
    mode = stat.S_IMODE(gw.socket.stat().st_mode)
    assert mode == 0o660


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/1.0/nothing-here", None, 404),
        ("GET", "/2.0", None, 404),
        ("DELETE", "/1.0", None, 501),
        ("POST", "/1.0/operations", "{}", 501),
        ("PUT", "/1.0/profiles", "{}", 501),
        ("POST", "/1.0/profiles", "{not json", 400),
        ("POST", "/1.0/profiles", "", 400),
        ("POST", "/1.0/profiles", "[1, 2]", 400),
        ("POST", "/1.0/profiles", '{"name": "x", "config": {"limits.cpu": 2}}', 400),
        ("PUT", "/1.0/profiles/default", '{"config":', 400),
        ("POST", "/1.0/projects/x", '{"name":', 400),
        ("GET", "/1.0/history/unicorn/x", None, 404),
        ("GET", "/1.0/history/profile/x?at=yesterday", None, 400),
        ("GET", "/1.0/events?type=bogus", None, 400),
        ("GET", "/1.0/events?project=p&all-projects=true", None, 400),
    ],
)
async def test_bad_requests_get_lxd_errors(gw, method, path, body, expected) -> None:
    status, _, data = await gw.request(method, path, body)
    assert_lxd_error(status, data, expected)


async def test_service_errors_go_through_the_status_table(gw, nats_server) -> None:
    """An unknown project reported by the owning service becomes LXD's 404."""
    bus = await Bus.open(nats_server.url, "stand-in")
    seen: list[Request] = []

    async def not_found(msg) -> None:
        request = codec.decode(Request, msg.data)
        seen.append(request)
        error = NotFound(f"Failed loading project {request.meta.project!r}: Project not found")
        await msg.respond(codec.encode(Reply.failure(error)))

    sub = await bus.nc.subscribe(subjects.PROFILES_LIST, cb=not_found)
    try:
        status, _, data = await gw.request("GET", "/1.0/profiles?project=nope")
    finally:
        await sub.unsubscribe()
        await bus.close()
    assert_lxd_error(status, data, 404)
    assert "nope" in data["error"]
    assert seen[0].meta.project == "nope"
    assert seen[0].meta.requestor  # the unix peer, from SO_PEERCRED


async def _get_server(sock: Path) -> dict:
    """GET /1.0 once the socket answers (the process needs a moment to start)."""
    for _ in range(400):
        try:
            connector = aiohttp.UnixConnector(path=str(sock))
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get("http://warren/1.0") as resp:
                    return (await resp.json())["metadata"]
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.05)
    pytest.fail("python -m gateway never answered")


async def test_python_m_gateway_replaces_a_stale_socket(nats_server) -> None:
    """The entry point removes the socket a killed gateway left, serves, and stops on TERM."""
    base = Path(tempfile.mkdtemp(prefix="gwp-", dir="/tmp"))
    sock = base / "unix.socket"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # bound, never listening: what kill -9 leaves behind
    node = f"n{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "WARREN_DIR": str(base),
        "WARREN_NATS_URL": nats_server.url,
        "PYTHONPATH": str(REPO),
        "WARREN_NODE": node,
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=env, cwd=REPO)
    try:
        server = await _get_server(sock)
        assert server["environment"]["server_name"] == node
    finally:
        proc.terminate()
        code = await asyncio.wait_for(proc.wait(), 20)
        shutil.rmtree(base, ignore_errors=True)
    assert code == 0
