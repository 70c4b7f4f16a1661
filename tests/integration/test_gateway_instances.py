"""The gateway's instance routes against a real nats-server and a scripted instance service.

The scripted service (``tests/instance_node.py``) records what the gateway sends (subjects,
bodies, the node each command went to) and answers as the wire contract says: operations in
the real log, file contents and exec bytes as real byte streams.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from gateway_harness import GatewayHarness
from instance_node import ScriptedInstances

from schemas import subjects
from schemas.client import Bus
from services.common.eventstore import EventStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "test-gateway-instances")
    await EventStore(bus.js).ensure_stream()
    yield bus
    await bus.close()


@pytest.fixture
async def service(bus):
    scripted = await ScriptedInstances(bus, nodes=("test", "n2")).start()
    yield scripted
    await scripted.stop()


@pytest.fixture
async def gw(nats_server, service):
    harness = await GatewayHarness(nats_server.url, node="test").start()
    yield harness
    await harness.stop()


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_op(gw: GatewayHarness, reply: dict) -> dict:
    op = await gw.get(f"{reply['operation']}/wait?timeout=30")
    assert op["status"] == "Success", op
    return op


async def accepted(gw: GatewayHarness, method: str, path: str, body=None, headers=None) -> dict:
    status, reply_headers, data = await gw.request(method, path, body, headers)
    assert status == 202, (method, path, status, data)
    assert data["type"] == "async" and reply_headers["Location"] == data["operation"]
    return data


# -- list and filters ---------------------------------------------------------------------


async def test_list_gives_urls_objects_and_full_objects(gw, service) -> None:
    a, b = service.add(unique(), status="Running"), service.add(unique())
    service.add(unique(), project="other")
    urls = await gw.get("/1.0/instances")
    assert f"/1.0/instances/{a['name']}" in urls and f"/1.0/instances/{b['name']}" in urls
    assert len(urls) == 2
    assert service.verbs("instance-list")[-1].body == {"recursion": 0, "all_projects": False}

    objects = await gw.get("/1.0/instances?recursion=1")
    assert {o["name"] for o in objects} == {a["name"], b["name"]}
    full = await gw.get("/1.0/instances?recursion=2")
    assert all("state" in o for o in full)
    assert service.verbs("instance-list")[-1].body["recursion"] == 2

    other = await gw.get("/1.0/instances?project=other")
    assert len(other) == 1 and other[0].endswith("?project=other")
    assert service.verbs("instance-list")[-1].meta.project == "other"

    everywhere = await gw.get("/1.0/instances?all-projects=true")
    assert len(everywhere) == 3 and sum(u.endswith("?project=other") for u in everywhere) == 1
    assert service.verbs("instance-list")[-1].body == {"recursion": 1, "all_projects": True}

    legacy = await gw.get("/1.0/containers")
    assert sorted(legacy) == sorted(u.replace("/instances/", "/containers/") for u in urls)


async def test_filters_select_by_name_status_and_config(gw, service) -> None:
    web1 = service.add("web1", status="Running", config={"user.role": "front"})
    service.add("web2", status="Stopped", config={"user.role": "front"})
    service.add("db1", status="Running", config={"user.role": "back"})
    service.add("vm1", type="virtual-machine")

    async def names(query: str) -> list[str]:
        objects = await gw.get(f"/1.0/instances?recursion=1&filter={query}")
        return sorted(o["name"] for o in objects)

    assert await names("name eq web1") == ["web1"]
    assert await names("name eq web.*") == ["web1", "web2"]
    assert await names("status eq running") == ["db1", "web1"]  # case-insensitive, as LXD
    assert await names("config.user.role eq front") == ["web1", "web2"]
    assert await names("config.user.role eq front and status eq Running") == ["web1"]
    assert await names("name eq db1 or name eq vm1") == ["db1", "vm1"]
    assert await names("not status eq Running and type eq container") == ["web2"]
    assert await names("status ne Running") == ["vm1", "web2"]
    assert await names("") == ["db1", "vm1", "web1", "web2"]  # lxc sends filter= when empty
    assert await names("config.user.missing eq x") == []

    # recursion 0 with a filter: the gateway asks for objects and answers URLs.
    assert await gw.get("/1.0/instances?filter=name%20eq%20web1") == ["/1.0/instances/web1"]
    assert service.verbs("instance-list")[-1].body["recursion"] == 1
    # state.* fields need the full objects, but recursion 1 answers without them.
    objects = await gw.get("/1.0/instances?recursion=1&filter=state.status%20eq%20Running")
    assert sorted(o["name"] for o in objects) == ["db1", "web1"]
    assert "state" not in objects[0] and service.verbs("instance-list")[-1].body["recursion"] == 2

    vms = await gw.get("/1.0/instances?instance-type=virtual-machine")
    assert vms == ["/1.0/instances/vm1"]
    assert web1["name"] == "web1"

    for bad in ("name", "name eq", "name like x", "name eq a xor name eq b", "not"):
        status, _, data = await gw.request("GET", f"/1.0/instances?filter={bad}")
        assert status == 400 and "filter" in data["error"], (bad, data)
    status, _, _ = await gw.request("GET", "/1.0/instances?instance-type=toaster")
    assert status == 400


# -- lifecycle ----------------------------------------------------------------------------


async def test_create_goes_to_this_node_or_the_target(gw, service) -> None:
    name = unique()
    body = {"name": name, "source": {"type": "image", "alias": "busybox"}, "config": None}
    data = await accepted(gw, "POST", "/1.0/instances", body)
    sent = service.verbs("instance-create")[-1]
    assert sent.subject == subjects.instance_node(subjects.INSTANCE_CREATE, "test")
    assert sent.body["name"] == name and sent.body["source"]["alias"] == "busybox"
    assert sent.body["config"] == {} and sent.body["profiles"] is None
    assert sent.meta.correlation_id == data["metadata"]["id"] and sent.meta.requestor
    await wait_op(gw, data)
    assert service.instances[("default", name)][1] == "test"

    other = unique()
    data = await accepted(gw, "POST", "/1.0/instances?target=n2", {"name": other})
    assert service.verbs("instance-create")[-1].node == "n2"
    await wait_op(gw, data)
    assert service.instances[("default", other)][1] == "n2"

    status, _, data = await gw.request("POST", "/1.0/instances?target=a.b", {"name": "x"})
    assert status == 400, data
    status, _, data = await gw.request("POST", "/1.0/instances", {"name": "x", "config": 5})
    assert status == 400 and "config" in data["error"]
    status, _, data = await gw.request("POST", "/1.0/instances", "[]")
    assert status == 400


async def test_get_put_patch_follow_the_instance_to_its_node(gw, service) -> None:
    name = unique()
    service.add(name, node="n2", config={"user.a": "1"})
    status, headers, data = await gw.request("GET", f"/1.0/instances/{name}")
    assert status == 200 and data["metadata"]["name"] == name
    etag = headers["ETag"]
    assert etag.startswith('"')
    # recursion=1 on one instance: LXD's InstanceFull, its state read on its node.
    full = await gw.get(f"/1.0/instances/{name}?recursion=1")
    assert full["name"] == name and full["state"]["pid"] == 42 and full["snapshots"] is None
    assert service.verbs("instance-state")[-1].node == "n2"

    body = {"config": {"user.b": "2"}, "profiles": ["default"], "name": "ignored"}
    status, _, data = await gw.request(
        "PUT", f"/1.0/instances/{name}", body, {"If-Match": '"nope"'}
    )
    assert status == 412, data
    data = await accepted(gw, "PUT", f"/1.0/instances/{name}", body, {"If-Match": etag})
    sent = service.verbs("instance-update")[-1]
    assert sent.node == "n2" and sent.meta.if_match == etag.strip('"')
    assert sent.body["mode"] == "put" and sent.body["name"] == name
    assert sorted(sent.body["fields"]) == ["config", "profiles"]
    # The lookup that found the node did not carry If-Match.
    assert service.verbs("instance-get")[-1].meta.if_match is None
    await wait_op(gw, data)
    assert (await gw.get(f"/1.0/instances/{name}"))["config"] == {"user.b": "2"}

    status, _, data = await gw.request(
        "PATCH", f"/1.0/instances/{name}", {"config": {"user.c": "3"}, "devices": None}
    )
    assert status == 200 and data["metadata"] == {}, data
    sent = service.verbs("instance-patch")[-1]
    assert sent.node == "n2" and sent.body["mode"] == "patch" and sent.body["fields"] == ["config"]
    assert (await gw.get(f"/1.0/containers/{name}"))["config"] == {"user.b": "2", "user.c": "3"}


async def test_rename_and_delete_are_operations(gw, service) -> None:
    name, new = unique(), unique()
    service.add(name, node="n2")
    body = {"name": new, "migration": False, "live": False, "pool": "", "project": ""}
    data = await accepted(gw, "POST", f"/1.0/instances/{name}", body)
    sent = service.verbs("instance-rename")[-1]
    assert sent.node == "n2" and sent.body == {"name": name, "new_name": new}
    op = await wait_op(gw, data)
    assert op["description"] == "Renaming instance"
    assert (await gw.get(f"/1.0/instances/{new}"))["name"] == new

    status, _, data = await gw.request("POST", f"/1.0/instances/{new}", {"migration": True})
    assert status == 501 and "not implemented" in data["error"].lower(), data
    status, _, data = await gw.request("POST", f"/1.0/instances/{new}", {"name": ""})
    assert status == 400

    data = await accepted(gw, "DELETE", f"/1.0/instances/{new}")
    assert service.verbs("instance-delete")[-1].body == {"name": new}
    await wait_op(gw, data)
    status, _, data = await gw.request("GET", f"/1.0/instances/{new}")
    assert status == 404 and data["error"] == "Instance not found"


async def test_unknown_instances_are_404_from_the_service(gw, service) -> None:
    name = unique("nope")
    for method, suffix, body in (
        ("GET", "", None),
        ("PUT", "", {"config": {}}),
        ("PATCH", "", {"config": {}}),
        ("DELETE", "", None),
        ("POST", "", {"name": "x"}),
        ("GET", "/state", None),
        ("PUT", "/state", {"action": "start"}),
        ("POST", "/exec", {"command": ["true"]}),
        ("GET", "/files?path=/etc", None),
        ("GET", "/logs", None),
    ):
        status, _, data = await gw.request(method, f"/1.0/instances/{name}{suffix}", body)
        assert status == 404 and data["error"] == "Instance not found", (method, suffix, data)


async def test_state_is_read_from_and_changed_on_the_node(gw, service) -> None:
    name = unique()
    service.add(name, node="n2")
    state = await gw.get(f"/1.0/instances/{name}/state")
    assert state["status"] == "Stopped" and service.verbs("instance-state")[-1].node == "n2"

    data = await accepted(
        gw, "PUT", f"/1.0/instances/{name}/state", {"action": "start", "timeout": 30}
    )
    sent = service.verbs("instance-state-put")[-1]
    assert sent.node == "n2" and sent.body["action"] == "start" and sent.body["timeout"] == 30
    await wait_op(gw, data)
    assert (await gw.get(f"/1.0/instances/{name}/state"))["status"] == "Running"

    status, _, data = await gw.request("PUT", f"/1.0/instances/{name}/state", {"action": "dance"})
    assert status == 400 and "action" in data["error"]


async def test_a_known_location_is_reused_and_followed_when_the_instance_moves(
    gw, service
) -> None:
    name = unique()
    service.add(name, node="n2")
    await gw.get(f"/1.0/instances/{name}/state")
    looked_up = len(service.verbs("instance-get"))
    await gw.get(f"/1.0/instances/{name}/state")
    assert len(service.verbs("instance-get")) == looked_up  # the node was remembered

    obj, _ = service.instances[("default", name)]
    service.instances[("default", name)] = (obj, "test")  # it now lives on the other node
    state = await gw.get(f"/1.0/instances/{name}/state")
    assert state["status"] == "Stopped"
    tried = [s.node for s in service.verbs("instance-state")[-2:]]
    assert tried == ["n2", "test"]  # "Instance not found" on n2, then looked up again
    assert len(service.verbs("instance-get")) == looked_up + 1


async def test_api_extensions_include_what_lxc_needs(gw) -> None:
    extensions = (await gw.get("/1.0"))["api_extensions"]
    for needed in ("instances", "container_full", "instance_get_full", "api_filtering"):
        assert needed in extensions
    for needed in ("file_delete", "file_append", "file_symlinks", "directory_manipulation"):
        assert needed in extensions
    assert "container_exec_user_group_cwd" in extensions and "console" in extensions


# -- exec ---------------------------------------------------------------------------------


async def start_exec(gw: GatewayHarness, name: str, body: dict) -> tuple[str, dict[str, str]]:
    data = await accepted(gw, "POST", f"/1.0/instances/{name}/exec", body)
    op = data["metadata"]
    assert op["class"] == "websocket"
    return op["id"], op["metadata"]["fds"]


async def read_stream(ws: aiohttp.ClientWebSocketResponse) -> tuple[bytes, str]:
    """Binary messages up to LXD's barrier (or the close); how it ended."""
    out = b""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        if msg.type is aiohttp.WSMsgType.BINARY:
            out += msg.data
        elif msg.type is aiohttp.WSMsgType.TEXT:
            return out, "barrier"
        else:
            return out, "closed"


