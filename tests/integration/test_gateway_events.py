"""/1.0/events: log events become LXD operation and lifecycle events, filtered per listener;
API requests and operation transitions become LXD logging events."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import uuid

import aiohttp
import pytest
from gateway_harness import GatewayHarness

from schemas import codec, events, subjects
from schemas.client import Bus
from schemas.envelope import Event
from schemas.errors import NotFound
from schemas.messages import Reply, Request
from services.common.eventstore import EventStore


@pytest.fixture
async def store(nats_server):
    bus = await Bus.open(nats_server.url, "test-gateway-events")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield store
    await bus.close()


@pytest.fixture
async def gw(nats_server, store):
    harness = await GatewayHarness(nats_server.url).start()
    yield harness
    await harness.stop()


@pytest.fixture
async def projects(nats_server):
    """A stand-in for the project owner: projects named ``pj...`` exist, nothing else does."""
    bus = await Bus.open(nats_server.url, "stand-in-projects")

    async def owner(msg) -> None:
        name = codec.decode(Request, msg.data).body["name"]
        if name.startswith("pj"):
            reply = Reply(result={"object": {"name": name}, "etag": ""})
        else:
            reply = Reply.failure(NotFound(f"Project {name!r} not found"))
        await msg.respond(codec.encode(reply))

    sub = await bus.nc.subscribe(subjects.PROJECTS_GET, cb=owner)
    yield
    await sub.unsubscribe()
    await bus.close()


def catalog_event(type_: str, aggregate: str, name: str, project: str = "default", **extra):
    return Event(
        type=type_,
        aggregate=aggregate,
        aggregate_id=str(uuid.uuid4()),
        project=project,
        requestor="alice",
        payload={"name": name, **extra},
    )


async def collect(ws: aiohttp.ClientWebSocketResponse, until, timeout: float = 20) -> list[dict]:
    """Messages until ``until(message)`` is true for one of them."""
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            got.append(json.loads(msg.data))
            if until(got[-1]):
                return got


def source_is(source: str):
    return lambda m: m["type"] == "lifecycle" and m["metadata"]["source"] == source


async def test_lifecycle_events_follow_the_log_with_project_filtering(gw, store, projects):
    run = uuid.uuid4().hex[:8]
    default_ws = await gw.websocket("/1.0/events?type=lifecycle")
    pj_ws = await gw.websocket(f"/1.0/events?type=lifecycle&project=pj{run}")
    all_ws = await gw.websocket("/1.0/events?type=lifecycle,operation&all-projects=true")
    await asyncio.sleep(0.1)  # the listeners are registered once the handshake is done

    await store.append([catalog_event("profile-created", "profile", f"a{run}")], 0)
    await store.append(
        [catalog_event("profile-renamed", "profile", f"b{run}", old_name=f"a{run}")], None
    )
    await store.append(
        [catalog_event("profile-created", "profile", f"c{run}", project=f"pj{run}")], 0
    )
    await store.append([catalog_event("name-claimed", "name", f"z{run}")], 0)
    await store.append([catalog_event("project-created", "project", f"end{run}")], 0)

    end = source_is(f"/1.0/projects/end{run}")
    default = [m for m in await collect(default_ws, end) if run in json.dumps(m)]
    everything = [m for m in await collect(all_ws, end) if run in json.dumps(m)]
    scoped = await collect(pj_ws, source_is(f"/1.0/profiles/c{run}?project=pj{run}"))

    assert [(m["metadata"]["action"], m["metadata"]["source"]) for m in default] == [
        ("profile-created", f"/1.0/profiles/a{run}"),
        ("profile-renamed", f"/1.0/profiles/b{run}"),
        ("project-created", f"/1.0/projects/end{run}"),
    ]
    renamed = default[1]
    assert renamed["metadata"]["context"] == {"old_name": f"a{run}"}
    assert renamed["metadata"]["requestor"] == {
        "username": "alice",
        "protocol": "unix",
        "address": "@",
    }
    assert renamed["location"] == "none" and renamed["project"] == "default"
    assert renamed["timestamp"].endswith("Z")
    assert len(everything) == 4 and everything[2]["project"] == f"pj{run}"
    assert everything[3]["project"] == f"end{run}"  # a project's events carry its own name
    assert [m["metadata"]["source"] for m in scoped if run in json.dumps(m)] == [
        f"/1.0/profiles/c{run}?project=pj{run}"
    ]
    for ws in (default_ws, pj_ws, all_ws):
        await ws.close()


def op_event(op: dict, version: int, project: str = "default") -> Event:
    return Event(
        type=events.OPERATION_CREATED if version == 1 else events.OPERATION_UPDATED,
        aggregate=subjects.OPERATION_AGGREGATE,
        aggregate_id=op["id"],
        version=version,
        project=project,
        payload=op,
    )


def new_op(**fields) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "class": "task",
        "description": "Testing things",
        "status": "Running",
        "status_code": 103,
        "resources": {"instances": ["/1.0/instances/c1"]},
        "metadata": None,
        "may_cancel": False,
        "err": "",
        **fields,
    }


async def record_lifetime(store: EventStore, op: dict, end: dict, project="default") -> None:
    """Created (Running), a metadata update, then ``end``: three appends, as an owner does."""
    seq = await store.append([op_event(op, 1, project)], 0)
    op = {**op, "metadata": {"progress": "50%"}}
    seq = await store.append([op_event(op, 2, project)], seq)
    await store.append([op_event({**op, **end}, 3, project)], seq)


def about(op_id: str):
    return lambda m: (
        m["metadata"].get("id") == op_id
        or (m["metadata"].get("context", {}).get("operation") == op_id)
    )


async def test_operation_events_follow_lxds_sequence(gw, store) -> None:
    """LXD: Pending, Running, (metadata updates), final; the project the operation is in."""
    ws = await gw.websocket("/1.0/events?type=operation")
    await asyncio.sleep(0.1)
    op = new_op()
    await record_lifetime(store, op, {"status": "Success", "status_code": 200})
    got = await collect(
        ws, lambda m: m["metadata"]["id"] == op["id"] and m["metadata"]["status_code"] == 200
    )
    mine = [m for m in got if m["metadata"]["id"] == op["id"]]
    assert {m["type"] for m in mine} == {"operation"}
    assert [m["metadata"]["status"] for m in mine] == ["Pending", "Running", "Running", "Success"]
    assert [m["metadata"]["status_code"] for m in mine] == [105, 103, 103, 200]
    assert mine[0]["metadata"] == {
        **op,
        "status": "Pending",
        "status_code": 105,
        "location": "none",
    }
    assert mine[2]["metadata"]["metadata"] == {"progress": "50%"}
    # LXD 5.0.2 tags an instance operation with its project ("project":"default").
    assert {m["project"] for m in mine} == {"default"}
    assert all(m["location"] == "none" and m["timestamp"].endswith("Z") for m in mine)
    await ws.close()


async def test_operations_on_projects_belong_to_no_project(gw, store, projects) -> None:
    """LXD creates "Renaming project" in no project: its events carry none and reach the
    listeners of every project."""
    run = uuid.uuid4().hex[:8]
    ws = await gw.websocket(f"/1.0/events?type=operation&project=pj{run}")
    await asyncio.sleep(0.1)
    op = new_op(description="Renaming project", resources={"projects": [f"/1.0/projects/a{run}"]})
    await record_lifetime(store, op, {"status": "Success", "status_code": 200})
    got = await collect(
        ws, lambda m: m["metadata"]["id"] == op["id"] and m["metadata"]["status_code"] == 200
    )
    mine = [m for m in got if m["metadata"]["id"] == op["id"]]
    assert len(mine) == 4 and all("project" not in m for m in mine)
    listed = await gw.get(f"/1.0/operations?project=pj{run}")
    assert f"/1.0/operations/{op['id']}" in listed["success"]
    await ws.close()


async def test_operation_transitions_are_logged_as_lxd_does(gw, store) -> None:
    ws = await gw.websocket("/1.0/events?type=logging")
    await asyncio.sleep(0.1)
    op = new_op()
    await record_lifetime(store, op, {"status": "Failure", "status_code": 400, "err": "boom"})
    got = await collect(ws, lambda m: about(op["id"])(m) and "Failure" in m["metadata"]["message"])
    mine = [m["metadata"] for m in got if about(op["id"])(m)]
    assert [(m["message"], m["level"]) for m in mine] == [
        ("New operation", "debug"),
        ("Started operation", "debug"),
        ("Updated metadata for operation", "debug"),
        ("Failure for operation", "debug"),
    ]
    ctx = {"class": "task", "description": "Testing things", "operation": op["id"]}
    assert mine[0]["context"] == {**ctx, "project": "default"}
    assert mine[3]["context"] == {**ctx, "project": "default", "err": "boom"}
    assert all("project" not in m for m in got)  # logging events belong to no project

    cancelled = new_op(may_cancel=True)
    await record_lifetime(store, cancelled, {"status": "Cancelled", "status_code": 401})
    got = await collect(
        ws, lambda m: about(cancelled["id"])(m) and "Cancelled" in m["metadata"]["message"]
    )
    assert got[-1]["metadata"]["message"] == "Cancelled operation"
    await ws.close()


async def test_api_requests_are_logged_as_lxd_does(gw, projects) -> None:
    ws = await gw.websocket("/1.0/events?type=logging")
    await asyncio.sleep(0.1)
    marker = uuid.uuid4().hex[:8]
    await gw.request("GET", f"/1.0?m={marker}")
    await gw.request("POST", f"/1.0/profiles?m={marker}", "not json")  # a 400 is logged too
    await gw.request("PUT", f"/1.0/operations?m={marker}")  # a 501: the path exists
    await gw.request("GET", f"/1.0/nothing?m={marker}")
    got = await collect(ws, lambda m: "/1.0/nothing" in json.dumps(m))
    mine = [m["metadata"] for m in got if marker in json.dumps(m)]
    requests = [m for m in mine if m["message"] == "Handling API request"]
    assert [(m["context"]["method"], m["context"]["url"]) for m in requests] == [
        ("GET", f"/1.0?m={marker}"),
        ("POST", f"/1.0/profiles?m={marker}"),
        ("PUT", f"/1.0/operations?m={marker}"),
    ]
    assert all(m["level"] == "debug" for m in requests)
    assert requests[0]["context"] == {
        "ip": "@",
        "method": "GET",
        "protocol": "unix",
        "url": f"/1.0?m={marker}",
        "username": pwd.getpwuid(os.getuid()).pw_name,
    }
    # LXD logs an unknown path instead as "Sending top level 404", at info.
    assert mine[-1] == {
        "message": "Sending top level 404",
        "level": "info",
        "context": {"method": "GET", "remote": "@", "url": f"/1.0/nothing?m={marker}"},
    }
    await ws.close()


async def test_event_listeners_coming_and_going_are_logged(gw) -> None:
    ws = await gw.websocket("/1.0/events?type=logging")
    got = await collect(ws, lambda m: "handler started" in m["metadata"]["message"])
    started = got[-1]["metadata"]
    assert started["level"] == "debug" and started["context"]["remote"] == "@"
    assert started["context"]["local"] == str(gw.socket)
    other = await gw.websocket("/1.0/events?type=lifecycle")
    got = await collect(ws, lambda m: "handler started" in m["metadata"]["message"])
    other_id = got[-1]["metadata"]["context"]["id"]
    await other.close()
    got = await collect(ws, lambda m: "handler stopped" in m["metadata"]["message"])
    assert got[-1]["metadata"]["context"]["listener"] == other_id
    await ws.close()


async def test_nothing_is_built_for_logging_while_nobody_listens(gw, store, monkeypatch) -> None:
    from gateway import logevents, operation_events

    built: list[str] = []

    def spy(name, real):
        def wrapper(*args, **kwargs):
            built.append(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(logevents, "api_request", spy("request", logevents.api_request))
    monkeypatch.setattr(operation_events, "logging_event", spy("op-log", logevents.logging_event))
    monkeypatch.setattr(
        operation_events, "operation_event", spy("op", operation_events.operation_event)
    )
    lifecycle_ws = await gw.websocket("/1.0/events?type=lifecycle")
    await asyncio.sleep(0.1)
    op = new_op()
    await record_lifetime(store, op, {"status": "Success", "status_code": 200})
    await gw.request("GET", "/1.0")
    await gw.state.reader.wait_for(
        (await store.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    )
    assert built == []

    logging_ws = await gw.websocket("/1.0/events?type=logging")
    await asyncio.sleep(0.1)
    await gw.request("GET", "/1.0")
    await record_lifetime(store, new_op(), {"status": "Success", "status_code": 200})
    await collect(logging_ws, lambda m: "Success for" in m["metadata"]["message"])
    assert "request" in built and "op-log" in built and "op" not in built
    for ws in (lifecycle_ws, logging_ws):
        await ws.close()


async def test_logging_events_carry_the_gateways_log(gw) -> None:
    ws = await gw.websocket("/1.0/events?type=logging")
    await asyncio.sleep(0.1)
    marker = f"marker-{uuid.uuid4()}"
    logging.getLogger("gateway.test").warning("something happened: %s", marker)
    logging.getLogger("gateway.test").debug("too quiet to be sent: %s", marker)
    got = await collect(ws, lambda m: marker in m["metadata"]["message"])
    event = got[-1]
    assert event["type"] == "logging" and "project" not in event
    assert event["metadata"]["level"] == "warning"  # logrus names, as LXD
    assert event["metadata"]["message"] == f"something happened: {marker}"
    await ws.close()


async def test_unknown_project_is_404_before_the_upgrade(gw, projects) -> None:
    status, _, data = await gw.request("GET", "/1.0/events?project=nope")
    assert status == 404 and data["type"] == "error"
    with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
        await gw.websocket("/1.0/events?project=nope")
    assert failed.value.status == 404


async def test_closing_the_websocket_unsubscribes(gw) -> None:
    before = len(gw.state.hub)
    ws = await gw.websocket("/1.0/events")
    for _ in range(100):
        if len(gw.state.hub) == before + 1:
            break
        await asyncio.sleep(0.02)
    assert len(gw.state.hub) == before + 1
    await ws.close()
    for _ in range(100):
        if len(gw.state.hub) == before:
            break
        await asyncio.sleep(0.02)
    assert len(gw.state.hub) == before