async def test_exec_round_trip_over_websockets(gw, service) -> None:
    name = unique()
    service.add(name, node="n2", status="Running")
    body = {
        "command": ["cat"],
        "environment": {"TERM": "xterm"},
        "wait-for-websocket": True,
        "interactive": False,
        "user": None,
        "record-output": False,
    }
    op_id, fds = await start_exec(gw, name, body)
    sent = service.verbs("instance-exec")[-1]
    assert sent.node == "n2" and sent.body["command"] == ["cat"]
    assert sent.body["wait-for-websocket"] is True and sent.body["user"] == 0
    assert set(fds) == {"0", "1", "2", "control"}

    ws = f"/1.0/operations/{op_id}/websocket?secret="
    control = await gw.websocket(ws + fds["control"])
    stdin = await gw.websocket(ws + fds["0"])
    stdout = await gw.websocket(ws + fds["1"])
    stderr = await gw.websocket(ws + fds["2"])
    payload = b"hello\n" + bytes(range(256)) * 3000  # binary, several stream chunks
    await stdin.send_bytes(payload[:100_000])
    await stdin.send_bytes(payload[100_000:])
    await stdin.send_str("")  # LXD's end of input
    await control.send_str(json.dumps({"command": "window-resize", "args": {"width": "80"}}))

    out, how = await read_stream(stdout)
    assert out == payload and how == "barrier"
    err, how = await read_stream(stderr)
    assert err == b"" and how == "barrier"
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    assert op["status"] == "Success" and op["metadata"]["return"] == 0
    ex = service.execs[op_id]
    assert ex.attached == {"0", "1", "2", "control"}
    # The sockets left open end with the operation.
    for sock in (stdin, control):
        msg = await asyncio.wait_for(sock.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    for sock in (control, stdin, stdout, stderr):
        await sock.close()
    assert any(c.command == "window-resize" for c in ex.controls)
    assert ex.controls[0].window() == (80, 0)


async def test_exec_stderr_exit_code_and_signals(gw, service) -> None:
    name = unique()
    service.add(name, status="Running")
    op_id, fds = await start_exec(
        gw, name, {"command": ["err", "oops"], "wait-for-websocket": True}
    )
    ws = f"/1.0/operations/{op_id}/websocket?secret="
    socks = {fd: await gw.websocket(ws + fds[fd]) for fd in ("0", "1", "2")}
    await socks["0"].send_bytes(b"")  # an empty binary message ends the input too
    assert await read_stream(socks["2"]) == (b"oops\n", "barrier")
    assert await read_stream(socks["1"]) == (b"", "barrier")
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    assert op["metadata"]["return"] == 3
    for sock in socks.values():
        await sock.close()

    # Signals travel over the control socket; control itself is optional for the start.
    op_id, fds = await start_exec(
        gw, name, {"command": ["sleep", "100"], "wait-for-websocket": True}
    )
    ws = f"/1.0/operations/{op_id}/websocket?secret="
    socks = {fd: await gw.websocket(ws + fds[fd]) for fd in fds}
    await socks["control"].send_str(json.dumps({"command": "signal", "signal": 15}))
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    assert op["metadata"]["return"] == 143
    assert service.execs[op_id].controls[0].signal == 15
    for sock in socks.values():
        await sock.close()


async def test_interactive_exec_uses_one_socket_both_ways(gw, service) -> None:
    name = unique()
    service.add(name, status="Running")
    body = {"command": ["sh"], "interactive": True, "wait-for-websocket": True, "width": 80}
    op_id, fds = await start_exec(gw, name, body)
    assert set(fds) == {"0", "control"}
    ws = f"/1.0/operations/{op_id}/websocket?secret="
    control = await gw.websocket(ws + fds["control"])
    tty = await gw.websocket(ws + fds["0"])

    async def until(expected: bytes) -> bytes:
        seen = b""
        while expected not in seen:
            msg = await asyncio.wait_for(tty.receive(), 20)
            assert msg.type is aiohttp.WSMsgType.BINARY, msg
            seen += msg.data
        return seen

    await until(b"$ ")
    await tty.send_bytes(b"hello\n")
    assert b"HELLO" in await until(b"HELLO\r\n$ ")
    await tty.send_bytes(b"exit\n")
    assert (await read_stream(tty))[1] == "barrier"
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    assert op["metadata"]["return"] == 0
    await tty.close()
    await control.close()


async def test_websocket_secrets_are_checked(gw, service) -> None:
    name = unique()
    service.add(name, status="Running")
    op_id, fds = await start_exec(gw, name, {"command": ["sleep"], "wait-for-websocket": True})
    base = f"/1.0/operations/{op_id}/websocket"
    for query in ("", "?secret=", "?secret=wrong"):
        status, _, data = await gw.request("GET", base + query)
        assert status == 403 and data["error_code"] == 403, (query, data)
    status, _, data = await gw.request("GET", f"/1.0/operations/{uuid.uuid4()}/websocket?secret=x")
    assert status == 404
    # A plain GET with the right secret is not a websocket handshake.
    status, _, data = await gw.request("GET", f"{base}?secret={fds['0']}")
    assert status == 400, data
    control = await gw.websocket(f"{base}?secret={fds['control']}")
    # As the Go client writes it: unset args are null.
    await control.send_str(json.dumps({"command": "signal", "args": None, "signal": 9}))
    socks = [await gw.websocket(f"{base}?secret={fds[fd]}") for fd in ("0", "1", "2")]
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    assert op["metadata"]["return"] == 137
    for sock in (control, *socks):
        await sock.close()
    status, _, data = await gw.request("GET", f"{base}?secret={fds['0']}")
    assert status == 400 and "running" in data["error"]


# -- files --------------------------------------------------------------------------------


async def raw(gw: GatewayHarness, method: str, path: str, data=None, headers=None):
    assert gw.session is not None
    async with gw.session.request(
        method, f"http://warren{path}", data=data, headers=headers
    ) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def test_file_get_streams_content_with_lxd_headers(gw, service) -> None:
    name = unique()
    service.add(name, node="n2")
    content = bytes(range(256)) * 5000  # 1.28 MB: several stream chunks
    service.mkdir("/etc")
    service.write("/etc/big", content, mode=0o640, uid=1000, gid=100)
    status, headers, body = await raw(gw, "GET", f"/1.0/instances/{name}/files?path=/etc/big")
    assert status == 200 and body == content
    assert headers["X-LXD-uid"] == "1000" and headers["X-LXD-gid"] == "100"
    assert headers["X-LXD-mode"] == "0640" and headers["X-LXD-type"] == "file"
    assert headers["Content-Type"] == "application/octet-stream"
    sent = service.verbs("instance-file-get")[-1]
    assert sent.node == "n2" and sent.body["path"] == "/etc/big" and sent.body["stream_id"]

    service.write("/etc/empty", b"")
    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/files?path=/etc/empty")
    assert status == 200 and body == b""

    status, headers, body = await raw(gw, "GET", f"/1.0/instances/{name}/files?path=/etc")
    assert status == 200 and headers["X-LXD-type"] == "directory"
    assert headers["X-LXD-mode"] == "0755"
    assert json.loads(body)["metadata"] == ["big", "empty"]

    service.files["/etc/link"] = type(service.files["/etc"])("/etc/link", "symlink", target="big")
    status, headers, body = await raw(gw, "GET", f"/1.0/instances/{name}/files?path=/etc/link")
    assert status == 200 and headers["X-LXD-type"] == "symlink" and body == b"big"

    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/files?path=/nope")
    assert status == 404 and json.loads(body)["error"] == "File not found"
    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/files")
    assert status == 400


async def test_file_post_streams_the_body_and_reads_lxd_headers(gw, service) -> None:
    name = unique()
    service.add(name)
    service.mkdir("/srv")
    content = b"x" * 1_500_000 + b"end"
    headers = {"X-LXD-uid": "5", "X-LXD-gid": "6", "X-LXD-mode": "0600", "X-LXD-type": "file"}
    status, _, body = await raw(
        gw, "POST", f"/1.0/instances/{name}/files?path=/srv/f", content, headers
    )
    assert status == 200 and json.loads(body)["metadata"] == {}
    stored = service.files["/srv/f"]
    assert stored.content == content and (stored.uid, stored.gid, stored.mode) == (5, 6, 0o600)
    sent = service.verbs("instance-file-put")[-1].body
    assert sent["type"] == "file" and sent["write"] == "overwrite" and sent["mode"] == 0o600

    status, _, _ = await raw(
        gw, "POST", f"/1.0/instances/{name}/files?path=/srv/f", b"+more", {"X-LXD-write": "append"}
    )
    assert status == 200 and service.files["/srv/f"].content == content + b"+more"
    assert service.verbs("instance-file-put")[-1].body["mode"] is None  # unset: keep it

    status, _, _ = await raw(
        gw,
        "POST",
        f"/1.0/instances/{name}/files?path=/srv/d",
        b"",
        {"X-LXD-type": "directory", "X-LXD-mode": "0700"},
    )
    assert status == 200 and service.files["/srv/d"].type == "directory"
    assert service.files["/srv/d"].mode == 0o700
    status, _, _ = await raw(
        gw, "POST", f"/1.0/instances/{name}/files?path=/srv/l", b"/srv/f", {"X-LXD-type": "symlink"}
    )
    assert status == 200 and service.files["/srv/l"].target == "/srv/f"
    status, _, _ = await raw(gw, "POST", f"/1.0/instances/{name}/files?path=/srv/e", b"")
    assert status == 200 and service.files["/srv/e"].content == b""

    status, _, body = await raw(
        gw, "POST", f"/1.0/instances/{name}/files?path=/srv/x", b"", {"X-LXD-type": "fifo"}
    )
    assert status == 400 and "Bad file type" in json.loads(body)["error"]
    status, _, body = await raw(
        gw, "POST", f"/1.0/instances/{name}/files?path=/no/such/dir", b"data"
    )
    assert status == 404

    status, _, body = await raw(gw, "DELETE", f"/1.0/instances/{name}/files?path=/srv/f")
    assert status == 200 and "/srv/f" not in service.files
    status, _, body = await raw(gw, "DELETE", f"/1.0/instances/{name}/files?path=/srv/f")
    assert status == 404


# -- logs ---------------------------------------------------------------------------------


async def test_logs_and_console_log(gw, service) -> None:
    name = unique()
    service.add(name, node="n2")
    urls = await gw.get(f"/1.0/instances/{name}/logs")
    assert urls == [f"/1.0/instances/{name}/logs/lxc.conf", f"/1.0/instances/{name}/logs/lxc.log"]
    assert service.verbs("instance-logs")[-1].node == "n2"
    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/logs/lxc.log")
    assert status == 200 and body == b"lxc log line\n"
    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/logs/nope.log")
    assert status == 404
    status, _, body = await raw(gw, "DELETE", f"/1.0/instances/{name}/logs/lxc.conf")
    assert status == 200 and "lxc.conf" not in service.logs

    status, _, body = await raw(gw, "GET", f"/1.0/instances/{name}/console")
    assert status == 200 and body == b"console says hi\n"
    assert service.verbs("instance-logs")[-1].body == {"name": name, "file": "console"}
    status, _, body = await raw(gw, "DELETE", f"/1.0/instances/{name}/console")
    assert status == 200 and service.console == b""
    status, _, body = await raw(gw, "POST", f"/1.0/instances/{name}/console", b"{}")
    assert status == 501 and "console" in json.loads(body)["error"]


async def test_a_client_gone_mid_exec_does_not_hang_the_operation(gw, service) -> None:
    name = unique()
    service.add(name, status="Running")
    op_id, fds = await start_exec(gw, name, {"command": ["cat"], "wait-for-websocket": True})
    ws = f"/1.0/operations/{op_id}/websocket?secret="
    socks = {fd: await gw.websocket(ws + fds[fd]) for fd in ("0", "1", "2")}
    await socks["1"].close()  # stdout's reader leaves before the command writes
    await asyncio.sleep(0.1)
    await socks["0"].send_bytes(b"lost\n")
    await socks["0"].send_str("")
    op = await gw.get(f"/1.0/operations/{op_id}/wait?timeout=30")
    # The node learnt that nobody reads stdout any more (here it fails the command).
    assert op["status"] in ("Failure", "Success"), op
    # The sockets left open close with the operation (stderr, which the failed command never
    # ended, once the gateway's grace for output in flight has passed).
    for fd in ("0", "2"):
        while True:
            msg = await asyncio.wait_for(socks[fd].receive(), 15)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        await socks[fd].close()
